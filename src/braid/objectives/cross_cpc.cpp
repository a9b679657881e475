// braid/objectives/cross_cpc.cpp — InfoNCE and cross-modal contrastive predictive coding.
#include "braid/objectives/cross_cpc.h"

#include <torch/torch.h>

namespace braid::objectives {

torch::Tensor info_nce(const torch::Tensor& pred, const torch::Tensor& target) {
  auto logits = pred.matmul(target.t());
  auto labels = torch::arange(pred.size(0), torch::TensorOptions().dtype(torch::kLong).device(pred.device()));
  return torch::nn::functional::cross_entropy(logits, labels);
}

CrossCPCImpl::CrossCPCImpl(CrossCPCOptions o) : options(o) {
  TORCH_CHECK(o.modalities > 0 && o.horizon > 0, "cross_cpc: modalities and horizon must be positive");
  lstms_ = register_module("lstms", torch::nn::ModuleList());
  heads_ = register_module("heads", torch::nn::ModuleList());
  for (int64_t m = 0; m < o.modalities; ++m) {
    lstms_->push_back(torch::nn::LSTM(torch::nn::LSTMOptions(o.dim, o.context).batch_first(true)));
    for (int64_t k = 0; k < o.horizon; ++k)
      heads_->push_back(torch::nn::Linear(torch::nn::LinearOptions(o.context, o.dim).bias(false)));
  }
}

torch::Tensor CrossCPCImpl::forward(const std::vector<torch::Tensor>& s) {
  const int64_t M = options.modalities, K = options.horizon;
  TORCH_CHECK(static_cast<int64_t>(s.size()) == M, "cross_cpc: expected ", M, " modalities");
  const int64_t T = s[0].size(1);
  TORCH_CHECK(T > K, "cross_cpc: sequence length ", T, " must exceed the horizon ", K);
  const int64_t B = s[0].size(0);
  // row i of step t is the positive of prediction i at step t: labels 0..B-1 repeated for every t
  auto labels = torch::arange(B, torch::TensorOptions().dtype(torch::kLong).device(s[0].device())).repeat({T});
  auto loss = torch::zeros({}, s[0].options());
  for (int64_t a = 0; a < M; ++a) {
    auto c = std::get<0>(lstms_[a]->as<torch::nn::LSTM>()->forward(s[a]));  // [B, T, H]
    std::vector<torch::Tensor> preds;  // W^a_k c^a, k = 1..K: [B, T, D]
    for (int64_t k = 1; k <= K; ++k) preds.push_back(heads_[a * K + k - 1]->as<torch::nn::Linear>()->forward(c));
    for (int64_t b = 0; b < M; ++b) {
      const double w = a == b ? options.self_weight : options.cross_weight;
      if (w == 0) continue;
      // all t at once: one batched [T-k, B, B] score tensor per k; the mean over (t, i) times (T-k)
      // equals the sum over t of the per-step InfoNCE means.
      auto sum = torch::zeros({}, s[0].options());
      int64_t n = 0;
      for (int64_t k = 1; k <= K; ++k) {
        auto pred = preds[k - 1].narrow(1, 0, T - k).transpose(0, 1);   // [T-k, B, D]
        auto target = s[b].narrow(1, k, T - k).transpose(0, 1);         // [T-k, B, D]
        auto logits = pred.bmm(target.transpose(1, 2)).reshape({-1, B});  // [(T-k)·B, B]
        auto nce = torch::nn::functional::cross_entropy(logits, labels.narrow(0, 0, (T - k) * B));
        sum = sum + static_cast<double>(T - k) * nce;
        n += T - k;
      }
      loss = loss + w * sum / static_cast<double>(n);
    }
  }
  return loss;
}

}  // namespace braid::objectives
