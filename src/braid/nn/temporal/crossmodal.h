// braid/nn/temporal/crossmodal.h — MulT's cross-modal attention (Tsai et al. 2019,
// https://arxiv.org/abs/1906.00295, reference code github.com/yaohungt/Multimodal-Transformer).
//
// A target sequence α attends to a source sequence β: Q from α, K and V from β. Sequences may
// differ in length (unaligned); the source's padding is masked. A row whose source has no valid
// step at all (the modality is absent) gets a zero attention output (after the output projection,
// so the residual passes the target through) — never NaN, in the forward or the backward pass.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

namespace braid::nn {

// softmax(q kᵀ / √d + mask) v like `attention` (blocks.h), but rows whose keys are all padding
// give zeros with finite gradients. q [B, H, Tq, d], k/v [B, H, Tk, d]; pad [B, Tk] bool
// (true = padding) or undefined.
torch::Tensor masked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& pad);

// `pad` [B, T] with step 0 un-masked in rows that are all padding, so that a softmax over the
// row stays finite; callers zero those rows' outputs (e.g. by the presence mask).
torch::Tensor nonempty_padding(const torch::Tensor& pad);

struct CrossModalLayerOptions {
  int64_t dim = 32;        // width of the target and source sequences
  int64_t heads = 4;       // attention heads (dim % heads == 0)
  int64_t ff_mult = 4;     // feed-forward width = ff_mult * dim
  double dropout = 0.0;    // on the attention output, after the FFN's ReLU, and on the FFN output
};

// One cross-modal layer (pre-norm, as in the MulT reference code):
//   h   = x_α + Dropout(W_o · MHA(Q = LN_q(x_α) W_q, K = LN_kv(x_β) W_k, V = LN_kv(x_β) W_v))
//         (the W_o term is zero in rows where x_β has no valid step)
//   out = h + Dropout(W_2 · Dropout(ReLU(W_1 · LN_ff(h))))
// Submodule (parameter) names: ln_q, ln_kv, q, k, v, proj, ln_ff, ff1, ff2. Unlike the reference
// code, which normalizes x_α and x_β with one shared LayerNorm, the source has its own (ln_kv).
class CrossModalLayerImpl : public torch::nn::Module {
 public:
  explicit CrossModalLayerImpl(CrossModalLayerOptions o);
  // target [B, Tq, dim], source [B, Tk, dim], source_pad [B, Tk] bool (true = padding) or
  // undefined -> [B, Tq, dim].
  torch::Tensor forward(const torch::Tensor& target, const torch::Tensor& source, const torch::Tensor& source_pad = {});
  CrossModalLayerOptions options;

 private:
  torch::nn::LayerNorm ln_q_{nullptr}, ln_kv_{nullptr}, ln_ff_{nullptr};
  torch::nn::Linear q_{nullptr}, k_{nullptr}, v_{nullptr}, proj_{nullptr}, ff1_{nullptr}, ff2_{nullptr};
  torch::nn::Dropout drop_{nullptr};
};
TORCH_MODULE(CrossModalLayer);

struct CrossModalStackOptions {
  CrossModalLayerOptions layer;  // every layer's options
  int64_t layers = 2;            // cross-modal layers β → α
};

// `layers` cross-modal layers, each attending from the running target to the same source,
// then a final LayerNorm (submodules: layers.<i>, ln).
class CrossModalStackImpl : public torch::nn::Module {
 public:
  explicit CrossModalStackImpl(CrossModalStackOptions o);
  torch::Tensor forward(const torch::Tensor& target, const torch::Tensor& source, const torch::Tensor& source_pad = {});
  CrossModalStackOptions options;

 private:
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::LayerNorm ln_{nullptr};
};
TORCH_MODULE(CrossModalStack);

}  // namespace braid::nn
