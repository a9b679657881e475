// The "emoji" dataset: emoji-datasource (images, categories) joined with emojibase-data (en + zh
// labels, tags); speech of the English label by espeak-ng. Two samples per emoji (Google and
// Twitter artwork) that share a group; see docs/datasets.md.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"
#include "braid/data/build/common.h"

namespace braid::data::build {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// "1F468-200D-2764-FE0F" -> "1F468-200D-2764": upper case, variation selector 16 dropped.
std::string normalize_code(const std::string& code) {
  std::string out, part;
  auto flush = [&] {
    if (!part.empty() && part != "FE0F") out += (out.empty() ? "" : "-") + part;
    part.clear();
  };
  for (char c : code) {
    if (c == '-') flush();
    else part += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  flush();
  return out;
}

std::string ascii_lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// Words of a label for the tag filter: lower-case runs of ASCII letters and digits.
std::set<std::string> words_of(const std::string& s) {
  std::set<std::string> w;
  std::string cur;
  for (char c : ascii_lower(s) + " ") {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) cur += c;
    else if (!cur.empty()) w.insert(cur), cur.clear();
  }
  return w;
}

struct Entry {
  std::string unified;      // lower case, as in the image file names
  std::string image;        // file name below img/<style>/64/
  std::string category, subcategory;
  std::string en_label, zh_label;
  std::vector<std::string> tags;
  int64_t sort_order = 0;
};

std::string get_string(const json& o, const char* key, const std::string& file, size_t index) {
  auto it = o.find(key);
  BRAID_INPUT_CHECK(it != o.end() && it->is_string(), "{}: entry {} has no string \"{}\"", file, index, key);
  return it->get<std::string>();
}

// emojibase <locale>/data.json -> normalized hexcode -> entry (top level only; skin tones are nested).
std::map<std::string, json> load_emojibase(const std::string& path) {
  json arr = parse_json_file(path);
  BRAID_INPUT_CHECK(arr.is_array(), "{}: expected a JSON array of emoji", path);
  std::map<std::string, json> m;
  for (size_t i = 0; i < arr.size(); ++i) {
    const json& e = arr[i];
    BRAID_INPUT_CHECK(e.is_object(), "{}: entry {} is not an object", path, i);
    m.emplace(normalize_code(get_string(e, "hexcode", path, i)), e);
  }
  return m;
}

bool is_png(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char sig[8] = {};
  f.read(sig, 8);
  return f.gcount() == 8 && std::memcmp(sig, "\x89PNG\r\n\x1a\n", 8) == 0;
}

}  // namespace

