// braid/objectives/supervised.h — losses and scores for labelled tasks.
#pragma once

#include <torch/types.h>

#include <functional>
#include <map>
#include <string>

namespace braid::objectives {

// Mean cross-entropy of logits [B, K] against class ids [B]; label smoothing ε spreads ε over all classes.
torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels, double smoothing = 0.0);

// Concordance correlation per column: 2 cov(x,y) / (var x + var y + (μx − μy)²), population moments.
// x, y [N, D] -> [D].
torch::Tensor concordance(const torch::Tensor& x, const torch::Tensor& y);

// 1 − mean concordance: a regression loss that rewards agreement in scale and offset as well as correlation.
torch::Tensor ccc_loss(const torch::Tensor& pred, const torch::Tensor& target);

// The supervised losses a recipe may name in `train.loss` (`braid list losses`).
struct SupervisedLoss {
  std::string doc;
  bool classify = false;  // for task classify (outputs vs class ids); else task regress (vs targets)
  // outputs [B, K] or [B, D]; truth: class ids [B] or targets [B, D]; label smoothing (classify only)
  std::function<torch::Tensor(const torch::Tensor& out, const torch::Tensor& truth, double smoothing)> fn;
};
const std::map<std::string, SupervisedLoss>& supervised_losses();
// The loss `name` ("" = ce for classify, mse for regress) for a task; an unknown name or one for
// the other task is an InputError naming `where` (the recipe key).
const SupervisedLoss& supervised_loss(const std::string& name, bool classify, const std::string& where);

}  // namespace braid::objectives
