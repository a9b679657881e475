#include "braid/eval/metrics.h"

#include <fmt/format.h>

#include <limits>

#include <torch/torch.h>

#include "braid/objectives/supervised.h"

namespace braid::eval {

double macro_f1(const torch::Tensor& pred, const torch::Tensor& labels, int64_t K) {
  auto p = pred.to(torch::kLong).contiguous(), y = labels.to(torch::kLong).contiguous();
  std::vector<double> tp(K), fp(K), fn(K);
  auto pa = p.accessor<int64_t, 1>(), ya = y.accessor<int64_t, 1>();
  for (int64_t i = 0; i < p.size(0); ++i) {
    if (pa[i] == ya[i]) {
      tp[ya[i]] += 1;
    } else {
      fp[pa[i]] += 1;
      fn[ya[i]] += 1;
    }
  }
  double sum = 0;
  int64_t n = 0;
  for (int64_t k = 0; k < K; ++k) {
    if (tp[k] + fp[k] + fn[k] == 0) continue;  // class absent from both truth and prediction
    sum += 2 * tp[k] / (2 * tp[k] + fp[k] + fn[k]);
    ++n;
  }
  return n ? sum / n : 0.0;
}

nlohmann::json classification_metrics(const torch::Tensor& logits, const torch::Tensor& labels,
                                      const std::vector<std::string>& names) {
  const int64_t N = labels.size(0), K = logits.size(1);
  nlohmann::json j;
  j["n"] = N;
  if (N == 0) return j;
  auto pred = logits.argmax(1);
  j["accuracy"] = pred.eq(labels).to(torch::kDouble).mean().item<double>();
  j["macro_f1"] = macro_f1(pred, labels, K);
  if (K > 5) {
    auto top5 = std::get<1>(logits.topk(5, 1));
    j["top5_accuracy"] = top5.eq(labels.unsqueeze(1)).any(1).to(torch::kDouble).mean().item<double>();
  }
  j["loss"] = objectives::cross_entropy(logits.to(torch::kFloat), labels).item<double>();
  nlohmann::json per;
  for (int64_t k = 0; k < K; ++k) {
    auto mask = labels.eq(k);
    int64_t n = mask.sum().item<int64_t>();
    if (n == 0) continue;
    per[names[k]] = {{"n", n}, {"recall", pred.masked_select(mask).eq(k).to(torch::kDouble).mean().item<double>()}};
  }
  j["per_class"] = per;
  return j;
}

nlohmann::json regression_metrics(const torch::Tensor& pred, const torch::Tensor& target) {
  nlohmann::json j;
  j["n"] = pred.size(0);
  if (pred.size(0) == 0) return j;
  auto p = pred.to(torch::kDouble), t = target.to(torch::kDouble);
  j["mse"] = (p - t).pow(2).mean().item<double>();
  j["mae"] = (p - t).abs().mean().item<double>();
  auto ccc = objectives::concordance(p, t);
  std::vector<double> per(ccc.data_ptr<double>(), ccc.data_ptr<double>() + ccc.numel());
  j["ccc_per_dim"] = per;
  j["ccc"] = ccc.mean().item<double>();
  return j;
}

nlohmann::json retrieval_metrics(const torch::Tensor& q, const torch::Tensor& g, const torch::Tensor& q_groups,
                                 const torch::Tensor& g_groups) {
  TORCH_CHECK(q.dim() == 2 && g.dim() == 2 && q.size(1) == g.size(1), "retrieval_metrics: q and g must be [N, D], [M, D]");
  auto sim = torch::matmul(q.to(torch::kFloat), g.to(torch::kFloat).t());                // [N, M]
  auto relevant = q_groups.view({-1, 1}).eq(g_groups.view({1, -1}));                     // [N, M]
  auto best = sim.masked_fill(relevant.logical_not(), -std::numeric_limits<float>::infinity()).amax(1, true);
  auto ranks = (sim > best).sum(1).to(torch::kDouble) + 1;                               // [N]
  auto has = relevant.any(1);
  ranks = ranks.masked_select(has);
  const int64_t n = ranks.numel();
  nlohmann::json m = {{"n", n}};
  if (n == 0) return m;
  for (int k : {1, 5, 10}) m[fmt::format("r{}", k)] = (ranks <= k).to(torch::kDouble).mean().item<double>();
  m["median_rank"] = ranks.median().item<double>();
  m["mean_rank"] = ranks.mean().item<double>();
  return m;
}

}  // namespace braid::eval
