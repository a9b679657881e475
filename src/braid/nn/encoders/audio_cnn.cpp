#include "braid/nn/encoders/audio_cnn.h"

#include <torch/torch.h>

#include "braid/nn/blocks.h"

namespace braid::nn {

AudioCNNOptions AudioCNNOptions::from_config(const Config& c) {
  AudioCNNOptions o;
  o.channels = c.get<std::vector<int64_t>>("channels", o.channels);
  o.dim = c.get<int64_t>("dim", o.dim);
  BRAID_INPUT_CHECK(!o.channels.empty() && o.dim > 0, "{}: '{}' needs channels and a positive dim", c.origin(), c.path());
  return o;
}

AudioCNNImpl::AudioCNNImpl(AudioCNNOptions o, const EncoderContext& ctx) : options(std::move(o)) {
  convs_ = ConvStack(*this, 1, options.channels, ctx.channels_last);
  out_ = register_module("out", torch::nn::Linear(convs_.out_channels(), options.dim));
  out_dim_ = options.dim;
}

torch::Tensor AudioCNNImpl::encode(const ModalityBatch& mb) {
  auto len = mb.lengths;
  auto x = convs_.forward(mb.data.unsqueeze(1), /*ceil=*/true, &len);  // [B, 1, n_mels, T] -> [B, C, F, T']
  // [B, C, F, T] -> mean over mel bands -> [B, T, C] -> masked mean over valid time
  auto seq = x.mean(2).transpose(1, 2);
  return out_->forward(masked_mean(seq, len));
}

}  // namespace braid::nn
