#include "braid/nn/encoders/image_cnn.h"

#include <torch/torch.h>

namespace braid::nn {

ImageCNNOptions ImageCNNOptions::from_config(const Config& c) {
  ImageCNNOptions o;
  o.channels = c.get<std::vector<int64_t>>("channels", o.channels);
  o.dim = c.get<int64_t>("dim", o.dim);
  BRAID_INPUT_CHECK(!o.channels.empty() && o.dim > 0, "{}: '{}' needs channels and a positive dim", c.origin(), c.path());
  return o;
}

ImageCNNImpl::ImageCNNImpl(ImageCNNOptions o, const EncoderContext& ctx) : options(std::move(o)) {
  convs_ = register_module("convs", torch::nn::ModuleList());
  norms_ = register_module("norms", torch::nn::ModuleList());
  int64_t in = 3;
  for (int64_t ch : options.channels) {
    convs_->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, ch, 3).padding(1).bias(false)));
    norms_->push_back(torch::nn::BatchNorm2d(ch));
    in = ch;
  }
  out_ = register_module("out", torch::nn::Linear(in, options.dim));
  out_dim_ = options.dim;
}

torch::Tensor ImageCNNImpl::encode(const data::ModalityBatch& mb) {
  auto x = mb.data;  // [B, 3, H, W]
  for (size_t i = 0; i < convs_->size(); ++i) {
    x = convs_[i]->as<torch::nn::Conv2d>()->forward(x);
    x = torch::relu(norms_[i]->as<torch::nn::BatchNorm2d>()->forward(x));
    if (x.size(2) >= 2 && x.size(3) >= 2) x = torch::max_pool2d(x, 2);
  }
  return out_->forward(x.mean({2, 3}));
}

}  // namespace braid::nn
