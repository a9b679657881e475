// braid/nn/lm/layers.h — the parts of a Llama-family decoder block: RMSNorm, rotary position
// embeddings (RoPE), the SwiGLU MLP, grouped-query attention with a KV cache, and the pre-norm block.
//
// Numerics follow Hugging Face's modeling_llama.py (the reference of scripts/make_goldens.py):
// RMSNorm in fp32, RoPE with rotate_half over the two halves of each head, softmax in fp32.
// Parameter names are Hugging Face's, so a LlamaForCausalLM state dict loads without renaming.
// Shapes: B batch, T new steps, P cached steps, D dim, H heads, G kv_heads, d head_dim.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <utility>
#include <vector>

#include "braid/nn/lm/options.h"

namespace braid::nn::lm {

// y = weight * (x / sqrt(mean(x², -1) + eps)), computed in fp32 and cast back to x's dtype before the
// weight (Llama's order). Parameter: "weight" [dim], initialised to ones.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // [..., dim] -> [..., dim]
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// cos/sin tables of RoPE for positions [0, max_seq): cos[p] = cos(p · inv_freq) repeated over both
// halves ([max_seq, head_dim]), inv_freq[i] = theta^(-2i / head_dim) in fp32. Not parameters or buffers:
// a Hugging Face state dict has none, and they follow the input's device and dtype at lookup.
class Rotary {
 public:
  Rotary() = default;
  Rotary(int64_t head_dim, double theta, int64_t max_seq);
  // The tables of `o` (head_dim, rope_theta, max_seq and its rope_scaling).
  explicit Rotary(const LMOptions& o);
  // inv_freq [head_dim / 2] (fp32) -> cos/sin for positions [0, max_seq).
  Rotary(const torch::Tensor& inv_freq, int64_t max_seq);
  // position_ids [B, T] (int64, each in [0, max_seq); InputError otherwise) -> cos, sin [B, T, head_dim].
  std::pair<torch::Tensor, torch::Tensor> lookup(const torch::Tensor& position_ids, const torch::Tensor& like) const;
  int64_t max_seq() const { return cos_.defined() ? cos_.size(0) : 0; }

 private:
  torch::Tensor cos_, sin_;
};

// RoPE's inverse frequencies [head_dim / 2] (fp32) of `o`: theta^(-2i / head_dim), then the rope_scaling:
// linear divides all by rope_factor; llama3 (Hugging Face's _compute_llama3_parameters) divides those whose
// wavelength 2π / f exceeds rope_original_max_seq / rope_low_freq_factor, keeps those below
// rope_original_max_seq / rope_high_freq_factor, and blends linearly in 1 / wavelength between.
torch::Tensor rope_inv_freq(const LMOptions& o);

// [.., d] -> [.., d]: (x1, x2) -> (-x2, x1), x1 and x2 the first and second half of the last dim.
torch::Tensor rotate_half(const torch::Tensor& x);
// x [B, heads, T, d] rotated by cos, sin [B, T, d]: x · cos + rotate_half(x) · sin.
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// down_proj(silu(gate_proj(x)) * up_proj(x)); no biases. [.., dim] -> [.., dim].
class SwiGLUImpl : public torch::nn::Module {
 public:
  SwiGLUImpl(int64_t dim, int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(SwiGLU);

// Keys and values of the steps seen so far, per layer: k[i], v[i] are [B, G, P, d] (undefined before the
// first step). Attention appends the new steps' k/v; the model's forward reads length() as the offset
// of the new positions. One cache serves one batch of sequences that advance together.
struct KVCache {
  std::vector<torch::Tensor> k, v;
  int64_t length() const { return k.empty() || !k[0].defined() ? 0 : k[0].size(2); }
  void clear() { k.clear(), v.clear(); }
};

// Additive attention bias [B, 1, T, P + T] (0 = attend, the dtype's lowest value = masked): query t
// (absolute position P + t) sees keys 0..P + t; `key_mask` [B, P + T] (nonzero = real token, 0 = padding;
// undefined: all real) removes padded keys. A row with every key masked attends uniformly (as HF).
torch::Tensor causal_bias(int64_t B, int64_t T, int64_t P, const torch::Tensor& key_mask,
                          const torch::TensorOptions& opts);

// softmax(q kᵀ / √d + bias) v with q [B, H, T, d], k/v [B, G, S, d] (each kv head serves H / G query
// heads, head h uses kv head h / (H / G)), bias [B, 1, T, S] or undefined -> [B, H, T, d]. Softmax in
// fp32. LibTorch 2.x uses scaled_dot_product_attention, 1.13 the explicit matmul-softmax-matmul.
torch::Tensor gqa_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const torch::Tensor& bias);

// Grouped-query self-attention: q_proj [H·d, D], k_proj/v_proj [G·d, D] (biases when
// options.attention_bias), o_proj [D, H·d]; RoPE on q and k.
class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const LMOptions& o);
  // x [B, T, D]; cos/sin [B, T, d]; bias [B, 1, T, P + T] (causal_bias); with `cache` (and layer index),
  // the cached [B, G, P, d] keys/values go in front and the new ones are appended. -> [B, T, D].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& bias, KVCache* cache = nullptr, int64_t layer = 0);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t heads, kv_heads, head_dim;
};
TORCH_MODULE(Attention);

// Pre-norm block: h = x + self_attn(input_layernorm(x)); out = h + mlp(post_attention_layernorm(h)).
class DecoderLayerImpl : public torch::nn::Module {
 public:
  explicit DecoderLayerImpl(const LMOptions& o);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& bias, KVCache* cache = nullptr, int64_t layer = 0);
  Attention self_attn{nullptr};
  SwiGLU mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(DecoderLayer);

}  // namespace braid::nn::lm
