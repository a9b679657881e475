// braid/nn/fusion/lmf.h — low-rank multimodal fusion (Liu et al. 2018, arXiv:1806.00064).
//
// z = Σ_r λ_r · Π_m ([h_m; 1] W_m^{(r)}) + bias, with W_m^{(r)} ∈ R^{(d_m+1) × out}: the TFN
// tensor's weight in rank-R factored form, without ever forming the tensor. Every factor, λ and
// the bias are registered parameters (MultiBench's version left the factors unregistered, so
// they were never trained).
#pragma once

#include "braid/core/config.h"
#include "braid/nn/fusion.h"

namespace braid::nn {

struct LMFFusionOptions {
  int64_t rank = 4;   // rank R of the factorization
  int64_t out = 128;  // output width o (= out_dim)
  static LMFFusionOptions from_config(const Config& c);
};

// Parameters: factor_<m> [R, d_m+1, out] (Xavier-normal), fusion_weights λ [R] (normal),
// fusion_bias [out] (zeros). An absent modality's h_m is 0, so its factor contributes its last
// row (the "1" term) only: the low-rank analogue of TFN's [0; 1]. One modality: Σ_r λ_r [h;1] W^{(r)} + bias.
class LMFFusionImpl : public FusionImpl {
 public:
  LMFFusionImpl(LMFFusionOptions o, const FusionContext& ctx);
  torch::Tensor forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) override;
  LMFFusionOptions options;

 private:
  std::vector<int64_t> dims_;
  std::vector<torch::Tensor> factors_;
  torch::Tensor lambda_, bias_;
};

}  // namespace braid::nn
