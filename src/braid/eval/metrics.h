// braid/eval/metrics.h — scores of predictions against the truth.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <string>
#include <vector>

namespace braid::eval {

// Accuracy, macro-F1 (mean over classes that occur in truth or prediction), top-5 accuracy
// (when K > 5) and per-class recall. logits [N, K], labels [N].
nlohmann::json classification_metrics(const torch::Tensor& logits, const torch::Tensor& labels,
                                      const std::vector<std::string>& class_names);

// MSE, MAE and concordance (CCC) per dimension and their mean. pred, target [N, D].
nlohmann::json regression_metrics(const torch::Tensor& pred, const torch::Tensor& target);

double macro_f1(const torch::Tensor& pred, const torch::Tensor& labels, int64_t num_classes);

}  // namespace braid::eval
