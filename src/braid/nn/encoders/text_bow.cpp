#include "braid/nn/encoders/text_bow.h"

#include <torch/torch.h>

namespace braid::nn {

TextBowOptions TextBowOptions::from_config(const Config& c) {
  TextBowOptions o;
  o.embed = c.get<int64_t>("embed", o.embed);
  o.dim = c.get<int64_t>("dim", o.dim);
  o.dropout = c.get<double>("dropout", o.dropout);
  BRAID_INPUT_CHECK(o.embed > 0 && o.dim > 0, "{}: '{}' needs positive embed and dim", c.origin(), c.path());
  return o;
}

TextBowImpl::TextBowImpl(TextBowOptions o, const EncoderContext& ctx) : options(o) {
  TORCH_CHECK(ctx.vocab_size > 0, "text_bow: the tokenizer vocabulary is empty");
  emb_ = register_module("emb", torch::nn::Embedding(torch::nn::EmbeddingOptions(ctx.vocab_size, o.embed).padding_idx(0)));
  mlp_ = register_module("mlp", MLP(MLPOptions{o.embed, {o.dim}, o.dim, o.dropout}));
  out_dim_ = o.dim;
}

torch::Tensor TextBowImpl::encode(const ModalityBatch& mb) {
  return mlp_->forward(masked_mean(emb_->forward(mb.data), mb.lengths));
}

}  // namespace braid::nn
