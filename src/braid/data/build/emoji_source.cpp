// The joined emoji table of the emoji-based builders (emoji, ave); see emoji_source.h.
#include "braid/data/build/emoji_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "braid/core/error.h"
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

}  // namespace

std::string ascii_lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

bool is_png(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char sig[8] = {};
  f.read(sig, 8);
  return f.gcount() == 8 && std::memcmp(sig, "\x89PNG\r\n\x1a\n", 8) == 0;
}

EmojiSource load_emoji_source(const BuildOptions& opt, const std::string& who) {
  const std::string root = find_npm_root(opt, "emoji-datasource/emoji.json");
  const fs::path nm = fs::path(root) / "node_modules";
  const std::string emoji_json = (nm / "emoji-datasource/emoji.json").string();
  const std::string en_json = (nm / "emojibase-data/en/data.json").string();
  const std::string zh_json = (nm / "emojibase-data/zh/data.json").string();
  EmojiSource out;
  out.style_dirs = {{"google", (nm / "emoji-datasource-google/img/google/64").string()},
                    {"twitter", (nm / "emoji-datasource-twitter/img/twitter/64").string()}};
  require_source(emoji_json, who + ": npm package emoji-datasource");
  require_source(en_json, who + ": npm package emojibase-data");
  require_source(zh_json, who + ": npm package emojibase-data");
  for (const auto& [style, dir] : out.style_dirs) {
    std::error_code ec;
    BRAID_INPUT_CHECK(fs::is_directory(dir, ec), "{}: npm package emoji-datasource-{}: expected the folder {} (missing); "
                      "`bash scripts/setup.sh` installs it", who, style, dir);
  }

  json src = parse_json_file(emoji_json);
  BRAID_INPUT_CHECK(src.is_array(), "{}: expected a JSON array of emoji", emoji_json);
  auto en = load_emojibase(en_json);
  auto zh = load_emojibase(zh_json);
  std::vector<EmojiEntry>& entries = out.entries;
  std::set<std::string> seen;
  int64_t dropped_component = 0, dropped_image = 0, dropped_label = 0;
  for (size_t i = 0; i < src.size(); ++i) {
    const json& e = src[i];
    BRAID_INPUT_CHECK(e.is_object(), "{}: entry {} is not an object", emoji_json, i);
    EmojiEntry x;
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
  std::stable_sort(entries.begin(), entries.end(), [](const EmojiEntry& a, const EmojiEntry& b) {
    return a.sort_order != b.sort_order ? a.sort_order < b.sort_order : a.unified < b.unified;
  });
  spdlog::info("{}: {} emoji kept of {} (dropped {} components, {} without both images, {} without en+zh labels)", who,
               entries.size(), src.size(), dropped_component, dropped_image, dropped_label);
  BRAID_INPUT_CHECK(!entries.empty(), "{}: no emoji left after the join with emojibase-data", emoji_json);
  return out;
}

std::vector<EmojiEntry> evenly_spaced(const std::vector<EmojiEntry>& entries, int64_t n) {
  const int64_t size = static_cast<int64_t>(entries.size());
  if (n <= 0 || n >= size) return entries;
  std::vector<EmojiEntry> sub;
  sub.reserve(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) sub.push_back(entries[static_cast<size_t>(k * size / n)]);
  return sub;
}

}  // namespace braid::data::build
