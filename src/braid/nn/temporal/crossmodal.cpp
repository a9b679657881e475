#include "braid/nn/temporal/crossmodal.h"

#include <torch/torch.h>

#include "braid/nn/blocks.h"

namespace braid::nn {

torch::Tensor nonempty_padding(const torch::Tensor& pad) {
  auto empty = pad.all(1, /*keepdim=*/true);                                          // [B, 1]
  auto first = (torch::arange(pad.size(1), pad.options().dtype(torch::kLong)) == 0).unsqueeze(0);  // [1, T]
  return pad.logical_and(empty.logical_and(first).logical_not());
}

torch::Tensor masked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& pad) {
  if (!pad.defined()) return attention(q, k, v);
  // attend to step 0 in empty rows (finite softmax), then zero those rows
  auto out = attention(q, k, v, nonempty_padding(pad));
  auto has_keys = pad.logical_not().any(1).to(out.dtype()).view({-1, 1, 1, 1});
  return out * has_keys;
}

CrossModalLayerImpl::CrossModalLayerImpl(CrossModalLayerOptions o) : options(o) {
  TORCH_CHECK(o.dim > 0 && o.heads > 0 && o.dim % o.heads == 0, "CrossModalLayer: dim ", o.dim,
              " is not a positive multiple of heads ", o.heads);
  auto ln = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})); };
  ln_q_ = register_module("ln_q", ln());
  ln_kv_ = register_module("ln_kv", ln());
  q_ = register_module("q", torch::nn::Linear(o.dim, o.dim));
  k_ = register_module("k", torch::nn::Linear(o.dim, o.dim));
  v_ = register_module("v", torch::nn::Linear(o.dim, o.dim));
  proj_ = register_module("proj", torch::nn::Linear(o.dim, o.dim));
  ln_ff_ = register_module("ln_ff", ln());
  ff1_ = register_module("ff1", torch::nn::Linear(o.dim, o.ff_mult * o.dim));
  ff2_ = register_module("ff2", torch::nn::Linear(o.ff_mult * o.dim, o.dim));
  drop_ = register_module("drop", torch::nn::Dropout(o.dropout));
}

torch::Tensor CrossModalLayerImpl::forward(const torch::Tensor& target, const torch::Tensor& source,
                                           const torch::Tensor& source_pad) {
  const int64_t B = target.size(0), Tq = target.size(1), Tk = source.size(1), H = options.heads,
                d = options.dim / H;
  TORCH_CHECK(source.size(0) == B && target.size(2) == options.dim && source.size(2) == options.dim,
              "CrossModalLayer: target ", target.sizes(), " and source ", source.sizes(), " need width ", options.dim,
              " and the same batch");
  auto s = ln_kv_->forward(source);
  auto q = linear(q_, ln_q_->forward(target)).view({B, Tq, H, d}).transpose(1, 2);  // [B, H, Tq, d]
  auto k = linear(k_, s).view({B, Tk, H, d}).transpose(1, 2);                        // [B, H, Tk, d]
  auto v = linear(v_, s).view({B, Tk, H, d}).transpose(1, 2);
  auto a = masked_attention(q, k, v, source_pad).transpose(1, 2).reshape({B, Tq, options.dim});
  auto att = linear(proj_, a);
  if (source_pad.defined())  // rows without any valid source step: no contribution (not even proj's bias)
    att = att * source_pad.logical_not().any(1).to(att.dtype()).view({-1, 1, 1});
  auto h = target + drop_->forward(att);
  auto f = linear(ff2_, drop_->forward(torch::relu(linear(ff1_, ln_ff_->forward(h)))));
  return h + drop_->forward(f);
}

CrossModalStackImpl::CrossModalStackImpl(CrossModalStackOptions o) : options(o) {
  TORCH_CHECK(o.layers >= 1, "CrossModalStack: needs at least one layer");
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.layers; ++i) layers_->push_back(CrossModalLayer(o.layer));
  ln_ = register_module("ln", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.layer.dim})));
}

torch::Tensor CrossModalStackImpl::forward(const torch::Tensor& target, const torch::Tensor& source,
                                           const torch::Tensor& source_pad) {
  auto x = target;
  for (auto& l : *layers_) x = l->as<CrossModalLayer>()->forward(x, source, source_pad);
  return ln_->forward(x);
}

}  // namespace braid::nn
