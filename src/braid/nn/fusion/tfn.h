// braid/nn/fusion/tfn.h — tensor fusion network (Zadeh et al. 2017, arXiv:1707.07250).
//
// Each h_m is projected to a small width d: z_m = W_m h_m + b_m; the fused tensor is
// t = vec([z_1; 1] ⊗ [z_2; 1] ⊗ ... ⊗ [z_M; 1]) of size Π(d+1) (the appended 1 keeps the
// unimodal and lower-order terms; modality 1 is the slowest index), and the paper's
// post-fusion network follows: out = ReLU(W_o dropout(t) + b_o).
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include "braid/core/config.h"
#include "braid/nn/fusion.h"

namespace braid::nn {

struct TFNFusionOptions {
  int64_t dim = 16;      // width d of each projected modality; keep it ≤ 32 (the tensor has (d+1)^M entries)
  int64_t out = 128;     // width of the post-fusion layer (= out_dim)
  double dropout = 0.0;  // dropout on the fused tensor before the post-fusion layer
  static TFNFusionOptions from_config(const Config& c);
};

// The fused tensor may have at most this many entries per sample (else the constructor throws).
inline constexpr int64_t kTFNMaxTensor = int64_t{1} << 20;

// Parameters: proj.<m>.{weight,bias} (Linear d_m -> dim), post.{weight,bias} (Linear Π(dim+1) -> out).
// An absent modality has z_m = 0, so its factor is [0; 1] and only the terms without it remain.
// One modality: ReLU(W_o [z_1; 1] + b_o).
class TFNFusionImpl : public FusionImpl {
 public:
  TFNFusionImpl(TFNFusionOptions o, const FusionContext& ctx);
  torch::Tensor forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) override;
  TFNFusionOptions options;

 private:
  std::vector<int64_t> dims_;
  torch::nn::ModuleList proj_{nullptr};
  std::vector<torch::nn::Linear> lin_;
  torch::nn::Dropout drop_{nullptr};
  torch::nn::Linear post_{nullptr};
};

}  // namespace braid::nn