BuildReport build_emoji(const BuildOptions& opt) {
  const std::string root = find_npm_root(opt, "emoji-datasource/emoji.json");
  const fs::path nm = fs::path(root) / "node_modules";
  const std::string emoji_json = (nm / "emoji-datasource/emoji.json").string();
  const std::string en_json = (nm / "emojibase-data/en/data.json").string();
  const std::string zh_json = (nm / "emojibase-data/zh/data.json").string();
  const std::map<std::string, fs::path> style_dirs = {{"google", nm / "emoji-datasource-google/img/google/64"},
                                                      {"twitter", nm / "emoji-datasource-twitter/img/twitter/64"}};
  require_source(emoji_json, "emoji: npm package emoji-datasource");
  require_source(en_json, "emoji: npm package emojibase-data");
  require_source(zh_json, "emoji: npm package emojibase-data");
  for (const auto& [style, dir] : style_dirs) {
    std::error_code ec;
    BRAID_INPUT_CHECK(fs::is_directory(dir, ec), "emoji: npm package emoji-datasource-{}: expected the folder {} (missing); "
                      "`bash scripts/setup.sh` installs it", style, dir.string());
  }

  // ---- join ----
  json src = parse_json_file(emoji_json);
  BRAID_INPUT_CHECK(src.is_array(), "{}: expected a JSON array of emoji", emoji_json);
  auto en = load_emojibase(en_json);
  auto zh = load_emojibase(zh_json);
  std::vector<Entry> entries;
  std::set<std::string> seen;
  int64_t dropped_component = 0, dropped_image = 0, dropped_label = 0;
  for (size_t i = 0; i < src.size(); ++i) {
    const json& e = src[i];
    BRAID_INPUT_CHECK(e.is_object(), "{}: entry {} is not an object", emoji_json, i);
    Entry x;
    x.unified = ascii_lower(get_string(e, "unified", emoji_json, i));
    x.category = get_string(e, "category", emoji_json, i);
    if (x.category == "Component") {
      dropped_component++;
      continue;
    }
    if (!e.value("has_img_google", false) || !e.value("has_img_twitter", false)) {
      dropped_image++;
      continue;
    }
    std::string code = normalize_code(x.unified);
    auto ie = en.find(code);
    auto iz = zh.find(code);
    auto has_label = [](const json& o) {
      auto l = o.find("label");
      return l != o.end() && l->is_string() && !l->get<std::string>().empty();
    };
    if (ie == en.end() || iz == zh.end() || !has_label(ie->second) || !has_label(iz->second)) {
      dropped_label++;
      continue;
    }
    x.subcategory = get_string(e, "subcategory", emoji_json, i);
    x.image = get_string(e, "image", emoji_json, i);
    BRAID_INPUT_CHECK(x.image.size() > 4 && x.image.find_first_not_of("0123456789abcdef-.png") == std::string::npos &&
                          x.image.find("..") == std::string::npos && x.image.substr(x.image.size() - 4) == ".png",
                      "{}: entry {} has an unexpected image name '{}' (expected <hex codes>.png)", emoji_json, i, x.image);
    x.sort_order = e.value("sort_order", static_cast<int64_t>(i));
    x.en_label = get_string(ie->second, "label", en_json, 0);
    x.zh_label = get_string(iz->second, "label", zh_json, 0);
    if (auto t = ie->second.find("tags"); t != ie->second.end() && t->is_array())
      for (const auto& tag : *t)
        if (tag.is_string()) x.tags.push_back(tag.get<std::string>());
    if (!seen.insert(x.unified).second) continue;  // duplicate unified code: keep the first
    entries.push_back(std::move(x));
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.sort_order != b.sort_order ? a.sort_order < b.sort_order : a.unified < b.unified;
  });
  spdlog::info("emoji: {} emoji kept of {} (dropped {} components, {} without both images, {} without en+zh labels)",
               entries.size(), src.size(), dropped_component, dropped_image, dropped_label);
  BRAID_INPUT_CHECK(!entries.empty(), "{}: no emoji left after the join with emojibase-data", emoji_json);

  // opt.limit: an evenly spaced subset in sort order, so small builds still cover every category.
  if (opt.limit > 0 && opt.limit < static_cast<int64_t>(entries.size())) {
    std::vector<Entry> sub;
    const int64_t n = static_cast<int64_t>(entries.size());
    for (int64_t k = 0; k < opt.limit; ++k) sub.push_back(entries[static_cast<size_t>(k * n / opt.limit)]);
    entries = std::move(sub);
  }

  // ---- outputs ----
  const fs::path out(opt.out_dir);
  const std::string main_name = "manifest.jsonl", sub_name = "manifest.subgroup.jsonl",
                    names_name = "manifest.names.jsonl";
  remove_stale_manifests(opt.out_dir, {main_name, sub_name, names_name});
  for (const auto& [style, dir] : style_dirs) braid::make_dirs((out / "images" / style).string());
  braid::make_dirs((out / "audio").string());

  const auto voices = english_voices();
  std::vector<Record> records;
  std::vector<std::string> subgroups;
  std::vector<Record> named;  // the same samples whose English text is the name alone (captioning targets)
  std::vector<std::vector<std::string>> speak;
  std::vector<std::pair<fs::path, fs::path>> copies;
  for (const auto& x : entries) {
    const std::string split = split_of(opt.seed, x.unified);
    // English view: the CLDR label lower-cased plus up to three tags that add a word.
    std::set<std::string> have = words_of(x.en_label);
    std::string en_text = ascii_lower(x.en_label);
    int added = 0;
    for (const auto& tag : x.tags) {
      std::string t = ascii_lower(tag);
      if (added == 3) break;
      if (have.count(t) || t.empty()) continue;
      have.insert(t);
      en_text += ", " + t;
      added++;
    }
    for (const auto& [style, dir] : style_dirs) {
      Record r;
      r.id = x.unified + "-" + style;
      r.split = split;
      r.label = x.category;
      r.group = x.unified;
      r.text = nlohmann::ordered_json{{"en", en_text}, {"zh", x.zh_label}};
      r.image = "images/" + style + "/" + x.image;
      r.audio = "audio/" + r.id + ".wav";
      copies.emplace_back(dir / x.image, out / r.image);
      Rng rng(braid::mix_seed(opt.seed, hash_string(r.id), 0xa0d10));
      const std::string& voice = voices[static_cast<size_t>(rng.below(static_cast<int64_t>(voices.size())))];
      int speed = static_cast<int>(rng.range(130, 200));
      int pitch = static_cast<int>(rng.range(30, 70));
      speak.push_back(espeak_command(voice, speed, pitch, x.en_label, (out / r.audio).string()));
      named.push_back(r);
      named.back().text = nlohmann::ordered_json{{"en", ascii_lower(x.en_label)}, {"zh", x.zh_label}};
      records.push_back(std::move(r));
      subgroups.push_back(x.subcategory);
    }
  }

  // Images: verified PNGs copied as they are (64 x 64 RGBA).
  {
    braid::Progress progress("emoji images", static_cast<int64_t>(copies.size()), "files");
    for (size_t i = 0; i < copies.size(); ++i) {
      braid::check_interrupt();
      const auto& [from, to] = copies[i];
      BRAID_INPUT_CHECK(is_png(from.string()), "emoji: expected a PNG image at {} (missing or not a PNG); "
                        "`bash scripts/setup.sh` installs it", from.string());
      std::error_code ec;
      fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
      if (ec) throw std::runtime_error(fmt::format("cannot copy {} to {}: {}", from.string(), to.string(), ec.message()));
      progress.update(static_cast<int64_t>(i + 1));
    }
    progress.finish();
  }

  // Speech: one espeak-ng process per sample, opt.threads at a time.
  run_commands(speak, opt.threads, "emoji speech");
  for (const auto& r : records) {
    std::error_code ec;
    auto size = fs::file_size(out / r.audio, ec);
    if (ec || size <= 44)
      throw std::runtime_error(fmt::format("espeak-ng exited 0 but wrote no audio to {}", (out / r.audio).string()));
  }

  // Manifests last, the main one after the extra one: its presence means the build finished.
  BuildReport report;
  report.manifest = (out / main_name).string();
  report.extra_manifests = {(out / sub_name).string(), (out / names_name).string()};
  write_manifest(report.extra_manifests[0], records, [&](size_t i) { return subgroups[i]; });
  write_manifest(report.extra_manifests[1], named);
  write_manifest(report.manifest, records);
  count_splits(records, report);
  return report;
}

}  // namespace braid::data::build
