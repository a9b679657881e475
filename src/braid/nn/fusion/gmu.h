// braid/nn/fusion/gmu.h — gated multimodal unit (Arevalo et al. 2017, arXiv:1702.01992), generalized
// to M modalities: ĥ_m = tanh(W_m h_m + b_m), g = softmax over m of (W_g [h_1; ...; h_M] + b_g)
// per output unit, z = Σ_m g_m ⊙ ĥ_m. For M = 2 this is the paper's σ-gate
// (softmax of two logits = σ of their difference).
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include "braid/core/config.h"
#include "braid/nn/fusion.h"

namespace braid::nn {

struct GMUFusionOptions {
  int64_t dim = 128;  // width of every ĥ_m and of the output
  static GMUFusionOptions from_config(const Config& c);
};

// Parameters: hidden.<m>.{weight,bias} (Linear d_m -> dim), gate.{weight,bias}
// (Linear Σd_m -> M·dim; logits of modality m are columns [m·dim, (m+1)·dim)).
// Absent modalities are masked out of the gate softmax (the others' gates renormalize); a row
// with nothing present gives 0. One modality: g = 1, z = ĥ_1.
class GMUFusionImpl : public FusionImpl {
 public:
  GMUFusionImpl(GMUFusionOptions o, const FusionContext& ctx);
  torch::Tensor forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) override;
  GMUFusionOptions options;

 private:
  std::vector<int64_t> dims_;
  torch::nn::ModuleList hidden_{nullptr};
  std::vector<torch::nn::Linear> lin_;
  torch::nn::Linear gate_{nullptr};
};

}  // namespace braid::nn
