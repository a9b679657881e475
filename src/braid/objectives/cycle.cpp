// braid/objectives/cycle.cpp — cycle-consistency loss.
#include "braid/objectives/cycle.h"

#include <torch/torch.h>

#include "braid/objectives/check.h"

namespace braid::objectives {

torch::Tensor cycle_loss(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& a2b,
                         const torch::Tensor& b2a, const torch::Tensor& a2b2a, const torch::Tensor& b2a2b) {
  check_same(a2b, b, "cycle_loss", "a2b", "b");
  check_same(a2b2a, a, "cycle_loss", "a2b2a", "a");
  check_same(b2a, a, "cycle_loss", "b2a", "a");
  check_same(b2a2b, b, "cycle_loss", "b2a2b", "b");
  auto mse = [](const torch::Tensor& x, const torch::Tensor& y) { return (x - y).pow(2).mean(); };
  return mse(a2b, b) + mse(a2b2a, a) + mse(b2a, a) + mse(b2a2b, b);
}

}  // namespace braid::objectives
