// Event localization scores (segment accuracy, event-boundary F1); rules in localization.h.
#include "braid/eval/localization.h"

#include <cmath>
#include <cstdlib>

#include "braid/core/error.h"

namespace braid::eval {

std::vector<EventSpan> event_spans(const std::vector<int64_t>& segments) {
  std::vector<EventSpan> spans;
  const int64_t n = static_cast<int64_t>(segments.size());
  for (int64_t t = 0; t < n;) {
    const int64_t c = segments[static_cast<size_t>(t)];
    BRAID_INPUT_CHECK(c >= 0, "segment {} has class id {}; expected 0 (background) or a class id >= 1", t, c);
    int64_t e = t + 1;
    while (e < n && segments[static_cast<size_t>(e)] == c) ++e;
    if (c > 0) spans.push_back({t, e, c});
    t = e;
  }
  return spans;
}

double BoundaryCounts::precision() const {
  return predicted == 0 ? 1.0 : static_cast<double>(matched) / static_cast<double>(predicted);
}
double BoundaryCounts::recall() const { return truth == 0 ? 1.0 : static_cast<double>(matched) / static_cast<double>(truth); }
double BoundaryCounts::f1() const {
  const double p = precision(), r = recall();
  return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

BoundaryCounts match_events(const std::vector<EventSpan>& predicted, const std::vector<EventSpan>& truth,
                            int64_t tolerance) {
  BRAID_INPUT_CHECK(tolerance >= 0, "event-boundary tolerance is {}; expected >= 0 segments", tolerance);
  BoundaryCounts c;
  c.predicted = static_cast<int64_t>(predicted.size());
  c.truth = static_cast<int64_t>(truth.size());
  std::vector<bool> used(truth.size(), false);
  for (const auto& p : predicted)
    for (size_t k = 0; k < truth.size(); ++k) {
      const auto& g = truth[k];
      if (used[k] || g.cls != p.cls || std::llabs(g.start - p.start) > tolerance || std::llabs(g.end - p.end) > tolerance)
        continue;
      used[k] = true;
      c.matched++;
      break;
    }
  return c;
}

namespace {

// [N, T] integer ids as int64 on the CPU; InputError naming `what` otherwise.
torch::Tensor as_ids(const torch::Tensor& x, const char* what) {
  BRAID_INPUT_CHECK(x.defined() && x.dim() == 2, "{}: expected per-segment ids [N, T], got {} dims", what,
                    x.defined() ? x.dim() : 0);
  auto c = x.to(torch::kCPU);
  if (c.is_floating_point()) {
    BRAID_INPUT_CHECK(c.numel() == 0 || torch::equal(c, c.round()), "{}: per-segment ids must be integers", what);
    BRAID_INPUT_CHECK(c.numel() == 0 || torch::isfinite(c).all().item<bool>(), "{}: per-segment ids must be finite", what);
  }
  return c.to(torch::kLong).contiguous();
}

}  // namespace

nlohmann::json localization_metrics(const torch::Tensor& pred_in, const torch::Tensor& truth_in, int64_t tolerance) {
  auto pred = as_ids(pred_in, "predictions"), truth = as_ids(truth_in, "truth");
  BRAID_INPUT_CHECK(pred.sizes() == truth.sizes(), "predictions [{}] and truth [{}] differ in shape", fmt::join(pred.sizes(), ", "),
                    fmt::join(truth.sizes(), ", "));
  const int64_t N = truth.size(0), T = truth.size(1);
  BRAID_INPUT_CHECK((pred >= 0).all().item<bool>() && (truth >= 0).all().item<bool>(),
                    "per-segment ids must be >= 0 (0 = background)");
  const auto* pp = pred.data_ptr<int64_t>();
  const auto* tp = truth.data_ptr<int64_t>();
  int64_t correct = 0, event_total = 0, event_correct = 0, bg_total = 0, bg_correct = 0;
  BoundaryCounts tol, exact;
  for (int64_t i = 0; i < N; ++i) {
    std::vector<int64_t> p(pp + i * T, pp + (i + 1) * T), g(tp + i * T, tp + (i + 1) * T);
    for (int64_t t = 0; t < T; ++t) {
      const bool ok = p[static_cast<size_t>(t)] == g[static_cast<size_t>(t)];
      correct += ok;
      if (g[static_cast<size_t>(t)] == 0) bg_total++, bg_correct += ok;
      else event_total++, event_correct += ok;
    }
    const auto ps = event_spans(p), gs = event_spans(g);
    for (auto [acc, tl] : {std::pair<BoundaryCounts*, int64_t>{&tol, tolerance}, {&exact, int64_t{0}}}) {
      auto c = match_events(ps, gs, tl);
      acc->matched += c.matched, acc->predicted += c.predicted, acc->truth += c.truth;
    }
  }
  auto ratio = [](int64_t a, int64_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b); };
  return {{"n", N},
          {"segments", N * T},
          {"segment_accuracy", ratio(correct, N * T)},
          {"event_segment_accuracy", ratio(event_correct, event_total)},
          {"background_accuracy", ratio(bg_correct, bg_total)},
          {"boundary_f1", tol.f1()},
          {"boundary_precision", tol.precision()},
          {"boundary_recall", tol.recall()},
          {"boundary_f1_exact", exact.f1()},
          {"tolerance", tolerance},
          {"events", tol.truth},
          {"predicted_events", tol.predicted}};
}

}  // namespace braid::eval
