// src/braid/nn/infer_threads.h — how an inference forward uses the intra-op threads (issue 19).
//
// braid waits passively in OpenMP (apps/braid/main.cpp: spinning threads collapse when another process keeps the
// cores busy), so every parallel region of a forward wakes its sleeping threads through the kernel, tens of
// microseconds on a VM. A pre-packed forward of the bench CLIP towers opens one region per GEMM (4 per Transformer
// block); at batch 1 and 2 threads those wake-ups cost more than the second core gives (docs/results/engine.md,
// "CPU inference at 2 threads"). infer_rows() runs an inference batch of `rows` independent rows instead as:
//  - split (rows >= 2, more than one intra-op thread): the rows in min(threads, rows) contiguous chunks, each run
//    by one thread of ONE parallel region with one intra-op thread inside (nested ATen / OpenBLAS / oneDNN work runs
//    inline), the outputs concatenated in row order: one wake-up per forward, no synchronisation inside it, and a
//    thread that another process preempts delays only its own chunk;
//  - one thread (a single row): the forward on the calling thread with one intra-op thread, no parallel region;
//  - as it is: grad mode on, one intra-op thread, already inside a parallel region, or switched off
//    (on by default; set_infer_split(false), the CLI's BRAID_INFER_SPLIT=0).
// A row's output matches the unsplit forward's to float rounding (GEMMs over fewer rows block the sums
// differently). The forward must treat rows independently (eval mode) and return the rows along dim 0; a chunk
// whose output has another first dim makes infer_rows run the whole batch unsplit instead.
// Callers: serve::Embedder::embed (embed, search, the server's batcher) and `braid bench speed`'s inference loop.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

#include "braid/core/batch.h"

namespace braid::nn {

// forward(r0, r1): the output for rows [r0, r1) of the batch, [r1 - r0, ...].
using RowsForward = std::function<at::Tensor(int64_t r0, int64_t r1)>;

enum class InferMode { AsIs, OneThread, Split };
// What infer_rows(rows, ...) does on this thread now (grad mode, thread count, the switch).
InferMode infer_mode(int64_t rows);

at::Tensor infer_rows(int64_t rows, const RowsForward& forward);

// Process-wide switch (default on): off, infer_rows runs every forward as it is.
void set_infer_split(bool on);
bool infer_split_enabled();

// Sets the calling thread's intra-op thread count (OpenMP's nthreads ICV, which at::get_num_threads, OpenBLAS and
// oneDNN read) for its lifetime and puts the previous count back.
class ScopedIntraOpThreads {
 public:
  explicit ScopedIntraOpThreads(int threads);
  ~ScopedIntraOpThreads();
  ScopedIntraOpThreads(const ScopedIntraOpThreads&) = delete;
  ScopedIntraOpThreads& operator=(const ScopedIntraOpThreads&) = delete;

 private:
  int prev_;
};

// Rows [r0, r1) of a batch (views; a modality's undefined tensors stay undefined).
ModalityBatch batch_rows(const ModalityBatch& mb, int64_t r0, int64_t r1);
Batch batch_rows(const Batch& b, int64_t r0, int64_t r1);

}  // namespace braid::nn
