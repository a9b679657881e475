// apps/braid/tools/speed.h — timing of training steps and inference on one fixed batch, for
// side-by-side comparisons with a PyTorch peer on the same tensors (bench/fusion_speed.sh). A tool of the CLI, above the library layers.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "braid/train/trainer.h"

namespace braid::tools {

struct SpeedOptions {
  int64_t steps = 30;     // timed training steps per repeat
  int64_t warmup = 5;     // untimed steps before the first repeat
  int64_t repeats = 5;    // the median of the repeats is reported
  std::string dump_dir;   // write the batch as .npy files + model.json here ("" = no)
  bool infer_only = false;  // time inference only: no warm-up or timed training steps (train_steps_per_s is
                           // then absent); the model is still built and put in eval mode the same way
  bool fused = false;      // the Transformer block's fused CPU kernels (nn/fused.h: residual + LayerNorm, bias + GELU)
  bool prepack = false;    // inference through pre-packed oneDNN weights under InferenceMode (nn/prepack.h)
  bool int8 = false;       // `--precision int8`: the same with int8 weights where the CPU runs them (nn/prepack.h)
  std::string profile;    // after the timed runs, write a profiler trace (Chrome JSON, CPU + CUDA
                          // activities) of 2 training steps and 2 inference batches here ("" = no)
  bool op_profile = false;  // after the timed runs, time `steps` inference forwards at B and 4x`steps` at B = 1
                            // per op (core/op_profile.h scopes) into "op_profile" {"batch", "one"}: rows + table
  std::string op_clock = "wall";  // what --op-profile measures: "wall" or "cpu" (the thread's CPU time)
};

// Builds the recipe's model on `ro.data`'s first train batch and times it. Returns
// {"train_steps_per_s", "infer_samples_per_s_b64", "infer_samples_per_s_b1", "runs", "threads",
//  "parameters", "batch_size"} (no "train_steps_per_s" with `so.infer_only`).
nlohmann::json measure_speed(const train::RunOptions& ro, const SpeedOptions& so);

// The machine's fp32 matrix-multiply peak as this build reaches it: C = A·B with n×n matrices
// through ATen (OpenBLAS here), `threads` threads (0 = all cores), median GFLOP/s of `repeats`
// timed runs after one warm-up. Returns {"gflops", "runs", "n", "threads", "openblas_coretype"}
// (the OPENBLAS_CORETYPE variable, "unset" when not set: it picks OpenBLAS's kernels).
nlohmann::json measure_gemm(int64_t n, int threads, int repeats);

}  // namespace braid::tools
