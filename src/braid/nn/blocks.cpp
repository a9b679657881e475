#include "braid/nn/blocks.h"

#include "braid/core/op_profile.h"
#include "braid/nn/fused.h"
#include "braid/nn/fused_infer.h"
#include "braid/nn/prepack.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>

namespace braid::nn {

namespace {
// attention_qkv (nn/fused.h) up to this many tokens: its per-head products are not cache-blocked for long sequences
constexpr int64_t kFusedAttentionMaxT = 128;
}  // namespace

torch::Tensor masked_mean(const torch::Tensor& x, const torch::Tensor& lengths) {
  const int64_t T = x.size(1);
  auto steps = torch::arange(T, lengths.options()).unsqueeze(0);               // [1, T]
  auto valid = (steps < lengths.unsqueeze(1)).to(x.dtype()).unsqueeze(-1);     // [B, T, 1]
  auto denom = lengths.to(x.dtype()).clamp_min(1).unsqueeze(1);                // [B, 1]
  return (x * valid).sum(1) / denom;
}

torch::Tensor padding_mask(const torch::Tensor& lengths, int64_t T) {
  auto steps = torch::arange(T, lengths.options()).unsqueeze(0);
  return steps >= lengths.unsqueeze(1);
}

torch::Tensor linear(const torch::nn::Linear& l, const torch::Tensor& x) {
  if (auto y = packed_linear(x, l->weight, l->bias); y.defined()) return y;  // inference, pre-packed (nn/prepack.h)
  return at::linear(x, l->weight, l->bias);
}

MLPImpl::MLPImpl(MLPOptions o) : options(std::move(o)) {
  TORCH_CHECK(options.in > 0 && options.out > 0, "MLP: in and out must be positive");
  seq_ = register_module("seq", torch::nn::Sequential());
  int64_t w = options.in;
  for (int64_t h : options.hidden) {
    seq_->push_back(torch::nn::Linear(w, h));
    seq_->push_back(torch::nn::Functional(torch::relu));
    if (options.dropout > 0) seq_->push_back(torch::nn::Dropout(options.dropout));
    w = h;
  }
  seq_->push_back(torch::nn::Linear(w, options.out));
}

torch::Tensor MLPImpl::forward(torch::Tensor x) {
  for (auto& m : *seq_) {
    auto* l = m.ptr()->as<torch::nn::LinearImpl>();
    if (!l) {
      x = m.forward(x);
    } else if (auto y = packed_linear(x, l->weight, l->bias); y.defined()) {
      x = y;
    } else {
      x = at::linear(x, l->weight, l->bias);
    }
  }
  return x;
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& pad) {
  torch::Tensor mask;
  if (pad.defined()) mask = pad.view({pad.size(0), 1, 1, pad.size(1)});  // [B, 1, 1, Tk]
#if TORCH_VERSION_MAJOR >= 2
  if (!mask.defined()) return at::scaled_dot_product_attention(q, k, v);
  // SDPA's bool mask: true = attend; rows with every key masked come out NaN there, 0 below
  return at::scaled_dot_product_attention(q, k, v, mask.logical_not()).nan_to_num(0.0);
#else
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(-1)));
  if (mask.defined()) scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
  auto w = torch::softmax(scores, -1);
  if (mask.defined()) w = w.nan_to_num(0.0);  // rows with every key masked
  return torch::matmul(w, v);
#endif
}

