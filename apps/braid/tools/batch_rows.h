// apps/braid/tools/batch_rows.h — the first rows of a batch, for the benchmarks' batch-1 timings.
#pragma once

#include <algorithm>
#include <cstdint>

#include "braid/core/batch.h"

namespace braid::tools {

// The first min(n, B) samples of `b` (views, no copies).
inline Batch first_rows(const Batch& b, int64_t n) {
  Batch s;
  n = std::min(n, b.size());
  s.index.assign(b.index.begin(), b.index.begin() + n);
  for (const auto& [k, mb] : b.mods)
    s.mods[k] = {mb.data.defined() ? mb.data.slice(0, 0, n) : mb.data, mb.lengths.slice(0, 0, n), mb.present.slice(0, 0, n)};
  if (b.labels.defined()) s.labels = b.labels.slice(0, 0, n);
  if (b.targets.defined()) s.targets = b.targets.slice(0, 0, n);
  return s;
}

}  // namespace braid::tools
