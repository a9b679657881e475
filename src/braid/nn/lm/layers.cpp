// Reference: Hugging Face transformers, models/llama/modeling_llama.py (LlamaRMSNorm, LlamaRotaryEmbedding,
// rotate_half / apply_rotary_pos_emb, LlamaMLP, repeat_kv + eager attention); re-derived, not copied.
#include "braid/nn/lm/layers.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "braid/core/error.h"
#include "braid/nn/blocks.h"

namespace braid::nn::lm {

namespace {
// nn::linear, except for a single row (one decoding step at batch 1) on the CPU, done as a matrix-vector
// product: OpenBLAS's sgemm copies (packs) the whole weight matrix on every call, which was ~40% of a
// cached decoding step at batch 1; sgemv reads the weights once. (Same math; the sum's order may differ in
// the last bits.)
torch::Tensor proj(const torch::nn::Linear& l, const torch::Tensor& x) {
  const int64_t in = x.size(-1);
  if (x.numel() != in || !x.device().is_cpu() || in == 0) return nn::linear(l, x);
  auto sizes = x.sizes().vec();
  sizes.back() = l->weight.size(0);
  auto v = x.reshape({in});
  auto y = l->bias.defined() ? at::addmv(l->bias, l->weight, v) : at::mv(l->weight, v);
  return y.view(sizes);
}
}  // namespace

// ---------------------------------------------------------------- RMSNorm

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.size(-1) == weight.size(0), "RMSNorm: input [", x.sizes(), "] last dim is not ", weight.size(0));
  auto h = x.to(torch::kFloat);
  h = h * torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * h.to(x.scalar_type());
}

// ---------------------------------------------------------------- RoPE

namespace {
torch::Tensor plain_inv_freq(int64_t head_dim, double theta) {
  TORCH_CHECK(head_dim > 0 && head_dim % 2 == 0, "Rotary: head_dim ", head_dim, " must be even");
  // inv_freq[i] = 1 / theta^(2i / d), in fp32 as the reference computes it
  auto exponent = torch::arange(0, head_dim, 2, torch::kLong).to(torch::kFloat) / static_cast<double>(head_dim);
  return 1.0 / torch::pow(theta, exponent);  // [d/2]
}
}  // namespace

torch::Tensor rope_inv_freq(const LMOptions& o) {
  auto inv = plain_inv_freq(o.head_dim(), o.rope_theta);
  if (o.rope_scaling == "linear") return inv / o.rope_factor;
  if (o.rope_scaling == "llama3") {
    const double old_len = static_cast<double>(o.rope_original_max_seq);
    const double low_wavelen = old_len / o.rope_low_freq_factor, high_wavelen = old_len / o.rope_high_freq_factor;
    auto wavelen = 2.0 * M_PI / inv;
    auto scaled = torch::where(wavelen > low_wavelen, inv / o.rope_factor, inv);
    auto smooth = (old_len / wavelen - o.rope_low_freq_factor) / (o.rope_high_freq_factor - o.rope_low_freq_factor);
    auto blended = (1.0 - smooth) * scaled / o.rope_factor + smooth * scaled;
    auto medium = wavelen.ge(high_wavelen).logical_and(wavelen.le(low_wavelen));
    return torch::where(medium, blended, scaled);
  }
  TORCH_CHECK(o.rope_scaling.empty(), "Rotary: unknown rope_scaling '", o.rope_scaling, "'");
  return inv;
}

Rotary::Rotary(int64_t head_dim, double theta, int64_t max_seq) : Rotary(plain_inv_freq(head_dim, theta), max_seq) {}

Rotary::Rotary(const LMOptions& o) : Rotary(rope_inv_freq(o), o.max_seq) {}

Rotary::Rotary(const torch::Tensor& inv_freq, int64_t max_seq) {
  auto freqs = torch::outer(torch::arange(max_seq, torch::kLong).to(torch::kFloat), inv_freq);  // [S, d/2]
  auto emb = torch::cat({freqs, freqs}, -1);                                                    // [S, d]
  cos_ = emb.cos();
  sin_ = emb.sin();
}

