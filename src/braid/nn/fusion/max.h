// braid/nn/fusion/max.h — feature-level fusion by an elementwise max over the present modalities'
// projections: z = max_{m present} (W_m h_m + b_m).
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include "braid/core/config.h"
#include "braid/nn/fusion.h"

namespace braid::nn {

struct MaxFusionOptions {
  int64_t dim = 128;  // common width every modality is projected to (= out_dim)
  static MaxFusionOptions from_config(const Config& c);
};

// Parameters: proj.<m>.{weight,bias} (Linear d_m -> dim). Absent modalities are masked with -inf
// before the max; a row with nothing present gives 0. One modality: its projection.
class MaxFusionImpl : public FusionImpl {
 public:
  MaxFusionImpl(MaxFusionOptions o, const FusionContext& ctx);
  torch::Tensor forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) override;
  MaxFusionOptions options;

 private:
  std::vector<int64_t> dims_;
  torch::nn::ModuleList proj_{nullptr};
  std::vector<torch::nn::Linear> lin_;
};

}  // namespace braid::nn
