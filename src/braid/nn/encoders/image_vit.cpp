#include "braid/nn/encoders/image_vit.h"

#include <torch/torch.h>

#include "braid/core/op_profile.h"
#include "braid/nn/fused_infer.h"
#include "braid/nn/prepack.h"

namespace braid::nn {

ImageViTOptions ImageViTOptions::from_config(const Config& c) {
  ImageViTOptions o;
  o.patch = c.get<int64_t>("patch", o.patch);
  o.dim = c.get<int64_t>("dim", o.dim);
  o.depth = c.get<int64_t>("depth", o.depth);
  o.heads = c.get<int64_t>("heads", o.heads);
  o.mlp_ratio = c.get<int64_t>("mlp_ratio", o.mlp_ratio);
  o.dropout = c.get<double>("dropout", o.dropout);
  BRAID_INPUT_CHECK(o.patch > 0, "{}: recipe key '{}' must be positive", c.origin(), c.full("patch"));
  BRAID_INPUT_CHECK(o.dim > 0 && o.heads > 0 && o.dim % o.heads == 0, "{}: '{}': dim must be a positive multiple of heads",
                    c.origin(), c.path());
  BRAID_INPUT_CHECK(o.depth >= 1 && o.mlp_ratio >= 1, "{}: '{}': depth and mlp_ratio must be at least 1", c.origin(),
                    c.path());
  return o;
}

ImageViTImpl::ImageViTImpl(ImageViTOptions o, const EncoderContext& ctx) : options(o) {
  BRAID_INPUT_CHECK(ctx.image_size >= o.patch, "image_vit: patch {} is larger than the {}-px images (data.image.size)",
                    o.patch, ctx.image_size);
  const int64_t side = ctx.image_size / o.patch;
  n_patches_ = side * side;
  patch_ = register_module("patch", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, o.dim, o.patch).stride(o.patch)));
  cls_ = register_parameter("cls", torch::randn({1, 1, o.dim}) * 0.02);
  pos_ = register_parameter("pos", torch::randn({1, n_patches_ + 1, o.dim}) * 0.02);
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.depth; ++i)
    blocks_->push_back(TransformerBlock(TransformerBlockOptions{o.dim, o.heads, o.mlp_ratio, o.dropout}));
  ln_ = register_module("ln", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
  out_dim_ = o.dim;
}

torch::Tensor ImageViTImpl::tokens(const torch::Tensor& images) {
  torch::Tensor x;
  {
    BRAID_OP_SCOPE("vit.patch_embed");  // per-op timing (core/op_profile.h)
    if (fused_infer_applies(images) && patch_->weight.scalar_type() == at::kFloat) {
      // inference (nn/fused_infer.h): the stride-`patch` convolution as one GEMM over the patches laid out as rows
      // [B, N, C·p·p] (channel, row, column: the weight's order), which also gives the tokens' [B, N, dim] layout
      const int64_t p = options.patch, B = images.size(0), C = images.size(1);
      const int64_t sh = images.size(2) / p, sw = images.size(3) / p;  // the convolution drops a remainder
      auto rows = images.slice(2, 0, sh * p).slice(3, 0, sw * p).reshape({B, C, sh, p, sw, p})
                      .permute({0, 2, 4, 1, 3, 5}).reshape({B, sh * sw, C * p * p});
      x = packed_linear(rows, patch_->weight, patch_->bias);  // oneDNN on the weight prepack_linears packed
      if (!x.defined()) x = at::linear(rows, patch_->weight.reshape({options.dim, C * p * p}), patch_->bias);
    } else {
      x = patch_->forward(images).flatten(2).transpose(1, 2);  // [B, N, dim]
    }
  }
  BRAID_INPUT_CHECK(x.size(1) == n_patches_, "image_vit: {}x{} images give {} patches, the model was built for {}",
                    images.size(2), images.size(3), x.size(1), n_patches_);
  {
    BRAID_OP_SCOPE("vit.cls+pos");
    x = torch::cat({cls_.expand({x.size(0), 1, options.dim}), x}, 1) + pos_;
  }
  for (auto& b : *blocks_) x = b->as<TransformerBlock>()->forward(x);
  BRAID_OP_SCOPE("vit.final_ln");
  return layer_norm_inference(*ln_, x);
}

torch::Tensor ImageViTImpl::encode(const ModalityBatch& mb) { return tokens(mb.data).select(1, 0); }

}  // namespace braid::nn
