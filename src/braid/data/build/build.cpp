// Entry point of the dataset builders: name -> builder, shared checks and timing.
#include "braid/data/build/build.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/data/build/common.h"

namespace braid::data {

const DatasetRegistry& dataset_registry() {
  static const DatasetRegistry reg = [] {
    DatasetRegistry r("dataset");
    auto add = [&](const char* name, const char* doc, BuildReport (*fn)(const BuildOptions&)) {
      r.add(name, doc, [fn](const Config&, const BuildOptions& o) { return fn(o); });
    };
    add("emoji", "emoji images (two styles) + English/Chinese names and tags + espeak-ng speech; label = emoji group "
                 "(npm emoji-datasource packages)", build::build_emoji);
    add("avmnist", "digit images + spoken digits (espeak-ng), the AV-MNIST setting; label = digit", build::build_avmnist);
    add("fashion-mnist", "Fashion-MNIST images + class-name text (Debian dataset-fashion-mnist); label = class",
        build::build_fashion_mnist);
    add("prosody", "synthetic speech + text with arousal/valence targets (regression, CCC)", build::build_prosody);
    add("ave", "audio-visual event localization: 10 one-second segments (emoji frames + speech/noise), an event "
               "(an emoji shown and its name spoken) over a span; per-segment labels in target (0 = background)",
        build::build_ave);
    return r;
  }();
  return reg;
}

std::vector<std::string> dataset_names() { return dataset_registry().names(); }

BuildReport build_dataset(const std::string& name, const BuildOptions& opt) {
  auto start = std::chrono::steady_clock::now();
  BRAID_INPUT_CHECK(dataset_registry().contains(name), "unknown dataset '{}' (known: {})", name,
                    fmt::join(dataset_names(), ", "));
  BRAID_INPUT_CHECK(!opt.out_dir.empty(), "data build {}: an output folder is required", name);
  BRAID_INPUT_CHECK(opt.limit >= 0, "data build {}: limit must be >= 0 (got {})", name, opt.limit);
  braid::make_dirs(opt.out_dir);
  BuildReport report = dataset_registry().make_by_name(name, "data build", opt);
  report.seconds = build::seconds_since(start);
  spdlog::info("{}: {} samples (train {}, val {}, test {}) in {:.1f} s -> {}", name, report.samples, report.per_split["train"],
               report.per_split["val"], report.per_split["test"], report.seconds, report.manifest);
  return report;
}

}  // namespace braid::data
