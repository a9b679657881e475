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
  convs_ = register_module("convs", torch::nn::ModuleList());
  norms_ = register_module("norms", torch::nn::ModuleList());
  int64_t in = 1;
  for (int64_t ch : options.channels) {
    convs_->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, ch, 3).padding(1).bias(false)));
    norms_->push_back(torch::nn::BatchNorm2d(ch));
    in = ch;
  }
  out_ = register_module("out", torch::nn::Linear(in, options.dim));
  out_dim_ = options.dim;
}

torch::Tensor AudioCNNImpl::encode(const data::ModalityBatch& mb) {
  auto x = mb.data.unsqueeze(1);  // [B, 1, n_mels, T]
  auto len = mb.lengths;
  for (size_t i = 0; i < convs_->size(); ++i) {
    x = convs_[i]->as<torch::nn::Conv2d>()->forward(x);
    x = torch::relu(norms_[i]->as<torch::nn::BatchNorm2d>()->forward(x));
    if (x.size(2) >= 2 && x.size(3) >= 2) {
      x = torch::max_pool2d(x, 2, 2, 0, 1, /*ceil_mode=*/true);
      len = torch::floor_divide(len + 1, 2);  // ceil(len / 2)
    }
  }
  // [B, C, F, T] -> mean over mel bands -> [B, T, C] -> masked mean over valid time
  auto seq = x.mean(2).transpose(1, 2);
  return out_->forward(masked_mean(seq, len));
}

}  // namespace braid::nn
