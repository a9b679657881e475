#include "braid/objectives/supervised.h"

#include <torch/torch.h>

namespace braid::objectives {

torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels, double smoothing) {
  auto logp = torch::log_softmax(logits, 1);
  auto nll = -logp.gather(1, labels.unsqueeze(1)).squeeze(1);
  if (smoothing <= 0) return nll.mean();
  auto uniform = -logp.mean(1);
  return ((1.0 - smoothing) * nll + smoothing * uniform).mean();
}

torch::Tensor concordance(const torch::Tensor& x, const torch::Tensor& y) {
  auto mx = x.mean(0), my = y.mean(0);
  auto vx = (x - mx).pow(2).mean(0), vy = (y - my).pow(2).mean(0);
  auto cov = ((x - mx) * (y - my)).mean(0);
  return 2 * cov / (vx + vy + (mx - my).pow(2) + 1e-12);
}

torch::Tensor ccc_loss(const torch::Tensor& pred, const torch::Tensor& target) {
  return 1 - concordance(pred, target).mean();
}

}  // namespace braid::objectives
