// braid/nn/lm/causal_lm.h — a Llama-family decoder-only language model (Llama, SmolLM2, Qwen2 shapes).
//
// named_parameters() equals Hugging Face's LlamaForCausalLM state-dict names:
//   model.embed_tokens.weight                                  [V, D]
//   model.layers.{i}.self_attn.{q,k,v,o}_proj.weight           [H·d, D] [G·d, D] [G·d, D] [D, H·d]
//   model.layers.{i}.self_attn.{q,k,v}_proj.bias               (attention_bias only: Qwen2)
//   model.layers.{i}.mlp.{gate,up,down}_proj.weight            [F, D] [F, D] [D, F]
//   model.layers.{i}.input_layernorm.weight, post_attention_layernorm.weight   [D]
//   model.norm.weight                                          [D]
//   lm_head.weight                                             [V, D]  (absent with tie_embeddings)
// and there are no buffers, so braid::load_module_tensors(model, read_safetensors(file), file) loads a
// checkpoint strictly (unknown, missing or mis-shaped tensors are InputErrors).
// Initialisation as Hugging Face's: Linear and Embedding weights N(0, 0.02), biases 0, norms 1.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>

#include <vector>

#include "braid/nn/lm/layers.h"
#include "braid/nn/lm/options.h"

namespace braid::nn::lm {

// Hugging Face's LlamaModel: embeddings, decoder layers, final norm (registered as "model").
class LMBackboneImpl : public torch::nn::Module {
 public:
  explicit LMBackboneImpl(const LMOptions& o);
  // embeds [B, T, D] at positions position_ids [B, T] with bias [B, 1, T, P + T] -> normed hidden [B, T, D].
  torch::Tensor forward(const torch::Tensor& embeds, const torch::Tensor& position_ids, const torch::Tensor& bias,
                        KVCache* cache);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  Rotary rotary;

 private:
  std::vector<DecoderLayer> blocks_;
};
TORCH_MODULE(LMBackbone);

// What forward() takes besides the tokens. All optional.
struct LMInputs {
  // [B, T] int64 absolute positions of the new tokens. Undefined: derived from attention_mask when given
  // (cumsum(mask) - 1, clamped at 0: left padding does not shift the real tokens), else P + 0..T-1 with P
  // the cache length.
  torch::Tensor position_ids;
  // [B, P + T] over cached and new tokens: nonzero = real token, 0 = padding (never attended to).
  torch::Tensor attention_mask;
  // Cached keys/values of the previous P steps; the new steps are appended. nullptr: no cache.
  KVCache* cache = nullptr;
};

// The position ids forward() uses when LMInputs::position_ids is undefined, for T new tokens after P cached
// ones: with attention_mask [B, P + T], cumsum(mask != 0) - 1 clamped at 0 over the last T columns (a
// left-padded row's first real token is position 0, as Hugging Face's generate); without, P + 0..T-1.
// (RoPE scores depend only on position differences, so this shows in logits only near max_seq.)
torch::Tensor default_positions(int64_t B, int64_t T, int64_t P, const torch::Tensor& attention_mask,
                                const torch::Device& device);

class CausalLMImpl : public torch::nn::Module {
 public:
  explicit CausalLMImpl(LMOptions o);
  // ids [B, T] int64 in [0, vocab_size) -> logits [B, T, V] (fp32 for fp32 weights).
  torch::Tensor forward(const torch::Tensor& ids, const LMInputs& in = {});
  // The same from input embeddings [B, T, D] (e.g. projected image tokens in front of text embeddings).
  torch::Tensor forward_embeds(const torch::Tensor& embeds, const LMInputs& in = {});
  // Final normed hidden states [B, T, D] (before the output projection), and the projection itself.
  torch::Tensor hidden(const torch::Tensor& embeds, const LMInputs& in = {});
  torch::Tensor logits(const torch::Tensor& hidden);
  // ids [B, T] -> embeddings [B, T, D]; InputError-free: ids out of range are a bug (TORCH_CHECK).
  torch::Tensor embed(const torch::Tensor& ids);
  // A cache sized for this model's layers (empty until the first forward with it).
  KVCache new_cache() const;

  LMOptions options;
  LMBackbone model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // null with tie_embeddings
};
TORCH_MODULE(CausalLM);

}  // namespace braid::nn::lm
