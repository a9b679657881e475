#include "braid/nn/lm/causal_lm.h"

#include <torch/torch.h>

#include "braid/core/error.h"
#include "braid/core/strings.h"
#include "braid/nn/blocks.h"

namespace braid::nn::lm {

LMBackboneImpl::LMBackboneImpl(const LMOptions& o) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(o.vocab_size, o.dim));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.layers; ++i) {
    blocks_.push_back(DecoderLayer(o));
    layers->push_back(blocks_.back());
  }
  norm = register_module("norm", RMSNorm(o.dim, o.norm_eps));
  rotary = Rotary(o);
}

torch::Tensor LMBackboneImpl::forward(const torch::Tensor& embeds, const torch::Tensor& position_ids,
                                      const torch::Tensor& bias, KVCache* cache) {
  auto [cos, sin] = rotary.lookup(position_ids, embeds);
  auto h = embeds;
  for (size_t i = 0; i < blocks_.size(); ++i) h = blocks_[i]->forward(h, cos, sin, bias, cache, static_cast<int64_t>(i));
  return norm->forward(h);
}

CausalLMImpl::CausalLMImpl(LMOptions o) : options(std::move(o)) {
  options.check();
  model = register_module("model", LMBackbone(options));
  if (!options.tie_embeddings)
    lm_head = register_module("lm_head",
                              torch::nn::Linear(torch::nn::LinearOptions(options.dim, options.vocab_size).bias(false)));
  torch::NoGradGuard ng;
  for (auto& p : named_parameters()) {
    const auto& name = p.key();
    if (ends_with(name, "bias")) p.value().zero_();
    else if (name.find("norm") != std::string::npos) p.value().fill_(1.0);
    else p.value().normal_(0.0, 0.02);
  }
}

torch::Tensor CausalLMImpl::embed(const torch::Tensor& ids) {
  TORCH_CHECK(ids.dim() == 2, "CausalLM: ids must be [B, T], got [", ids.sizes(), "]");
  if (ids.numel()) {
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < options.vocab_size, "CausalLM: token id ", lo < 0 ? lo : hi, " is outside [0, ",
                options.vocab_size, ")");
  }
  return model->embed_tokens->forward(ids);
}

torch::Tensor default_positions(int64_t B, int64_t T, int64_t P, const torch::Tensor& attention_mask,
                                const torch::Device& device) {
  auto dev_long = torch::TensorOptions().dtype(torch::kLong).device(device);
  if (!attention_mask.defined()) return torch::arange(P, P + T, dev_long).unsqueeze(0).expand({B, T});
  TORCH_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == B && attention_mask.size(1) == P + T,
              "CausalLM: attention_mask must be [B, P + T] = [", B, ", ", P + T, "], got [", attention_mask.sizes(), "]");
  auto m = attention_mask.to(device).ne(0).to(torch::kLong);
  return (m.cumsum(1) - 1).clamp_min(0).narrow(1, P, T);
}

torch::Tensor CausalLMImpl::hidden(const torch::Tensor& embeds, const LMInputs& in) {
  TORCH_CHECK(embeds.dim() == 3 && embeds.size(2) == options.dim, "CausalLM: embeddings must be [B, T, ", options.dim,
              "], got [", embeds.sizes(), "]");
  const int64_t B = embeds.size(0), T = embeds.size(1);
  const int64_t P = in.cache ? in.cache->length() : 0;
  auto pos = in.position_ids.defined() ? in.position_ids : default_positions(B, T, P, in.attention_mask, embeds.device());
  TORCH_CHECK(pos.dim() == 2 && pos.size(0) == B && pos.size(1) == T, "CausalLM: position_ids must be [", B, ", ", T,
              "], got [", pos.sizes(), "]");
  auto bias = causal_bias(B, T, P, in.attention_mask, embeds.options());
  return model->forward(embeds, pos, bias, in.cache);
}

torch::Tensor CausalLMImpl::logits(const torch::Tensor& h) {
  if (lm_head) return nn::linear(lm_head, h);
  return at::linear(h, model->embed_tokens->weight);
}

torch::Tensor CausalLMImpl::forward_embeds(const torch::Tensor& embeds, const LMInputs& in) {
  return logits(hidden(embeds, in));
}

torch::Tensor CausalLMImpl::forward(const torch::Tensor& ids, const LMInputs& in) {
  return forward_embeds(embed(ids), in);
}

KVCache CausalLMImpl::new_cache() const {
  KVCache c;
  c.k.resize(options.layers);
  c.v.resize(options.layers);
  return c;
}

}  // namespace braid::nn::lm
