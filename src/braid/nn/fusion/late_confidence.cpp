#include "braid/nn/fusion/late_confidence.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace braid::nn {

torch::Tensor expert_confidence(const torch::Tensor& logp) {
  TORCH_CHECK(logp.dim() == 3 && logp.size(2) >= 2, "late_conf: logp must be [B, M, K] with K >= 2, got ",
              logp.sizes());
  const double log_k = std::log(static_cast<double>(logp.size(2)));
  // p log p with 0 log 0 = 0 (a class an expert rules out entirely has logp = -inf)
  auto plogp = torch::where(logp > -std::numeric_limits<double>::infinity(), logp.exp() * logp, torch::zeros_like(logp));
  auto entropy = -plogp.sum(-1);  // [B, M]
  return (1.0 - entropy / log_k).clamp(0.0, 1.0);
}

torch::Tensor confidence_rank(const torch::Tensor& c, const torch::Tensor& ranks) {
  TORCH_CHECK(c.dim() == 2 && ranks.dim() == 2 && ranks.size(0) == c.size(1) && ranks.size(1) >= 1,
              "late_conf: ranks must be [M, Q] with M = ", c.size(c.dim() - 1), ", got ", ranks.sizes());
  auto ref = ranks.to(c.scalar_type()).contiguous();                                  // [M, Q]
  auto below = torch::searchsorted(ref, c.t().contiguous(), /*out_int32=*/false, /*right=*/true);  // [M, B]
  return (below.to(c.scalar_type()) / static_cast<double>(ranks.size(1))).t();
}

torch::Tensor confidence_weights(const torch::Tensor& logp, const torch::Tensor& present, double power,
                                 const torch::Tensor& ranks, const torch::Tensor& trust) {
  TORCH_CHECK(power >= 0, "late_conf: power must be >= 0, got ", power);
  TORCH_CHECK(present.dim() == 2 && logp.dim() == 3 && present.size(0) == logp.size(0) &&
                  present.size(1) == logp.size(1),
              "late_conf: present must be [B, M] = ", logp.sizes().slice(0, std::min<int64_t>(2, logp.dim())),
              ", got ", present.sizes());
  auto pres = present.to(logp.scalar_type());
  // a tiny floor keeps c^power > 0, so present experts that are all at c = 0 share equally
  // where, not a product: an absent expert's outputs may be anything, NaN included
  auto c = ranks.defined() ? confidence_rank(expert_confidence(logp), ranks) : expert_confidence(logp);
  auto score = c.clamp_min(1e-6).pow(power);
  if (trust.defined()) {
    TORCH_CHECK(trust.sizes() == present.sizes(), "late_conf: trust must be ", present.sizes(), ", got ", trust.sizes());
    // the same floor: experts that are all at trust 0 fall back to their confidences
    score = score * trust.to(score.scalar_type()).clamp(1e-6, 1.0);
  }
  auto raw = torch::where(pres > 0, score, torch::zeros_like(pres));
  return raw / raw.sum(1, true).clamp_min(1e-30);                         // rows with nothing present stay 0
}

torch::Tensor confidence_fuse(const torch::Tensor& logp, const torch::Tensor& present, double power,
                              const torch::Tensor& ranks, const torch::Tensor& trust) {
  auto w = confidence_weights(logp.detach(), present, power, ranks, trust.defined() ? trust.detach() : trust);  // [B, M]
  // an absent expert's log-probabilities may be anything (its encoder saw zeros): mask them out
  // rather than multiply, so a -inf there cannot turn into NaN
  auto votes = torch::where(w.unsqueeze(-1) > 0, w.unsqueeze(-1) * logp, torch::zeros_like(logp));
  return torch::log_softmax(votes.sum(1), -1);  // [B, K]
}

