#include "braid/nn/conv.h"

#include <torch/torch.h>

#include "braid/nn/pool.h"

namespace braid::nn {

ConvStack::ConvStack(torch::nn::Module& owner, int64_t in, const std::vector<int64_t>& channels, bool channels_last)
    : channels_last_(channels_last) {
  convs_ = owner.register_module("convs", torch::nn::ModuleList());
  norms_ = owner.register_module("norms", torch::nn::ModuleList());
  for (int64_t ch : channels) {
    convs_->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, ch, 3).padding(1).bias(false)));
    norms_->push_back(torch::nn::BatchNorm2d(ch));
    in = ch;
  }
  out_ = in;
}

torch::Tensor ConvStack::forward(torch::Tensor x, bool ceil, torch::Tensor* len) {
  if (channels_last_ && x.device().is_cpu()) {
    // one input channel (audio): contiguous(ChannelsLast) keeps the NCHW strides, which are channels-last
    // too, and the convolutions would stay in NCHW; the explicit channels-last strides carry the layout on
    x = x.size(1) == 1 && x.is_contiguous() ? x.as_strided(x.sizes(), {x.stride(0), 1, x.size(3), 1})
                                            : x.contiguous(torch::MemoryFormat::ChannelsLast);
  }
  for (size_t i = 0; i < convs_->size(); ++i) {
    x = convs_[i]->as<torch::nn::Conv2d>()->forward(x);
    x = norms_[i]->as<torch::nn::BatchNorm2d>()->forward(x);
    if (x.size(2) >= 2 && x.size(3) >= 2) {
      // relu + 2x2 max pool: one pass on contiguous CPU tensors (nn/pool.h: the same values and gradients)
      x = relu_max_pool2x2_applies(x) ? relu_max_pool2x2(x, ceil) : torch::max_pool2d(torch::relu(x), 2, 2, 0, 1, ceil);
      if (len) *len = ceil ? torch::floor_divide(*len + 1, 2) : torch::floor_divide(*len, 2);
    } else {
      x = torch::relu(x);
    }
  }
  return x;
}

}  // namespace braid::nn
