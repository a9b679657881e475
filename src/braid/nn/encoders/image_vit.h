// braid/nn/encoders/image_vit.h — small Vision Transformer image encoder.
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>

#include "braid/core/config.h"
#include "braid/nn/blocks.h"
#include "braid/nn/encoder.h"

namespace braid::nn {

struct ImageViTOptions {
  int64_t patch = 4;        // patch side in pixels (the patch-embedding conv's kernel and stride)
  int64_t dim = 128;        // token and output width
  int64_t depth = 4;        // pre-norm Transformer blocks
  int64_t heads = 4;        // attention heads (dim % heads == 0)
  int64_t mlp_ratio = 4;    // feed-forward width = mlp_ratio · dim
  double dropout = 0.0;
  static ImageViTOptions from_config(const Config& c);
};

// [B, 3, S, S] -> Conv2d(k = stride = patch) -> (S/patch)² patch tokens, a learned class token in
// front, learned positions -> pre-norm blocks -> LayerNorm -> the class token [B, dim].
class ImageViTImpl : public EncoderImpl {
 public:
  ImageViTImpl(ImageViTOptions o, const EncoderContext& ctx);
  ImageViTOptions options;
  // All tokens after the final LayerNorm: [B, 1 + N, dim] (token 0 is the class token).
  torch::Tensor tokens(const torch::Tensor& images);
  int64_t num_patches() const { return n_patches_; }

 protected:
  torch::Tensor encode(const ModalityBatch& mb) override;

 private:
  int64_t n_patches_ = 0;
  torch::nn::Conv2d patch_{nullptr};
  torch::Tensor cls_, pos_;
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm ln_{nullptr};
};

}  // namespace braid::nn
