// braid/objectives/cmcm.cpp — cross-modal code matching loss.
#include "braid/objectives/cmcm.h"

#include <torch/torch.h>

namespace braid::objectives {

torch::Tensor code_distribution(const torch::Tensor& s, const torch::Tensor& codebook) {
  auto e = codebook.detach();
  auto d2 = s.pow(2).sum(-1, true) - 2 * s.matmul(e.t()) + e.pow(2).sum(1);  // [B, T, K]
  auto d = d2.clamp_min(1e-12).sqrt();
  return torch::softmax(-d, -1).mean(1);
}

torch::Tensor cmcm_loss(const std::vector<torch::Tensor>& s, const torch::Tensor& codebook) {
  TORCH_CHECK(s.size() >= 2, "cmcm: needs two modalities");
  std::vector<torch::Tensor> p, lp;
  for (const auto& x : s) {
    p.push_back(code_distribution(x, codebook));
    lp.push_back(p.back().clamp_min(1e-30).log());
  }
  auto loss = torch::zeros({}, s[0].options());
  for (size_t a = 0; a < s.size(); ++a)
    for (size_t b = a + 1; b < s.size(); ++b) {
      auto S = p[a].matmul(lp[b].t()) + p[b].matmul(lp[a].t());  // [B, B]
      auto labels = torch::arange(S.size(0), torch::TensorOptions().dtype(torch::kLong).device(S.device()));
      loss = loss + torch::nn::functional::cross_entropy(S, labels);
    }
  return 0.5 * loss;
}

}  // namespace braid::objectives
