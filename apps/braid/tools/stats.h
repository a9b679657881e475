// apps/braid/tools/stats.h — the summary statistic of the benchmarks' repeats.
#pragma once

#include <algorithm>
#include <vector>

namespace braid::tools {

// The median of v (the upper one for an even count); 0 for none.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace braid::tools
