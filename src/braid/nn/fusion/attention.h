// braid/nn/fusion/attention.h — modality attention: p_m = W_m h_m + b_m (to dim),
// s_m = wᵀ tanh(W p_m + b), α = softmax over the present m, z = Σ_m α_m p_m.
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include "braid/core/config.h"
#include "braid/nn/fusion.h"

namespace braid::nn {

struct AttentionFusionOptions {
  int64_t dim = 128;     // common width every modality is projected to (= out_dim)
  int64_t hidden = 128;  // width of the scoring layer W (dim -> hidden)
  static AttentionFusionOptions from_config(const Config& c);
};

// Parameters: proj.<m>.{weight,bias} (Linear d_m -> dim), att.{weight,bias} (W, b: dim -> hidden,
// shared by all modalities), score.weight (w: hidden -> 1, no bias). Absent modalities get α = 0
// (softmax over the present ones); a row with nothing present gives 0. One modality: α = 1, z = p_1.
class AttentionFusionImpl : public FusionImpl {
 public:
  AttentionFusionImpl(AttentionFusionOptions o, const FusionContext& ctx);
  torch::Tensor forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) override;
  // Attention weights α [B, M] of the last forward (detached), for inspection.
  const torch::Tensor& last_weights() const { return last_alpha_; }
  AttentionFusionOptions options;

 private:
  std::vector<int64_t> dims_;
  torch::nn::ModuleList proj_{nullptr};
  std::vector<torch::nn::Linear> lin_;
  torch::nn::Linear att_{nullptr}, score_{nullptr};
  torch::Tensor last_alpha_;
};

}  // namespace braid::nn
