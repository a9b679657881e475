// apps/braid/tools/pipeline_bench.h — throughput of the preprocessing pipeline (image: PNG decode + resize +
// normalize; audio: WAV decode + resample + log-mel + normalize) on the files of a manifest, for
// comparison with a Python peer (bench/pipeline_speed.sh, bench/peer/pipeline_peer.py).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace braid::tools {

struct PipelineBenchOptions {
  std::string manifest;
  std::string modality = "image";  // image | audio
  int workers = 1;                 // decoding threads; each runs its torch ops single-threaded (as the loader's)
  int threads = 1;                 // intra-op threads when workers == 1
  int64_t limit = 0;               // the first `limit` samples that have the modality (0 = all)
  int repeats = 5;                 // timed passes over the files; the median is reported
  std::string dump;                // write the first sample's tensor here as .npy ("" = no)
};

// One untimed pass (warms the page cache), then `repeats` timed passes through data::Preprocessor
// with the default options (the same code training uses). Returns {"modality", "samples", "workers",
// "threads", "runs" (samples/s per pass), "samples_per_s" (median), "checksum" (sum of all outputs)}.
// A manifest without the modality, or an unknown modality, is an InputError.
nlohmann::json measure_pipeline(const PipelineBenchOptions& o);

}  // namespace braid::tools