TransformerBlockImpl::TransformerBlockImpl(TransformerBlockOptions o) : options(o) {
  TORCH_CHECK(o.dim % o.heads == 0, "TransformerBlock: dim ", o.dim, " is not divisible by heads ", o.heads);
  ln1_ = register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
  ln2_ = register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
  qkv_ = register_module("qkv", torch::nn::Linear(o.dim, 3 * o.dim));
  proj_ = register_module("proj", torch::nn::Linear(o.dim, o.dim));
  ff1_ = register_module("ff1", torch::nn::Linear(o.dim, o.ff_mult * o.dim));
  ff2_ = register_module("ff2", torch::nn::Linear(o.ff_mult * o.dim, o.dim));
  drop_ = register_module("drop", torch::nn::Dropout(o.dropout));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& pad) {
  // BRAID_OP_SCOPE: per-op timing for `braid bench speed --op-profile` (core/op_profile.h; off: one atomic load)
  const int64_t B = x.size(0), T = x.size(1), H = options.heads, d = options.dim / H;
  // inference through pre-packed weights (nn/prepack.h) on an AVX-512 CPU: LayerNorm and attention by the fused
  // kernels of nn/fused_infer.h (elsewhere ATen's LayerNorm and packed_attention)
  const bool fused = fused_infer_applies(x) && ln1_->weight.scalar_type() == at::kFloat;
  torch::Tensor qkv, a;
  {
    torch::Tensor n1;
    {
      BRAID_OP_SCOPE("block.ln1");
      n1 = layer_norm_inference(*ln1_, x);
    }
    BRAID_OP_SCOPE("block.qkv");
    qkv = linear(qkv_, n1);  // [B, T, 3 D] = [B, T, 3, H, d]
  }
  {
    BRAID_OP_SCOPE("block.attention");
    if (fused && qkv.scalar_type() == at::kFloat) a = infer_attention(qkv, H, pad);
    else if (any_prepacked()) a = packed_attention(qkv, H, pad);  // inference (nn/prepack.h)
    else if (T <= kFusedAttentionMaxT && fused_train_applies(x) &&
             (qkv.scalar_type() == at::kFloat || qkv.scalar_type() == at::kBFloat16))
      a = attention_qkv(qkv, H, pad);  // training kernels (nn/fused.h)
    if (!a.defined()) {
      auto q = qkv.view({B, T, 3, H, d}).permute({2, 0, 3, 1, 4});  // [3, B, H, T, d]
      a = attention(q[0], q[1], q[2], pad).transpose(1, 2).reshape({B, T, options.dim});
    }
  }
  if (any_prepacked() && (!is_training() || options.dropout == 0)) {
    // inference through pre-packed weights (nn/prepack.h): the residual adds and the GELU as epilogues of
    // the GEMMs; undefined (not packed, grad mode on, ...) falls through to the ops below
    torch::Tensor h, n2, z, y;
    {
      BRAID_OP_SCOPE("block.proj+residual");
      h = packed_linear(a, proj_->weight, proj_->bias, Epilogue::None, x);
    }
    if (h.defined()) {
      {
        BRAID_OP_SCOPE("block.ln2");
        n2 = layer_norm_inference(*ln2_, h);
      }
      {
        BRAID_OP_SCOPE("block.ff1+gelu");
        // fused: the GELU as a pass of its own (infer_gelu_), faster than oneDNN's erf-GELU post-op
        z = packed_linear(n2, ff1_->weight, ff1_->bias, fused ? Epilogue::None : Epilogue::Gelu);
        if (fused && z.defined()) infer_gelu_(z);
      }
      if (z.defined()) {
        BRAID_OP_SCOPE("block.ff2+residual");
        y = packed_linear(z, ff2_->weight, ff2_->bias, Epilogue::None, h);
      }
      if (y.defined()) return y;
    }
  }
  torch::Tensor o;
  // training kernels (nn/fused.h, on by default on AVX-512 CPUs): dropout + residual add and GELU as one pass
  // each, for a float residual stream and float or bf16 (autocast) GEMM outputs; attention_qkv above
  bool train_kernels = false;
  {
    BRAID_OP_SCOPE("block.proj");
    o = linear(proj_, a);
    // (the older float kernels below take precedence when switched on: --fused asks for them by name)
    train_kernels = !fused_kernels() && fused_train_applies(x) &&
                    (o.scalar_type() == at::kFloat || o.scalar_type() == at::kBFloat16);
    if (!train_kernels) o = drop_->forward(o);
  }
  if (train_kernels) {
    const double p = is_training() ? options.dropout : 0.0;
    torch::Tensor h, n2, z;
    {
      BRAID_OP_SCOPE("block.residual1");
      h = dropout_add(x, o, p);
    }
    {
      BRAID_OP_SCOPE("block.ln2");
      n2 = ln2_->forward(h);
    }
    {
      BRAID_OP_SCOPE("block.ff1+gelu");
      z = linear(ff1_, n2);
      z = z.scalar_type() == o.scalar_type() ? nn::gelu(z) : torch::gelu(z);
    }
    BRAID_OP_SCOPE("block.ff2+residual");
    auto y = linear(ff2_, z);
    return y.scalar_type() == o.scalar_type() ? dropout_add(h, y, p) : h + drop_->forward(y);
  }
  // fused CPU kernels (nn/fused.h; off unless switched on) where every operand has the parameters' dtype
  // (not under bf16 autocast, whose GEMM outputs are bf16)
  const auto dt = ln2_->weight.scalar_type();
  if (fused_kernels() && x.device().is_cpu() && (dt == at::kFloat || dt == at::kDouble) && x.scalar_type() == dt &&
      o.scalar_type() == dt) {
    auto [h, n] = add_layer_norm(x, o, ln2_->weight, ln2_->bias, ln2_->options.eps());
    auto z = at::linear(n, ff1_->weight);  // [B, T, ff], the bias goes into the GELU
    if (z.scalar_type() == dt) return h + drop_->forward(linear(ff2_, bias_gelu(z, ff1_->bias)));
    return h + drop_->forward(linear(ff2_, torch::gelu(z + ff1_->bias)));
  }
  torch::Tensor h, n2, z;
  {
    BRAID_OP_SCOPE("block.residual1");
    h = x + o;
  }
  {
    BRAID_OP_SCOPE("block.ln2");
    n2 = ln2_->forward(h);
  }
  {
    BRAID_OP_SCOPE("block.ff1+gelu");
    z = torch::gelu(linear(ff1_, n2));
  }
  BRAID_OP_SCOPE("block.ff2+residual");
  return h + drop_->forward(linear(ff2_, z));
}

}  // namespace braid::nn
