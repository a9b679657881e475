// braid/objectives/itm.cpp — hard-negative sampling and the ITM loss.
#include "braid/objectives/itm.h"

#include <torch/torch.h>

#include <limits>

#include "braid/objectives/check.h"
#include "braid/objectives/supervised.h"

namespace braid::objectives {

torch::Tensor sample_hard_negatives(const torch::Tensor& sim) {
  check_dim(sim, 2, "sample_hard_negatives", "sim");
  BRAID_INPUT_CHECK(sim.size(0) == sim.size(1) && sim.size(0) >= 2,
                    "sample_hard_negatives: sim must be square [B, B] with B >= 2, got {}", shape_str(sim));
  torch::NoGradGuard no_grad;
  auto s = sim.detach().to(torch::kFloat);
  BRAID_INPUT_CHECK(torch::isfinite(s).all().item<bool>(), "sample_hard_negatives: sim {} has NaN or infinite entries",
                    shape_str(sim));
  auto eye = torch::eye(s.size(0), s.options().dtype(torch::kBool));
  auto probs = torch::softmax(s.masked_fill(eye, -std::numeric_limits<float>::infinity()), 1);
  return torch::multinomial(probs, 1, /*replacement=*/false).squeeze(1);
}

torch::Tensor itm_loss(const torch::Tensor& logits, const torch::Tensor& is_match) {
  check_dim(logits, 2, "itm_loss", "logits");
  check_dim(is_match, 1, "itm_loss", "is_match");
  BRAID_INPUT_CHECK(logits.size(1) == 2 && logits.size(0) == is_match.size(0) && logits.size(0) > 0,
                    "itm_loss: logits {} must be [N, 2] for is_match {}", shape_str(logits), shape_str(is_match));
  auto y = is_match.to(torch::kLong);
  BRAID_INPUT_CHECK(y.ge(0).logical_and(y.le(1)).all().item<bool>(), "itm_loss: is_match must be 0/1 (shape {})",
                    shape_str(is_match));
  return cross_entropy(logits, y);
}

}  // namespace braid::objectives
