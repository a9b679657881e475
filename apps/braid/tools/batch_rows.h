// apps/braid/tools/batch_rows.h — the first rows of a batch, for the benchmarks' batch-1 timings.
#pragma once

#include <cstdint>

#include "braid/core/batch.h"
#include "braid/nn/infer_threads.h"

namespace braid::tools {

// The first min(n, B) samples of `b` (views, no copies).
inline Batch first_rows(const Batch& b, int64_t n) { return nn::batch_rows(b, 0, n); }

}  // namespace braid::tools
