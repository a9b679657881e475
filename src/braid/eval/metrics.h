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

// Retrieval of gallery items for each query by cosine score (inputs L2-normalized). A query's
// relevant items are the gallery rows with its group id (groups: one id per row, shared by the
// query and gallery; pass arange(N) when only the paired row counts). The rank of a query is 1 +
// the number of gallery items scoring above its best relevant item. Returns R@1/5/10 (fraction of
// queries ranked within K), median and mean rank, and n. q [N, D], g [M, D].
nlohmann::json retrieval_metrics(const torch::Tensor& q, const torch::Tensor& g, const torch::Tensor& q_groups,
                                 const torch::Tensor& g_groups);

double macro_f1(const torch::Tensor& pred, const torch::Tensor& labels, int64_t num_classes);

}  // namespace braid::eval
