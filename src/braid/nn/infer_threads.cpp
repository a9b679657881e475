// src/braid/nn/infer_threads.cpp — compiled with -fopenmp (src/braid/CMakeLists.txt): its one parallel region is
// libgomp's, the same pool ATen and oneDNN use.
#include "braid/nn/infer_threads.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <vector>

namespace braid::nn {

namespace {

// On by default (BRAID_INFER_SPLIT=0 turns it off). It was off while split rows differed from the unsplit forward
// on an AMX host (max abs diff 1.18): oneDNN's default scratchpad belongs to the thread that created a primitive,
// and the chunks ran packed kernels created on another thread; nn/prepack.cpp now gives each run its own.
std::atomic<bool> g_split{true};

// The slice [r0, r1) along dim 0 of t, undefined when t is.
at::Tensor rows_of(const at::Tensor& t, int64_t r0, int64_t r1) { return t.defined() ? t.slice(0, r0, r1) : t; }

}  // namespace

void set_infer_split(bool on) { g_split.store(on); }
bool infer_split_enabled() { return g_split.load(std::memory_order_relaxed); }

ScopedIntraOpThreads::ScopedIntraOpThreads(int threads) {
  at::internal::lazy_init_num_threads();  // ATen's first use on a thread sets the count: let it happen before
  prev_ = omp_get_max_threads();
  omp_set_num_threads(std::max(1, threads));
}

ScopedIntraOpThreads::~ScopedIntraOpThreads() { omp_set_num_threads(prev_); }

InferMode infer_mode(int64_t rows) {
  at::internal::lazy_init_num_threads();
  if (!infer_split_enabled() || rows < 1 || at::GradMode::is_enabled() || omp_in_parallel() ||
      omp_get_max_threads() < 2)
    return InferMode::AsIs;
  return rows == 1 ? InferMode::OneThread : InferMode::Split;
}

at::Tensor infer_rows(int64_t rows, const RowsForward& forward) {
  switch (infer_mode(rows)) {
    case InferMode::AsIs: return forward(0, rows);
    case InferMode::OneThread: {
      ScopedIntraOpThreads one(1);
      return forward(0, rows);
    }
    case InferMode::Split: break;
  }
  const int64_t n = std::min<int64_t>(omp_get_max_threads(), rows);
  auto lo = [&](int64_t c) { return c * rows / n; };
  std::vector<at::Tensor> out(static_cast<size_t>(n));
  std::vector<std::exception_ptr> err(static_cast<size_t>(n));
  const at::ThreadLocalState tls;  // grad / inference mode, autocast, ... for the team's threads
  // a team of n: the ICV set for the region (no num_threads clause, as ATen: pytorch#32008)
  ScopedIntraOpThreads team(static_cast<int>(n));
#pragma omp parallel
  {
    const int nt = omp_get_num_threads();
    for (int64_t c = omp_get_thread_num(); c < n; c += nt) {
      try {
        at::ThreadLocalStateGuard g(tls);
        ScopedIntraOpThreads one(1);
        out[static_cast<size_t>(c)] = forward(lo(c), lo(c + 1));
      } catch (...) {
        err[static_cast<size_t>(c)] = std::current_exception();
      }
    }
  }
  for (const auto& e : err)
    if (e) std::rethrow_exception(e);
  for (int64_t c = 0; c < n; ++c) {
    const auto& o = out[static_cast<size_t>(c)];
    if (!o.defined() || o.dim() == 0 || o.size(0) != lo(c + 1) - lo(c)) return forward(0, rows);  // not row-wise
  }
  return at::cat(out, 0);
}

ModalityBatch batch_rows(const ModalityBatch& mb, int64_t r0, int64_t r1) {
  return {rows_of(mb.data, r0, r1), rows_of(mb.lengths, r0, r1), rows_of(mb.present, r0, r1)};
}

Batch batch_rows(const Batch& b, int64_t r0, int64_t r1) {
  Batch s;
  r0 = std::clamp<int64_t>(r0, 0, b.size());
  r1 = std::clamp<int64_t>(r1, r0, b.size());
  s.index.assign(b.index.begin() + r0, b.index.begin() + r1);
  for (const auto& [k, mb] : b.mods) s.mods[k] = batch_rows(mb, r0, r1);
  s.labels = rows_of(b.labels, r0, r1);
  s.targets = rows_of(b.targets, r0, r1);
  return s;
}

}  // namespace braid::nn
