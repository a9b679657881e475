// braid/objectives/cross_cpc.h — Cross-modal CPC (Uni-Code's MI maximization between modalities'
// semantic sequences), and the InfoNCE it is built on.
//
// For each modality a, a one-layer LSTM summarizes s^a_{≤t} into c^a_t [B, T, H], and W^a_k (k = 1..K,
// Linear H -> D without bias) predicts a target modality's step t+k: ẑ = W^a_k c^a_t. For every
// ordered pair (a, b) — b = a included — and every k and t with t + k < T:
//   NCE_ab(k, t) = mean_i −log softmax_j(ẑ_i · s^b_{j,t+k})[i]     (negatives: the batch's other rows)
//   loss = Σ_{a,b} w_ab · mean_{k,t} NCE_ab(k, t),   w_ab = cross (1) for a ≠ b, self (0.1) for a = b.
// The loss is minimized (it is the negative of the MI lower bound).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/rnn.h>
#include <torch/types.h>

#include <vector>

namespace braid::objectives {

// Mean over rows of −log softmax(pred · targetᵀ)[i, i]: pred, target [N, D].
torch::Tensor info_nce(const torch::Tensor& pred, const torch::Tensor& target);

struct CrossCPCOptions {
  int64_t modalities = 2;
  int64_t dim = 64;          // D of the semantic features
  int64_t context = 64;      // LSTM width H
  int64_t horizon = 2;       // K future steps
  double cross_weight = 1.0;
  double self_weight = 0.1;
};

class CrossCPCImpl : public torch::nn::Module {
 public:
  explicit CrossCPCImpl(CrossCPCOptions o);
  CrossCPCOptions options;
  // s[m] [B, T, D], same B and T for every modality (T > horizon).
  torch::Tensor forward(const std::vector<torch::Tensor>& s);

 private:
  torch::nn::ModuleList lstms_{nullptr}, heads_{nullptr};  // per modality; heads_ holds M·K Linear
};
TORCH_MODULE(CrossCPC);

}  // namespace braid::objectives
