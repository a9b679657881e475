#include "braid/objectives/supervised.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "braid/core/error.h"

namespace braid::objectives {

torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels, double smoothing) {
  auto logp = torch::log_softmax(logits, 1);
  auto nll = -logp.gather(1, labels.unsqueeze(1)).squeeze(1);
  if (smoothing <= 0) return nll.mean();
  auto uniform = -logp.mean(1);
  return ((1.0 - smoothing) * nll + smoothing * uniform).mean();
}

torch::Tensor concordance(const torch::Tensor& x, const torch::Tensor& y) {
  auto mx = x.mean(0), my = y.mean(0);
  auto vx = (x - mx).pow(2).mean(0), vy = (y - my).pow(2).mean(0);
  auto cov = ((x - mx) * (y - my)).mean(0);
  return 2 * cov / (vx + vy + (mx - my).pow(2) + 1e-12);
}

torch::Tensor ccc_loss(const torch::Tensor& pred, const torch::Tensor& target) {
  return 1 - concordance(pred, target).mean();
}

namespace {

// Mean cross-entropy over every segment of [B, T * C] logits against [B, T] integer class ids (floats from a
// manifest target). InputError for a width that is not a multiple of T or ids outside [0, C).
torch::Tensor segment_cross_entropy(const torch::Tensor& out, const torch::Tensor& y, double smoothing) {
  BRAID_INPUT_CHECK(out.dim() == 2 && y.dim() == 2 && out.size(0) == y.size(0) && y.size(1) > 0 &&
                        out.size(1) % y.size(1) == 0 && out.size(1) / y.size(1) >= 2,
                    "loss segment_ce: outputs [{}] are not [B, T * C] for per-segment targets [{}]",
                    fmt::join(out.sizes(), ", "), fmt::join(y.sizes(), ", "));
  const int64_t C = out.size(1) / y.size(1);
  auto ids = y.round().to(torch::kLong);
  BRAID_INPUT_CHECK(torch::equal(ids.to(y.dtype()), y) && ids.min().item<int64_t>() >= 0 && ids.max().item<int64_t>() < C,
                    "loss segment_ce: targets must be class ids 0..{} per segment (0 = background)", C - 1);
  return cross_entropy(out.reshape({-1, C}), ids.reshape({-1}), smoothing);
}

}  // namespace

const std::map<std::string, SupervisedLoss>& supervised_losses() {
  static const std::map<std::string, SupervisedLoss> table = {
      {"ce", {"cross-entropy of class logits, with train.label_smoothing (task classify; the default)", true,
              [](const torch::Tensor& o, const torch::Tensor& y, double s) { return cross_entropy(o, y, s); }}},
      {"mse", {"mean squared error of the outputs against the targets (task regress; the default)", false,
               [](const torch::Tensor& o, const torch::Tensor& y, double) { return torch::mse_loss(o, y); }}},
      {"ccc", {"1 - mean concordance correlation of outputs and targets per dimension (task regress)", false,
               [](const torch::Tensor& o, const torch::Tensor& y, double) { return ccc_loss(o, y); }}},
      {"segment_ce", {"cross-entropy per segment: targets [B, T] hold class ids, outputs [B, T * C] the logits "
                      "segment by segment, with train.label_smoothing (task regress; ave_localizer)", false,
                      [](const torch::Tensor& o, const torch::Tensor& y, double s) { return segment_cross_entropy(o, y, s); }}},
  };
  return table;
}

const SupervisedLoss& supervised_loss(const std::string& name, bool classify, const std::string& where) {
  const std::string n = name.empty() ? (classify ? "ce" : "mse") : name;
  auto it = supervised_losses().find(n);
  if (it != supervised_losses().end() && it->second.classify == classify) return it->second;  // every step: no lists
  std::vector<std::string> fit;
  for (const auto& [k, l] : supervised_losses())
    if (l.classify == classify) fit.push_back(k);
  input_error("{}: '{}' is not a loss for task {} (expected one of: {})", where, n, classify ? "classify" : "regress",
              fmt::join(fit, ", "));
}

}  // namespace braid::objectives
