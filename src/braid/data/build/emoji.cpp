// The "emoji" dataset: emoji-datasource (images, categories) joined with emojibase-data (en + zh
// labels, tags); speech of the English label by espeak-ng. Two samples per emoji (Google and
// Twitter artwork) that share a group; see docs/datasets.md.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"
#include "braid/data/build/common.h"
#include "braid/data/build/speech.h"
#include "braid/data/build/emoji_source.h"

namespace braid::data::build {
namespace fs = std::filesystem;

namespace {

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

}  // namespace

BuildReport build_emoji(const BuildOptions& opt) {
  EmojiSource source = load_emoji_source(opt, "emoji");
  // opt.limit: an evenly spaced subset in sort order, so small builds still cover every category.
  const std::vector<EmojiEntry> entries = evenly_spaced(source.entries, opt.limit);
  std::map<std::string, fs::path> style_dirs;
  for (const auto& [style, dir] : source.style_dirs) style_dirs[style] = dir;

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
  std::vector<SpeechJob> speak;
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
    // Caption view (retrieval and zero-shot): the English view, then the subgroup and the group, the
    // words a user would search with. It names the label: never a classification input.
    std::string subgroup = x.subcategory;
    std::replace(subgroup.begin(), subgroup.end(), '-', ' ');
    const std::string caption = en_text + "; " + subgroup + "; " + ascii_lower(x.category);
    for (const auto& [style, dir] : style_dirs) {
      Record r;
      r.id = x.unified + "-" + style;
      r.split = split;
      r.label = x.category;
      r.group = x.unified;
      r.text = nlohmann::ordered_json{{"en", en_text}, {"zh", x.zh_label}, {"caption", caption}};
      r.image = "images/" + style + "/" + x.image;
      r.audio = "audio/" + r.id + ".wav";
      copies.emplace_back(dir / x.image, out / r.image);
      Rng rng(braid::mix_seed(opt.seed, hash_string(r.id), 0xa0d10));
      const std::string& voice = voices[static_cast<size_t>(rng.below(static_cast<int64_t>(voices.size())))];
      int speed = static_cast<int>(rng.range(130, 200));
      int pitch = static_cast<int>(rng.range(30, 70));
      speak.push_back({voice, speed, pitch, -1, x.en_label, (out / r.audio).string()});
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

  // Speech: one espeak-ng utterance per sample, opt.threads at a time (speech.h).
  speak_to_files(speak, opt.threads, "emoji speech");

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
