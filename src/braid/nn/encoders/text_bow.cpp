#include "braid/nn/encoders/text_bow.h"

#include <torch/torch.h>

namespace braid::nn {

TextBowOptions TextBowOptions::from_config(const Config& c) {
  TextBowOptions o;
  o.embed = c.get<int64_t>("embed", o.embed);
  o.dim = c.get<int64_t>("dim", o.dim);
  o.dropout = c.get<double>("dropout", o.dropout);
  o.token_dropout = c.get<double>("token_dropout", o.token_dropout);
  BRAID_INPUT_CHECK(o.embed > 0 && o.dim > 0, "{}: '{}' needs positive embed and dim", c.origin(), c.path());
  BRAID_INPUT_CHECK(o.token_dropout >= 0 && o.token_dropout < 1, "{}: '{}.token_dropout' must be in [0, 1), got {}",
                    c.origin(), c.path(), o.token_dropout);
  return o;
}

TextBowImpl::TextBowImpl(TextBowOptions o, const EncoderContext& ctx) : options(o) {
  TORCH_CHECK(ctx.vocab_size > 0, "text_bow: the tokenizer vocabulary is empty");
  emb_ = register_module("emb", torch::nn::Embedding(torch::nn::EmbeddingOptions(ctx.vocab_size, o.embed).padding_idx(0)));
  mlp_ = register_module("mlp", MLP(MLPOptions{o.embed, {o.dim}, o.dim, o.dropout}));
  out_dim_ = o.dim;
}

torch::Tensor TextBowImpl::encode(const ModalityBatch& mb) {
  auto x = emb_->forward(mb.data);  // [B, L, embed]
  if (!is_training() || options.token_dropout <= 0) return mlp_->forward(masked_mean(x, mb.lengths));
  const int64_t L = mb.data.size(1);
  auto valid = ~padding_mask(mb.lengths, L);  // [B, L]
  auto keep = valid & (torch::rand({mb.data.size(0), L}, x.options()) >= options.token_dropout);
  keep = torch::where(keep.any(1, /*keepdim=*/true), keep, valid);  // never an empty row
  auto w = keep.to(x.scalar_type()).unsqueeze(2);
  return mlp_->forward((x * w).sum(1) / w.sum(1).clamp_min(1.0));
}

}  // namespace braid::nn