std::pair<torch::Tensor, torch::Tensor> Rotary::lookup(const torch::Tensor& position_ids,
                                                       const torch::Tensor& like) const {
  TORCH_CHECK(cos_.defined(), "Rotary: not initialised");
  TORCH_CHECK(position_ids.dim() == 2, "Rotary: position_ids must be [B, T], got [", position_ids.sizes(), "]");
  auto pos = position_ids.to(torch::kCPU, torch::kLong);
  if (pos.numel()) {
    const int64_t lo = pos.min().item<int64_t>(), hi = pos.max().item<int64_t>();
    BRAID_INPUT_CHECK(lo >= 0 && hi < max_seq(), "language model: position {} is outside [0, max_seq = {})", lo < 0 ? lo : hi,
                      max_seq());
  }
  auto flat = pos.reshape({-1});
  const auto B = position_ids.size(0), T = position_ids.size(1), d = cos_.size(1);
  auto opts = like.options();
  auto cos = cos_.index_select(0, flat).view({B, T, d}).to(opts);
  auto sin = sin_.index_select(0, flat).view({B, T, d}).to(opts);
  return {cos, sin};
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t h = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, h), x2 = x.narrow(-1, h, h);
  return torch::cat({-x2, x1}, -1);
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);  // [B, 1, T, d]: the same rotation for every head
  return x * c + rotate_half(x) * s;
}

// ---------------------------------------------------------------- SwiGLU

SwiGLUImpl::SwiGLUImpl(int64_t dim, int64_t hidden) {
  auto lin = [](int64_t i, int64_t o) { return torch::nn::Linear(torch::nn::LinearOptions(i, o).bias(false)); };
  gate_proj = register_module("gate_proj", lin(dim, hidden));
  up_proj = register_module("up_proj", lin(dim, hidden));
  down_proj = register_module("down_proj", lin(hidden, dim));
}

torch::Tensor SwiGLUImpl::forward(const torch::Tensor& x) {
  return proj(down_proj, torch::silu(proj(gate_proj, x)) * proj(up_proj, x));
}

// ---------------------------------------------------------------- attention

torch::Tensor causal_bias(int64_t B, int64_t T, int64_t P, const torch::Tensor& key_mask,
                          const torch::TensorOptions& opts) {
  const int64_t S = P + T;
  // one new token without padding (a cached decoding step) sees every key: nothing to mask
  if (T == 1 && !key_mask.defined()) return torch::zeros({B, 1, 1, S}, opts);
  auto dev = opts.device();
  auto q_pos = torch::arange(P, S, torch::TensorOptions().dtype(torch::kLong).device(dev)).view({T, 1});
  auto k_pos = torch::arange(S, torch::TensorOptions().dtype(torch::kLong).device(dev)).view({1, S});
  auto allowed = (k_pos <= q_pos).view({1, 1, T, S}).expand({B, 1, T, S});  // [B, 1, T, S]
  if (key_mask.defined()) {
    TORCH_CHECK(key_mask.dim() == 2 && key_mask.size(0) == B && key_mask.size(1) == S,
                "language model: attention mask must be [B, P + T] = [", B, ", ", S, "], got [", key_mask.sizes(), "]");
    allowed = allowed.logical_and(key_mask.to(dev).ne(0).view({B, 1, 1, S}));
  }
  const double lowest = opts.dtype() == torch::kDouble ? std::numeric_limits<double>::lowest()
                        : opts.dtype() == torch::kHalf ? -65504.0
                        : opts.dtype() == torch::kBFloat16 ? -3.3895313892515355e38
                                                           : static_cast<double>(std::numeric_limits<float>::lowest());
  return torch::zeros({B, 1, T, S}, opts).masked_fill(allowed.logical_not(), lowest);
}

torch::Tensor gqa_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const torch::Tensor& bias) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), d = q.size(3);
  const int64_t G = k.size(1), S = k.size(2);
  TORCH_CHECK(H % G == 0 && v.size(1) == G && v.size(2) == S, "gqa_attention: q [", q.sizes(), "], k [", k.sizes(),
              "], v [", v.sizes(), "]");
  const int64_t rep = H / G;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
