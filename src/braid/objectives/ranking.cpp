// braid/objectives/ranking.cpp — DeViSE hinge ranking loss.
#include "braid/objectives/ranking.h"

#include <torch/torch.h>

#include "braid/objectives/check.h"

namespace braid::objectives {

torch::Tensor devise_loss(const torch::Tensor& scores, const torch::Tensor& labels, double margin) {
  check_dim(scores, 2, "devise_loss", "scores");
  check_dim(labels, 1, "devise_loss", "labels");
  BRAID_INPUT_CHECK(labels.size(0) == scores.size(0) && scores.size(0) > 0,
                    "devise_loss: scores {} and labels {} must have the same (non-zero) batch size",
                    shape_str(scores), shape_str(labels));
  const int64_t k = scores.size(1);
  auto y = labels.to(torch::kLong);
  BRAID_INPUT_CHECK(y.min().item<int64_t>() >= 0 && y.max().item<int64_t>() < k,
                    "devise_loss: labels must be in [0, {}) for scores {}, got range [{}, {}]", k, shape_str(scores),
                    y.min().item<int64_t>(), y.max().item<int64_t>());
  auto pos = scores.gather(1, y.unsqueeze(1));                          // [B, 1]
  auto hinge = torch::clamp_min(margin - pos + scores, 0.0);            // [B, K]
  auto not_true = torch::ones_like(hinge).scatter_(1, y.unsqueeze(1), 0.0);
  return (hinge * not_true).sum(1).mean();
}

}  // namespace braid::objectives
