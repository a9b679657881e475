// braid/nn/fusion/concat.h — feature-level fusion by concatenation: z = [h_1; ...; h_M; presence bits].
#pragma once

#include "braid/core/config.h"
#include "braid/nn/fusion.h"

namespace braid::nn {

struct ConcatFusionOptions {
  bool presence_bits = true;  // append the [B, M] presence mask so the head knows what is missing
  static ConcatFusionOptions from_config(const Config& c);
};

class ConcatFusionImpl : public FusionImpl {
 public:
  ConcatFusionImpl(ConcatFusionOptions o, const FusionContext& ctx);
  torch::Tensor forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) override;
  ConcatFusionOptions options;
};

}  // namespace braid::nn
