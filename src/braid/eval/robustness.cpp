#include "braid/eval/robustness.h"

#include <torch/torch.h>

#include <numeric>

#include "braid/eval/metrics.h"

namespace braid::eval {

void drop_modalities(Batch& b, const std::vector<std::string>& drop) {
  for (const auto& m : drop) {
    auto it = b.mods.find(m);
    if (it == b.mods.end()) continue;
    auto& mb = it->second;
    if (mb.data.defined()) mb.data = torch::zeros_like(mb.data);
    mb.present = torch::zeros_like(mb.present);
    mb.lengths = torch::zeros_like(mb.lengths);
  }
}

nlohmann::json evaluate_batches(Pipeline& p, const std::vector<Batch>& batches,
                                const std::vector<std::string>& drop) {
  torch::NoGradGuard ng;
  bool was_training = p.model->is_training();
  p.model->eval();
  std::vector<torch::Tensor> outs, truth;
  for (const auto& b0 : batches) {
    Batch b = b0;
    if (!drop.empty()) drop_modalities(b, drop);
    outs.push_back(p.model->forward(b.to(p.device)).to(torch::kCPU).to(torch::kFloat));
    truth.push_back(p.task == Task::Classify ? b.labels : b.targets);
  }
  p.model->train(was_training);
  if (outs.empty()) return {{"n", 0}};
  auto o = torch::cat(outs), t = torch::cat(truth);
  return p.task == Task::Classify ? classification_metrics(o, t, p.classes->names()) : regression_metrics(o, t);
}

std::vector<std::vector<std::string>> nonempty_subsets(const std::vector<std::string>& mods) {
  std::vector<std::vector<std::string>> out;
  const size_t n = mods.size();
  for (size_t k = 1; k <= n; ++k)
    for (uint32_t mask = 1; mask < (1u << n); ++mask) {
      if (static_cast<size_t>(__builtin_popcount(mask)) != k) continue;
      std::vector<std::string> s;
      for (size_t i = 0; i < n; ++i)
        if (mask & (1u << i)) s.push_back(mods[i]);
      out.push_back(s);
    }
  return out;
}

double relative_robustness(const std::vector<double>& acc) {
  return acc.empty() ? 0.0 : std::accumulate(acc.begin(), acc.end(), 0.0) / acc.size();
}

std::vector<double> effective_robustness(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = x.size();
  std::vector<double> out(n, 0.0);
  if (n < 2) return out;
  double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
  }
  double b = sxx > 0 ? sxy / sxx : 0.0, a = my - b * mx;
  for (size_t i = 0; i < n; ++i) out[i] = y[i] - (a + b * x[i]);
  return out;
}

}  // namespace braid::eval
