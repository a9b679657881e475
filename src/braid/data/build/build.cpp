// Entry point of the dataset builders: name -> builder, shared checks and timing.
#include "braid/data/build/build.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/data/build/common.h"

namespace braid::data {

std::vector<std::string> dataset_names() { return {"emoji", "avmnist", "fashion-mnist", "prosody"}; }

BuildReport build_dataset(const std::string& name, const BuildOptions& opt) {
  auto start = std::chrono::steady_clock::now();
  BuildReport (*fn)(const BuildOptions&) = nullptr;
  if (name == "emoji") fn = build::build_emoji;
  else if (name == "avmnist") fn = build::build_avmnist;
  else if (name == "fashion-mnist") fn = build::build_fashion_mnist;
  else if (name == "prosody") fn = build::build_prosody;
  if (!fn) braid::input_error("unknown dataset '{}' (known: {})", name, fmt::join(dataset_names(), ", "));
  BRAID_INPUT_CHECK(!opt.out_dir.empty(), "data build {}: an output folder is required", name);
  BRAID_INPUT_CHECK(opt.limit >= 0, "data build {}: limit must be >= 0 (got {})", name, opt.limit);
  braid::make_dirs(opt.out_dir);
  BuildReport report = fn(opt);
  report.seconds = build::seconds_since(start);
  spdlog::info("{}: {} samples (train {}, val {}, test {}) in {:.1f} s -> {}", name, report.samples, report.per_split["train"],
               report.per_split["val"], report.per_split["test"], report.seconds, report.manifest);
  return report;
}

}  // namespace braid::data
