// braid/nn/fusion/mfb.h — multimodal factorized bilinear pooling (Yu et al. 2017, arXiv:1708.01471).
//
// For a pair (x, y): z̃ = (U x + b_U) ⊙ (V y + b_V) ∈ R^{k·o}, dropout, sum-pool every k consecutive
// entries -> z ∈ R^o, power normalization, then L2 normalization z / max(‖z‖₂, 1e-12).
// Power normalization is sign(z)·(√(|z| + ε) − √ε): the paper's sign(z)·√|z| shifted by ε so that
// its gradient 1/(2√(|z| + ε)) stays finite at z = 0 (√|z| has an infinite slope there and the
// reference code's √relu(z) − √relu(−z) gives NaN gradients); it is exact at 0 and within √ε of
// the paper elsewhere.
// M = 2: one pair, out_dim = o. M > 2: every pair (i < j, in order (0,1), (0,2), ..., (1,2), ...)
// has its own U, V and the pair outputs are concatenated: out_dim = M(M−1)/2 · o.
// M = 1: z̃ = U x + b_U (no second factor), then the same pooling and normalizations.
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include <utility>

#include "braid/core/config.h"
#include "braid/nn/fusion.h"

namespace braid::nn {

struct MFBFusionOptions {
  int64_t k = 5;            // factor count per output unit (sum-pool window)
  int64_t out = 256;        // output width o per pair (the paper uses 1000)
  double dropout = 0.1;     // dropout on z̃ before the sum-pooling (as the paper)
  double power_eps = 1e-6;  // ε of the power normalization sign(z)(√(|z|+ε) − √ε)
  static MFBFusionOptions from_config(const Config& c);
};

// Parameters: u.<p>.{weight,bias} (Linear d_i -> k·out), v.<p>.{weight,bias} (Linear d_j -> k·out)
// for pair p = (i, j). A pair with either modality absent gives a zero block (z̃ is multiplied by
// both presence bits before pooling).
class MFBFusionImpl : public FusionImpl {
 public:
  MFBFusionImpl(MFBFusionOptions o, const FusionContext& ctx);
  torch::Tensor forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) override;
  // The modality pairs in output order ((0, -1) for a single modality).
  const std::vector<std::pair<int64_t, int64_t>>& pairs() const { return pairs_; }
  MFBFusionOptions options;

 private:
  std::vector<int64_t> dims_;
  std::vector<std::pair<int64_t, int64_t>> pairs_;
  torch::nn::ModuleList u_{nullptr}, v_{nullptr};
  std::vector<torch::nn::Linear> ul_, vl_;
  torch::nn::Dropout drop_{nullptr};
};

}  // namespace braid::nn
