#include "braid/nn/encoders/series_gru.h"

#include <torch/torch.h>

namespace braid::nn {

SeriesGRUOptions SeriesGRUOptions::from_config(const Config& c) {
  SeriesGRUOptions o;
  o.hidden = c.get<int64_t>("hidden", o.hidden);
  o.layers = c.get<int64_t>("layers", o.layers);
  o.dim = c.get<int64_t>("dim", o.dim);
  BRAID_INPUT_CHECK(o.hidden > 0 && o.layers > 0 && o.dim > 0, "{}: '{}' needs positive hidden, layers, dim", c.origin(),
                    c.path());
  return o;
}

SeriesGRUImpl::SeriesGRUImpl(SeriesGRUOptions o, const EncoderContext& ctx) : options(o) {
  TORCH_CHECK(ctx.series_channels > 0, "series_gru: unknown channel count");
  gru_ = register_module("gru", torch::nn::GRU(torch::nn::GRUOptions(ctx.series_channels, o.hidden)
                                                   .num_layers(o.layers).batch_first(true)));
  out_ = register_module("out", torch::nn::Linear(o.hidden, o.dim));
  out_dim_ = o.dim;
}

torch::Tensor SeriesGRUImpl::encode(const ModalityBatch& mb) {
  auto out = std::get<0>(gru_->forward(mb.data));                   // [B, T, hidden]
  auto last = (mb.lengths - 1).clamp_min(0);                        // [B]
  auto idx = last.view({-1, 1, 1}).expand({out.size(0), 1, out.size(2)});
  return out_->forward(out.gather(1, idx).squeeze(1));
}

}  // namespace braid::nn