torch::Tensor knn_distance(const torch::Tensor& x, const torch::Tensor& ref, int64_t k, bool leave_one_out) {
  TORCH_CHECK(x.dim() == 2 && ref.dim() == 2 && x.size(1) == ref.size(1), "late_conf: knn_distance needs x [B, D] and ref [N, D], got ",
              x.sizes(), " and ", ref.sizes());
  const int64_t n = ref.size(0) - (leave_one_out ? 1 : 0);
  TORCH_CHECK(k >= 1 && k <= n, "late_conf: k-NN with k = ", k, " needs at least ", k + (leave_one_out ? 1 : 0),
              " reference rows, got ", ref.size(0));
  TORCH_CHECK(!leave_one_out || x.size(0) == ref.size(0), "late_conf: leave-one-out needs x = ref");
  namespace F = torch::nn::functional;
  auto xn = F::normalize(x, F::NormalizeFuncOptions().dim(1)), rn = F::normalize(ref.to(x.scalar_type()), F::NormalizeFuncOptions().dim(1));
  // unit vectors: |a - b|^2 = 2 - 2 a.b
  auto d2 = (2.0 - 2.0 * xn.mm(rn.t())).clamp_min(0.0);  // [B, N]
  if (leave_one_out) d2.diagonal().fill_(std::numeric_limits<double>::infinity());
  auto kth = std::get<0>(d2.topk(k, 1, /*largest=*/false, /*sorted=*/true)).select(1, k - 1);
  return kth.sqrt();
}

torch::Tensor shift_trust(const torch::Tensor& d, const torch::Tensor& quantiles, double alpha) {
  TORCH_CHECK(alpha > 0 && alpha <= 1, "late_conf: shift_alpha must be in (0, 1], got ", alpha);
  TORCH_CHECK(d.dim() == 1 && quantiles.dim() == 1 && quantiles.numel() >= 1,
              "late_conf: shift_trust needs d [B] and quantiles [Q], got ", d.sizes(), " and ", quantiles.sizes());
  const auto q = quantiles.to(d.scalar_type()).contiguous();
  auto below = torch::searchsorted(q, d.contiguous(), /*out_int32=*/false, /*right=*/false);  // count of q < d
  auto share = (static_cast<double>(q.numel()) - below.to(d.scalar_type())) / static_cast<double>(q.numel());
  return (share / alpha).clamp_max(1.0);
}

double temperature_nll(const torch::Tensor& logits, const torch::Tensor& labels, double temperature) {
  auto z = logits.to(torch::kDouble) / temperature;
  return torch::nll_loss(torch::log_softmax(z, -1), labels).item<double>();
}

double fit_temperature(const torch::Tensor& logits, const torch::Tensor& labels) {
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) >= 2, "late_conf: logits must be [N, K] with K >= 2, got ",
              logits.sizes());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0), "late_conf: labels must be [", logits.size(0),
              "], got ", labels.sizes());
  if (logits.size(0) == 0) return 1.0;
  torch::NoGradGuard ng;
  const auto z = logits.detach().to(torch::kDouble);
  const auto y = labels.to(torch::kLong);
  // NLL(1/T) is convex, so unimodal in log T: golden-section search on [log Tmin, log Tmax]
  auto f = [&](double log_t) { return temperature_nll(z, y, std::exp(log_t)); };
  const double g = (std::sqrt(5.0) - 1) / 2;
  double a = std::log(kMinTemperature), b = std::log(kMaxTemperature);
  double c = b - g * (b - a), d = a + g * (b - a), fc = f(c), fd = f(d);
  for (int i = 0; i < 60; ++i) {  // the bracket shrinks by 0.618 per step: 60 steps reach ~1e-12 of 6 in log T
    if (fc < fd) {
      b = d, d = c, fd = fc;
      c = b - g * (b - a), fc = f(c);
    } else {
      a = c, c = d, fc = fd;
      d = a + g * (b - a), fd = f(d);
    }
  }
  const double t = std::exp((a + b) / 2);
  // the ends of the range are candidates too (a minimum at a bound)
  double best = t, fb = f(std::log(t));
  for (double e : {kMinTemperature, kMaxTemperature})
    if (const double fe = temperature_nll(z, y, e); fe < fb) best = e, fb = fe;
  return best;
}

}  // namespace braid::nn
