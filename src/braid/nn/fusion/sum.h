// braid/nn/fusion/sum.h — feature-level fusion by a projected sum: z = Σ_m present_m · (W_m h_m + b_m).
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include "braid/core/config.h"
#include "braid/nn/fusion.h"

namespace braid::nn {

struct SumFusionOptions {
  int64_t dim = 128;  // common width every modality is projected to (= out_dim)
  static SumFusionOptions from_config(const Config& c);
};

// Parameters: proj.<m>.{weight,bias} (Linear d_m -> dim). An absent modality adds 0; a row with
// nothing present gives 0. One modality: its projection.
class SumFusionImpl : public FusionImpl {
 public:
  SumFusionImpl(SumFusionOptions o, const FusionContext& ctx);
  torch::Tensor forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) override;
  SumFusionOptions options;

 private:
  std::vector<int64_t> dims_;
  torch::nn::ModuleList proj_{nullptr};
  std::vector<torch::nn::Linear> lin_;
};

}  // namespace braid::nn