#if TORCH_VERSION_MAJOR >= 2
  // SDPA wants as many kv heads as query heads: kv head g serves query heads g·rep .. g·rep + rep - 1
  auto kk = rep == 1 ? k : k.unsqueeze(2).expand({B, G, rep, S, d}).reshape({B, H, S, d});
  auto vv = rep == 1 ? v : v.unsqueeze(2).expand({B, G, rep, S, d}).reshape({B, H, S, d});
  if (bias.defined()) return at::scaled_dot_product_attention(q, kk, vv, bias.to(q.scalar_type()));
  return at::scaled_dot_product_attention(q, kk, vv);
#else
  // the rep query heads of one kv head as one [rep·T, d] block: no copy of k or v
  auto qg = q.reshape({B, G, rep * T, d});
  auto scores = torch::matmul(qg, k.transpose(-2, -1)).mul_(scale).view({B, G, rep, T, S});
  if (bias.defined()) scores = scores + bias.unsqueeze(1);  // [B, 1, 1, T, S]
  auto w = torch::softmax(scores, -1, torch::kFloat).to(q.scalar_type()).view({B, G, rep * T, S});
  return torch::matmul(w, v).view({B, H, T, d});
#endif
}

AttentionImpl::AttentionImpl(const LMOptions& o) : heads(o.heads), kv_heads(o.kv_heads), head_dim(o.head_dim()) {
  auto lin = [](int64_t i, int64_t out, bool b) { return torch::nn::Linear(torch::nn::LinearOptions(i, out).bias(b)); };
  q_proj = register_module("q_proj", lin(o.dim, heads * head_dim, o.attention_bias));
  k_proj = register_module("k_proj", lin(o.dim, kv_heads * head_dim, o.attention_bias));
  v_proj = register_module("v_proj", lin(o.dim, kv_heads * head_dim, o.attention_bias));
  o_proj = register_module("o_proj", lin(heads * head_dim, o.dim, false));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& bias, KVCache* cache, int64_t layer) {
  const int64_t B = x.size(0), T = x.size(1);
  // [B, T, n·d] -> [B, n, T, d]
  auto q = proj(q_proj, x).view({B, T, heads, head_dim}).transpose(1, 2);
  auto k = proj(k_proj, x).view({B, T, kv_heads, head_dim}).transpose(1, 2);
  auto v = proj(v_proj, x).view({B, T, kv_heads, head_dim}).transpose(1, 2);
  q = apply_rotary(q, cos, sin);
  k = apply_rotary(k, cos, sin);
  if (cache) {
    if (static_cast<int64_t>(cache->k.size()) <= layer) cache->k.resize(layer + 1), cache->v.resize(layer + 1);
    auto& ck = cache->k[layer];
    auto& cv = cache->v[layer];
    if (ck.defined()) {
      TORCH_CHECK(ck.size(0) == B, "KVCache: layer ", layer, " holds batch ", ck.size(0), ", the input has ", B);
      k = torch::cat({ck, k}, 2);  // [B, G, P + T, d]
      v = torch::cat({cv, v}, 2);
    }
    ck = k;
    cv = v;
  }
  auto o = gqa_attention(q, k, v, bias);                          // [B, H, T, d]
  return proj(o_proj, o.transpose(1, 2).reshape({B, T, heads * head_dim}));
}

// ---------------------------------------------------------------- block

DecoderLayerImpl::DecoderLayerImpl(const LMOptions& o) {
  self_attn = register_module("self_attn", Attention(o));
  mlp = register_module("mlp", SwiGLU(o.dim, o.hidden));
  input_layernorm = register_module("input_layernorm", RMSNorm(o.dim, o.norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(o.dim, o.norm_eps));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                        const torch::Tensor& bias, KVCache* cache, int64_t layer) {
  auto h = x + self_attn->forward(input_layernorm->forward(x), cos, sin, bias, cache, layer);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

}  // namespace braid::nn::lm
