// braid/data/filter.h — a filtered view of a manifest written as a new manifest (no data copied).
//
// `braid data filter` builds evaluation conditions from one dataset: a held-out style (train on
// one image style, test on the other) and missing modalities (a split whose samples lack a key).
//
//   rule  [SPLITS:]KEY~SUBSTRING     e.g. "image~/google/", "train,val:image~/google/", "test:id~-twitter"
//
// A sample is kept when every rule whose SPLITS name its split (no SPLITS = every split) holds:
// the sample's KEY (id, label, group, image, audio, series, or text: any of its views) contains
// SUBSTRING. A sample lacking KEY fails the rule. `drop` modalities (image, audio, text, series)
// are then removed from every kept sample — never the last modality of a sample, which is an
// error naming its line (a sample needs one). The output keeps each kept line's keys and order;
// file paths are rewritten relative to the output's directory, so the files stay where they are.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace braid::data {

struct FilterRule {
  std::vector<std::string> splits;  // empty = every split
  std::string key;                  // id, label, group, text, image, audio, series
  std::string substring;            // non-empty
};

// Parse "[SPLITS:]KEY~SUBSTRING"; InputError naming `what` (e.g. "--keep") and the text on bad input.
FilterRule parse_filter_rule(const std::string& text, const std::string& what = "--keep");

struct FilterOptions {
  std::vector<FilterRule> keep;     // all must hold (for the splits they name)
  std::vector<std::string> drop;    // modalities removed from every kept sample
};

struct FilterReport {
  std::string out;                             // the manifest written
  int64_t read = 0, kept = 0;                  // samples in the input / written
  std::map<std::string, int64_t> per_split;    // kept samples per split
};

// Read and validate `in` (data::Manifest rules), write the kept samples to `out` atomically.
// InputError when a rule or modality is unknown, when nothing is kept, or when `out` is `in`.
FilterReport filter_manifest(const std::string& in, const std::string& out, const FilterOptions& opt);

}  // namespace braid::data
