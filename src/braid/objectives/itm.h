// braid/objectives/itm.h — image-text matching with hard negatives mined from contrastive similarities.
#pragma once

#include <torch/types.h>

namespace braid::objectives {

// sim [B, B] (B ≥ 2, finite): for each row i a column j ≠ i drawn with probability
// softmax_{j≠i}(sim_ij), i.e. softmax of the row with the diagonal excluded. Returns [B] int64.
// For image→text negatives pass sim (images in rows); for text→image pass simᵀ. Draws from torch's
// global generator (reproducible under torch::manual_seed); no gradient.
torch::Tensor sample_hard_negatives(const torch::Tensor& sim);

// Binary matching loss: mean CE of logits [N, 2] against is_match [N] (bool or integer 0/1; class 1 = match).
torch::Tensor itm_loss(const torch::Tensor& logits, const torch::Tensor& is_match);

}  // namespace braid::objectives
