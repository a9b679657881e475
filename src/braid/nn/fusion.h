// braid/nn/fusion.h — the fusion interface and its registry.
//
// A fusion combines per-modality vectors h_m [B, d_m] into one vector [B, out_dim()].
// `present` [B, M] (float 0/1) says which modalities each sample has; absent h_m rows are zero.
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <vector>

#include "braid/core/registry.h"

namespace braid::nn {

struct FusionContext {
  std::vector<std::string> modalities;  // in the order of `feats`
  std::vector<int64_t> dims;            // d_m of each modality
};

class FusionImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) = 0;
  int64_t out_dim() const { return out_dim_; }

 protected:
  int64_t out_dim_ = 0;
};

using FusionPtr = std::shared_ptr<FusionImpl>;
using FusionRegistry = Registry<FusionPtr, const FusionContext&>;
const FusionRegistry& fusion_registry();

}  // namespace braid::nn
