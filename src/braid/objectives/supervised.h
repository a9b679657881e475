// braid/objectives/supervised.h — losses and scores for labelled tasks.
#pragma once

#include <torch/types.h>

namespace braid::objectives {

// Mean cross-entropy of logits [B, K] against class ids [B]; label smoothing ε spreads ε over all classes.
torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels, double smoothing = 0.0);

// Concordance correlation per column: 2 cov(x,y) / (var x + var y + (μx − μy)²), population moments.
// x, y [N, D] -> [D].
torch::Tensor concordance(const torch::Tensor& x, const torch::Tensor& y);

// 1 − mean concordance: a regression loss that rewards agreement in scale and offset as well as correlation.
torch::Tensor ccc_loss(const torch::Tensor& pred, const torch::Tensor& target);

}  // namespace braid::objectives
