// braid/nn/temporal/memory.h — MFN's delta-memory attention and multi-view gated memory
// (Zadeh et al. 2018, "Memory Fusion Network for Multi-view Sequential Learning",
// https://arxiv.org/abs/1802.00927; reference code github.com/pliang279/MFN).
//
// Each D_* below is a two-layer network Linear -> ReLU -> Dropout -> Linear, as in the
// reference code. With ĉ = [c_{t-1}; c_t] (the LSTM memories of all modalities at t-1 and t):
//   delta-memory attention  a = softmax(D_a(ĉ)) ⊙ ĉ        (softmax over all units of ĉ)
//   proposal                û = tanh(D_u(a))
//   gates                   γ_1 = σ(D_1(g)), γ_2 = σ(D_2(g)), g = [a; u_{t-1}] (reference code)
//                           or g = a (gate_memory = false: the formulas of ALGORITHMS.md)
//   memory                  u_t = γ_1 ⊙ u_{t-1} + γ_2 ⊙ û
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

namespace braid::nn {

struct TwoLayerOptions {
  int64_t in = 0;        // input width
  int64_t hidden = 64;   // hidden width
  int64_t out = 0;       // output width
  double dropout = 0.0;  // after the ReLU
};

// Linear -> ReLU -> Dropout -> Linear (submodules fc1, fc2).
class TwoLayerImpl : public torch::nn::Module {
 public:
  explicit TwoLayerImpl(TwoLayerOptions o);
  torch::Tensor forward(const torch::Tensor& x);
  TwoLayerOptions options;

 private:
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
  torch::nn::Dropout drop_{nullptr};
};
TORCH_MODULE(TwoLayer);

struct DeltaMemoryAttentionOptions {
  int64_t cells = 0;      // width of ĉ = [c_{t-1}; c_t] (2 × the sum of the LSTM widths)
  int64_t hidden = 64;    // hidden width of D_a
  double dropout = 0.0;   // dropout inside D_a
};

// a = softmax(D_a(ĉ)) ⊙ ĉ; ĉ [B, cells] -> [B, cells]. Submodule: att.
class DeltaMemoryAttentionImpl : public torch::nn::Module {
 public:
  explicit DeltaMemoryAttentionImpl(DeltaMemoryAttentionOptions o);
  torch::Tensor forward(const torch::Tensor& c_hat);
  DeltaMemoryAttentionOptions options;

 private:
  TwoLayer att_{nullptr};
};
TORCH_MODULE(DeltaMemoryAttention);

struct GatedMemoryOptions {
  int64_t in = 0;            // width of the attended memories a
  int64_t memory = 64;       // width of u
  int64_t hidden = 64;       // hidden width of D_u, D_1, D_2
  bool gate_memory = true;   // gates read [a; u_{t-1}] (reference code) rather than a alone
  double dropout = 0.0;      // dropout inside D_u, D_1, D_2
};

// u_t = γ_1 ⊙ u_{t-1} + γ_2 ⊙ tanh(D_u(a)); a [B, in], u_prev [B, memory] -> [B, memory].
// Submodules: proposal (D_u), retain (D_1), update (D_2).
class GatedMemoryImpl : public torch::nn::Module {
 public:
  explicit GatedMemoryImpl(GatedMemoryOptions o);
  torch::Tensor forward(const torch::Tensor& a, const torch::Tensor& u_prev);
  GatedMemoryOptions options;

 private:
  TwoLayer proposal_{nullptr}, retain_{nullptr}, update_{nullptr};
};
TORCH_MODULE(GatedMemory);

}  // namespace braid::nn
