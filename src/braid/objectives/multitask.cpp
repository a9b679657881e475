// braid/objectives/multitask.cpp — weighted sum of objective terms.
#include "braid/objectives/multitask.h"

#include <torch/torch.h>

#include "braid/objectives/check.h"

namespace braid::objectives {

torch::Tensor weighted_sum(const std::map<std::string, torch::Tensor>& terms, const std::map<std::string, double>& weights,
                           std::map<std::string, double>* logged) {
  BRAID_INPUT_CHECK(!terms.empty(), "weighted_sum: no objective terms");
  for (const auto& [name, w] : weights) {
    if (terms.count(name)) continue;
    std::string known;
    for (const auto& t : terms) known += (known.empty() ? "" : ", ") + t.first;
    input_error("weighted_sum: weight '{}' names no objective term (terms: {})", name, known);
  }
  torch::Tensor total;
  for (const auto& [name, t] : terms) {
    BRAID_INPUT_CHECK(t.defined() && t.numel() == 1, "weighted_sum: term '{}' must be a scalar, got shape {}", name,
                      shape_str(t));
    auto it = weights.find(name);
    const double w = it == weights.end() ? 1.0 : it->second;
    auto term = t.reshape({}) * w;
    total = total.defined() ? total + term : term;
    if (logged) (*logged)[name] = t.detach().item<double>();
  }
  return total;
}

}  // namespace braid::objectives
