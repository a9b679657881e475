// braid/data/build/emoji_source.h — the joined emoji table that the emoji-based builders read (private to
// the builders): emoji-datasource (code points, images, categories) joined with emojibase-data (en + zh
// labels, tags), as docs/datasets.md describes under `emoji`.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "braid/data/build/build.h"

namespace braid::data::build {

struct EmojiEntry {
  std::string unified;      // lower case, as in the image file names
  std::string image;        // file name below img/<style>/64/ (checked: hex codes, '-', ".png")
  std::string category, subcategory;
  std::string en_label, zh_label;
  std::vector<std::string> tags;  // emojibase English tags, in emojibase's order
  int64_t sort_order = 0;
};

struct EmojiSource {
  std::vector<EmojiEntry> entries;                  // in emoji.json sort_order
  std::map<std::string, std::string> style_dirs;    // "google" / "twitter" -> folder of the 64 x 64 PNGs
};

// Find the npm packages (find_npm_root; InputError naming the missing path and `bash scripts/setup.sh`),
// join them and sort by sort_order. Components, entries without both images and entries without an en and
// a zh emojibase label are dropped (logged with counts). `who` prefixes the messages ("emoji", "ave").
EmojiSource load_emoji_source(const BuildOptions& opt, const std::string& who);

// `n` entries evenly spaced in order (all when n <= 0 or n >= size): small builds still cover every category.
std::vector<EmojiEntry> evenly_spaced(const std::vector<EmojiEntry>& entries, int64_t n);

// ASCII lower case (the emoji labels and tags are ASCII).
std::string ascii_lower(std::string s);

// Whether `path` starts with the PNG signature.
bool is_png(const std::string& path);

}  // namespace braid::data::build
