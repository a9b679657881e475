// braid/data/manifest.h — the JSONL manifest: one sample per line (the public data contract,
// documented in docs/manifest.md).
//
// Keys: id (unique string), split (train|val|test), label (string or integer), target (array of
// numbers), group (string), and one key per present modality: text (string, or object of named
// string views), image, audio (paths relative to the manifest), series (path to .csv/.npy, or an
// inline array). Any other key, a duplicate id, a wrong type or a group spread over two splits
// is an InputError "<manifest>:<line>: ...".
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace braid::data {

// The modalities braid knows, in a fixed order.
inline const std::vector<std::string>& all_modalities() {
  static const std::vector<std::string> m{"image", "audio", "text", "series"};
  return m;
}

struct SampleRecord {
  std::string id;
  std::string split;
  std::optional<std::string> label;          // integers are stored as their decimal text
  std::vector<float> target;                 // empty when absent
  std::string group;                         // empty when absent
  std::vector<std::pair<std::string, std::string>> text;  // (view, text); a plain string has view ""
  std::string image, audio, series_path;     // resolved paths; empty when absent
  nlohmann::json series_inline;              // null unless the series is inline
  int64_t line = 0;                          // 1-based line in the manifest

  bool has(const std::string& modality) const;
  // The text a model reads: the named `view`, or the first view when `view` is empty, or the
  // plain string when the sample has one (a plain string is the only text there is).
  // Null when the sample has no such text.
  const std::string* text_view(const std::string& view) const;
  // "<manifest>:<line>" for error messages
  std::string where(const std::string& manifest) const { return manifest + ":" + std::to_string(line); }
};

class Manifest {
 public:
  // Parse and validate every line (not the files it names; see `check_files`).
  static Manifest load(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<SampleRecord>& samples() const { return samples_; }
  // Indices of the samples in `split` ("" = all), in file order.
  std::vector<int64_t> split_indices(const std::string& split) const;
  // Count of samples per split and modality (for `braid data check`).
  std::map<std::string, std::map<std::string, int64_t>> counts() const;
  // Text views seen anywhere ("" for plain strings), in first-seen order.
  std::vector<std::string> text_views() const;
  int64_t target_dim() const { return target_dim_; }

 private:
  std::string path_;
  std::vector<SampleRecord> samples_;
  int64_t target_dim_ = 0;
};

}  // namespace braid::data
