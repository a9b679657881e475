// braid/nn/encoders/series_gru.h — GRU encoder for time series / sensor frames.
#pragma once

#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/rnn.h>

#include "braid/core/config.h"
#include "braid/nn/encoder.h"

namespace braid::nn {

struct SeriesGRUOptions {
  int64_t hidden = 64;   // GRU state width
  int64_t layers = 1;    // stacked GRU layers
  int64_t dim = 128;     // output width
  static SeriesGRUOptions from_config(const Config& c);
};

// [B, T, C] -> GRU -> state at each sample's last valid step -> Linear -> [B, dim].
class SeriesGRUImpl : public EncoderImpl {
 public:
  SeriesGRUImpl(SeriesGRUOptions o, const EncoderContext& ctx);
  SeriesGRUOptions options;

 protected:
  torch::Tensor encode(const ModalityBatch& mb) override;

 private:
  torch::nn::GRU gru_{nullptr};
  torch::nn::Linear out_{nullptr};
};

}  // namespace braid::nn
