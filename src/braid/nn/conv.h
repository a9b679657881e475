// braid/nn/conv.h — the conv-BN-ReLU-maxpool stack the CNN encoders share (image_cnn,
// audio_cnn, image_grid). Its modules are registered on the owning encoder as `convs.N` and
// `norms.N`, the names checkpoints and the PyTorch peers use.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include <vector>

namespace braid::nn {

class ConvStack {
 public:
  ConvStack() = default;
  // 3×3 convolutions (no bias) with BatchNorm, `in` input channels, one block per entry of `channels`.
  // `channels_last`: run the blocks in the channels-last layout on CPU (the same function, other rounding;
  // recipe key `channels_last`, by default on under CPU bf16: run/pipeline.cpp, docs/results/engine.md).
  // ReLU + pooling run as one kernel (nn/pool.h) in either layout.
  ConvStack(torch::nn::Module& owner, int64_t in, const std::vector<int64_t>& channels, bool channels_last = false);
  // x [B, C, H, W]. After each block, 2×2 max pooling while H and W are both ≥ 2 (`ceil`: ceil
  // mode, and `len` — valid steps along W — is halved, rounding up).
  torch::Tensor forward(torch::Tensor x, bool ceil = false, torch::Tensor* len = nullptr);
  int64_t out_channels() const { return out_; }

 private:
  torch::nn::ModuleList convs_{nullptr}, norms_{nullptr};
  int64_t out_ = 0;
  bool channels_last_ = false;
};

}  // namespace braid::nn
