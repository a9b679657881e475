// braid/objectives/cmcm.h — cross-modal code matching (L_cmcm, Liu et al. 2022, as used by Uni-Code).
//
// Per row i and modality m: p^m_i = mean_t softmax_k(−‖s^m_{i,t} − e_k‖) (Euclidean distance, not squared).
// For a modality pair (a, b): S_ij = p^a_i · log p^b_j + p^b_i · log p^a_j and
//   L_ab = mean_i −log(exp S_ii / Σ_j exp S_ij)   (log-sum-exp with the row maximum subtracted).
// L_cmcm = 0.5 · Σ over unordered pairs a < b of L_ab. Gradients reach s; the codebook is a constant.
#pragma once

#include <torch/types.h>

#include <vector>

namespace braid::objectives {

// Code distributions [B, K] of s [B, T, D] over codebook [K, D].
torch::Tensor code_distribution(const torch::Tensor& s, const torch::Tensor& codebook);
torch::Tensor cmcm_loss(const std::vector<torch::Tensor>& s, const torch::Tensor& codebook);

}  // namespace braid::objectives
