// braid/objectives/ranking.h — DeViSE hinge ranking loss (Frome et al. 2013).
#pragma once

#include <torch/types.h>

namespace braid::objectives {

// scores [B, K] with scores[i, j] = t_jᵀ M v_i (t_j the label-text embeddings), labels [B] int64 in
// [0, K). loss = mean over i of Σ_{j≠y_i} max(0, margin − s_{i,y_i} + s_{i,j}). Default margin 0.1.
// Wrong shapes or labels outside [0, K) throw a one-line braid::InputError.
torch::Tensor devise_loss(const torch::Tensor& scores, const torch::Tensor& labels, double margin = 0.1);

}  // namespace braid::objectives
