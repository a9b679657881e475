#include "braid/nn/temporal/memory.h"

#include <torch/torch.h>

namespace braid::nn {

TwoLayerImpl::TwoLayerImpl(TwoLayerOptions o) : options(o) {
  TORCH_CHECK(o.in > 0 && o.hidden > 0 && o.out > 0, "TwoLayer: widths must be positive (", o.in, ", ", o.hidden,
              ", ", o.out, ")");
  fc1_ = register_module("fc1", torch::nn::Linear(o.in, o.hidden));
  fc2_ = register_module("fc2", torch::nn::Linear(o.hidden, o.out));
  drop_ = register_module("drop", torch::nn::Dropout(o.dropout));
}

torch::Tensor TwoLayerImpl::forward(const torch::Tensor& x) {
  return fc2_->forward(drop_->forward(torch::relu(fc1_->forward(x))));
}

DeltaMemoryAttentionImpl::DeltaMemoryAttentionImpl(DeltaMemoryAttentionOptions o) : options(o) {
  att_ = register_module("att", TwoLayer(TwoLayerOptions{o.cells, o.hidden, o.cells, o.dropout}));
}

torch::Tensor DeltaMemoryAttentionImpl::forward(const torch::Tensor& c_hat) {
  return torch::softmax(att_->forward(c_hat), -1) * c_hat;
}

GatedMemoryImpl::GatedMemoryImpl(GatedMemoryOptions o) : options(o) {
  const int64_t g = o.gate_memory ? o.in + o.memory : o.in;
  proposal_ = register_module("proposal", TwoLayer(TwoLayerOptions{o.in, o.hidden, o.memory, o.dropout}));
  retain_ = register_module("retain", TwoLayer(TwoLayerOptions{g, o.hidden, o.memory, o.dropout}));
  update_ = register_module("update", TwoLayer(TwoLayerOptions{g, o.hidden, o.memory, o.dropout}));
}

torch::Tensor GatedMemoryImpl::forward(const torch::Tensor& a, const torch::Tensor& u_prev) {
  auto u_hat = torch::tanh(proposal_->forward(a));
  auto g = options.gate_memory ? torch::cat({a, u_prev}, 1) : a;
  auto g1 = torch::sigmoid(retain_->forward(g)), g2 = torch::sigmoid(update_->forward(g));
  return g1 * u_prev + g2 * u_hat;
}

}  // namespace braid::nn
