#include "braid/nn/encoders/text_transformer.h"

#include <torch/torch.h>

#include "braid/core/op_profile.h"
#include "braid/nn/fused_infer.h"

namespace braid::nn {

TextTransformerOptions TextTransformerOptions::from_config(const Config& c) {
  TextTransformerOptions o;
  o.dim = c.get<int64_t>("dim", o.dim);
  o.layers = c.get<int64_t>("layers", o.layers);
  o.heads = c.get<int64_t>("heads", o.heads);
  o.max_len = c.get<int64_t>("max_len", o.max_len);
  o.dropout = c.get<double>("dropout", o.dropout);
  BRAID_INPUT_CHECK(o.dim > 0 && o.heads > 0 && o.dim % o.heads == 0, "{}: '{}': dim must be a positive multiple of heads",
                    c.origin(), c.path());
  return o;
}

TextTransformerImpl::TextTransformerImpl(TextTransformerOptions o, const EncoderContext& ctx) : options(o) {
  TORCH_CHECK(ctx.vocab_size > 0, "text_transformer: the tokenizer vocabulary is empty");
  tok_ = register_module("tok", torch::nn::Embedding(torch::nn::EmbeddingOptions(ctx.vocab_size, o.dim).padding_idx(0)));
  pos_ = register_module("pos", torch::nn::Embedding(o.max_len, o.dim));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.layers; ++i)
    blocks_->push_back(TransformerBlock(TransformerBlockOptions{o.dim, o.heads, 4, o.dropout}));
  ln_ = register_module("ln", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
  out_dim_ = o.dim;
}

torch::Tensor TextTransformerImpl::encode(const ModalityBatch& mb) {
  auto ids = mb.data;
  auto len = mb.lengths;
  if (ids.size(1) > options.max_len) {
    ids = ids.slice(1, 0, options.max_len);
    len = len.clamp_max(options.max_len);
  }
  const int64_t T = ids.size(1);
  torch::Tensor x, pad;
  {
    BRAID_OP_SCOPE("text.embed+pos");  // per-op timing (core/op_profile.h)
    x = tok_->forward(ids) + pos_->forward(torch::arange(T, ids.options())).unsqueeze(0);
    pad = padding_mask(len, T);
  }
  for (auto& b : *blocks_) x = b->as<TransformerBlock>()->forward(x, pad);
  {
    BRAID_OP_SCOPE("text.final_ln");
    x = layer_norm_inference(*ln_, x);
  }
  BRAID_OP_SCOPE("text.masked_mean");
  return masked_mean(x, len);
}

}  // namespace braid::nn
