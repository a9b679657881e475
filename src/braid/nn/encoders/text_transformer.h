// braid/nn/encoders/text_transformer.h — Transformer text encoder over sub-word ids.
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>

#include "braid/core/config.h"
#include "braid/nn/blocks.h"
#include "braid/nn/encoder.h"

namespace braid::nn {

struct TextTransformerOptions {
  int64_t dim = 128;        // model and output width
  int64_t layers = 2;       // pre-norm blocks
  int64_t heads = 4;        // attention heads
  int64_t max_len = 64;     // longest input (learned positions)
  double dropout = 0.1;
  static TextTransformerOptions from_config(const Config& c);
};

// ids [B, L] -> token + position embeddings -> blocks (padding masked) -> LayerNorm -> masked mean.
class TextTransformerImpl : public EncoderImpl {
 public:
  TextTransformerImpl(TextTransformerOptions o, const EncoderContext& ctx);
  TextTransformerOptions options;

 protected:
  torch::Tensor encode(const ModalityBatch& mb) override;

 private:
  torch::nn::Embedding tok_{nullptr}, pos_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm ln_{nullptr};
};

}  // namespace braid::nn
