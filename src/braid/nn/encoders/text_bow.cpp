#include "braid/nn/encoders/text_bow.h"

#include <torch/torch.h>

namespace braid::nn {

TextBowOptions TextBowOptions::from_config(const Config& c) {
  TextBowOptions o;
  o.embed = c.get<int64_t>("embed", o.embed);
  o.dropout = c.get<double>("dropout", o.dropout);
  o.token_dropout = c.get<double>("token_dropout", o.token_dropout);
  o.mlp = c.get<bool>("mlp", o.mlp);
  o.init = c.get<std::string>("init", o.init);
  // without the MLP the output is the mean embedding: dim is embed's (a different one is an error)
  o.dim = c.get<int64_t>("dim", o.mlp ? o.dim : o.embed);
  BRAID_INPUT_CHECK(o.mlp || o.dim == o.embed, "{}: '{}' must equal embed ({}) when mlp is false (the output is "
                    "the mean embedding), got {}", c.origin(), c.full("dim"), o.embed, o.dim);
  BRAID_INPUT_CHECK(o.init == "normal" || o.init == "uniform", "{}: '{}' must be normal or uniform, got '{}'",
                    c.origin(), c.full("init"), o.init);
  BRAID_INPUT_CHECK(o.embed > 0 && o.dim > 0, "{}: '{}' needs positive embed and dim", c.origin(), c.path());
  BRAID_INPUT_CHECK(o.token_dropout >= 0 && o.token_dropout < 1, "{}: '{}.token_dropout' must be in [0, 1), got {}",
                    c.origin(), c.path(), o.token_dropout);
  return o;
}

TextBowImpl::TextBowImpl(TextBowOptions o, const EncoderContext& ctx) : options(o) {
  TORCH_CHECK(ctx.vocab_size > 0, "text_bow: the tokenizer vocabulary is empty");
  emb_ = register_module("emb", torch::nn::Embedding(torch::nn::EmbeddingOptions(ctx.vocab_size, o.embed).padding_idx(0)));
  if (o.init == "uniform") {
    // fastText's: small rows, so that what training learns outweighs the noise of rows it never
    // updated (n-grams seen only at test time). The padding row stays 0.
    torch::NoGradGuard ng;
    const double a = 1.0 / static_cast<double>(o.embed);
    emb_->weight.uniform_(-a, a);
    emb_->weight[0].zero_();
  }
  if (o.mlp) mlp_ = register_module("mlp", MLP(MLPOptions{o.embed, {o.dim}, o.dim, o.dropout}));
  out_dim_ = o.dim;
}

torch::Tensor TextBowImpl::encode(const ModalityBatch& mb) {
  auto x = emb_->forward(mb.data);  // [B, L, embed]
  auto project = [&](const torch::Tensor& mean) { return mlp_ ? mlp_->forward(mean) : mean; };
  if (!is_training() || options.token_dropout <= 0) return project(masked_mean(x, mb.lengths));
  const int64_t L = mb.data.size(1);
  auto valid = ~padding_mask(mb.lengths, L);  // [B, L]
  auto keep = valid & (torch::rand({mb.data.size(0), L}, x.options()) >= options.token_dropout);
  keep = torch::where(keep.any(1, /*keepdim=*/true), keep, valid);  // never an empty row
  auto w = keep.to(x.scalar_type()).unsqueeze(2);
  return project((x * w).sum(1) / w.sum(1).clamp_min(1.0));
}

}  // namespace braid::nn
