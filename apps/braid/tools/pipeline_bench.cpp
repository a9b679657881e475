// apps/braid/tools/pipeline_bench.cpp — timed passes of the preprocessing pipeline over a manifest's files.
#include "tools/pipeline_bench.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "braid/core/error.h"
#include "braid/core/runtime.h"
#include "braid/data/manifest.h"
#include "braid/data/npy.h"
#include "braid/data/preprocess.h"

namespace braid::tools {

using namespace braid::data;  // Manifest, Preprocessor, write_npy

nlohmann::json measure_pipeline(const PipelineBenchOptions& o) {
  BRAID_INPUT_CHECK(o.modality == "image" || o.modality == "audio",
                    "bench pipeline: --modality must be image or audio, got '{}'", o.modality);
  BRAID_INPUT_CHECK(o.workers >= 1 && o.workers <= 64, "bench pipeline: --workers must be in 1..64, got {}", o.workers);
  BRAID_INPUT_CHECK(o.repeats >= 1, "bench pipeline: --repeats must be >= 1, got {}", o.repeats);
  auto m = Manifest::load(o.manifest);
  std::vector<std::string> files;
  for (const auto& s : m.samples()) {
    if (!s.has(o.modality)) continue;
    files.push_back(o.modality == "image" ? s.image : s.audio);
    if (o.limit > 0 && static_cast<int64_t>(files.size()) >= o.limit) break;
  }
  BRAID_INPUT_CHECK(!files.empty(), "{}: no sample has modality '{}'", o.manifest, o.modality);
  const int threads = configure_threads(o.workers == 1 ? o.threads : 1);
  Preprocessor pre(PreprocessOptions{}, {o.modality}, nullptr);
  const bool image = o.modality == "image";

  // Worker w processes files w, w + W, w + 2W, ...; returns the sum of its outputs.
  auto work = [&](int w, int n_workers, double* sum) {
    if (n_workers > 1) {
      at::internal::lazy_init_num_threads();
#ifdef _OPENMP
      omp_set_num_threads(1);
#endif
    }
    double acc = 0;
    for (size_t i = static_cast<size_t>(w); i < files.size(); i += static_cast<size_t>(n_workers)) {
      auto t = image ? pre.image(files[i]) : pre.audio(files[i]);
      acc += t.sum().item<double>();
    }
    *sum = acc;
  };
  auto pass = [&]() {
    std::vector<double> sums(static_cast<size_t>(o.workers), 0.0);
    if (o.workers == 1) {
      work(0, 1, &sums[0]);
    } else {
      std::vector<std::thread> pool;
      for (int w = 0; w < o.workers; ++w) pool.emplace_back(work, w, o.workers, &sums[static_cast<size_t>(w)]);
      for (auto& t : pool) t.join();
    }
    double s = 0;
    for (double x : sums) s += x;
    return s;
  };

  if (!o.dump.empty()) write_npy(o.dump, image ? pre.image(files[0]) : pre.audio(files[0]));
  const double checksum = pass();  // warm-up: page cache, allocator, mel filterbank / resampler tables
  std::vector<double> runs;
  for (int r = 0; r < o.repeats; ++r) {
    check_interrupt();
    auto t0 = std::chrono::steady_clock::now();
    pass();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    runs.push_back(static_cast<double>(files.size()) / s);
  }
  auto sorted = runs;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  const double median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  return {{"modality", o.modality}, {"samples", files.size()}, {"workers", o.workers},
          {"threads", o.workers == 1 ? threads : 1}, {"runs", runs}, {"samples_per_s", median},
          {"checksum", checksum}};
}

}  // namespace braid::tools
