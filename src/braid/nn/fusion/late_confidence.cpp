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

torch::Tensor confidence_weights(const torch::Tensor& logp, const torch::Tensor& present, double power) {
  TORCH_CHECK(power >= 0, "late_conf: power must be >= 0, got ", power);
  TORCH_CHECK(present.dim() == 2 && logp.dim() == 3 && present.size(0) == logp.size(0) &&
                  present.size(1) == logp.size(1),
              "late_conf: present must be [B, M] = ", logp.sizes().slice(0, std::min<int64_t>(2, logp.dim())),
              ", got ", present.sizes());
  auto pres = present.to(logp.scalar_type());
  // a tiny floor keeps c^power > 0, so present experts that are all at c = 0 share equally
  // where, not a product: an absent expert's outputs may be anything, NaN included
  auto raw = torch::where(pres > 0, expert_confidence(logp).clamp_min(1e-6).pow(power), torch::zeros_like(pres));
  return raw / raw.sum(1, true).clamp_min(1e-30);                         // rows with nothing present stay 0
}

torch::Tensor confidence_fuse(const torch::Tensor& logp, const torch::Tensor& present, double power) {
  auto w = confidence_weights(logp.detach(), present, power);  // [B, M]
  // an absent expert's log-probabilities may be anything (its encoder saw zeros): mask them out
  // rather than multiply, so a -inf there cannot turn into NaN
  auto votes = torch::where(w.unsqueeze(-1) > 0, w.unsqueeze(-1) * logp, torch::zeros_like(logp));
  return torch::log_softmax(votes.sum(1), -1);  // [B, K]
}

}  // namespace braid::nn
