// braid/objectives/contrastive.cpp — CLIP (plain and row-chunked), SigLIP and InfoNCE losses.
#include "braid/objectives/contrastive.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>

#include "braid/objectives/check.h"
#include "braid/objectives/supervised.h"

namespace braid::objectives {
namespace {

void check_pair(const torch::Tensor& u, const torch::Tensor& v, const char* fn, const char* nu = "u",
                const char* nv = "v") {
  check_dim(u, 2, fn, nu);
  check_dim(v, 2, fn, nv);
  check_same(u, v, fn, nu, nv);
  BRAID_INPUT_CHECK(u.size(0) > 0, "{}: empty batch, {} has shape {}", fn, nu, shape_str(u));
}

// ½[mean_i logsumexp_j L_ij + mean_j logsumexp_i L_ij] with L = s·U Vᵀ, computed `chunk` rows at a
// time (the products U_r Vᵀ in the input dtype, the log-sum-exps and softmaxes in float64). Saves U, V, s and the two [B] log-sum-exp vectors; the backward recomputes each block:
// ∂/∂L_ij = (softmax_row_ij + softmax_col_ij) / 2B, then dU = s·G V, dV = s·Gᵀ U, ds = Σ G ⊙ U Vᵀ.
struct ChunkedLse : public torch::autograd::Function<ChunkedLse> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& u, const torch::Tensor& v,
                               const torch::Tensor& s, int64_t chunk) {
    const int64_t b = u.size(0);
    auto dopt = u.options().dtype(torch::kDouble);
    auto row_lse = torch::empty({b}, dopt);
    auto col_lse = torch::full({b}, -std::numeric_limits<double>::infinity(), dopt);
    auto vt = v.t();
    auto sd = s.to(torch::kDouble);
    for (int64_t r0 = 0; r0 < b; r0 += chunk) {
      const int64_t r1 = std::min(b, r0 + chunk);
      auto l = torch::mm(u.slice(0, r0, r1), vt).to(torch::kDouble).mul_(sd);
      row_lse.slice(0, r0, r1).copy_(torch::logsumexp(l, 1));
      col_lse = torch::logaddexp(col_lse, torch::logsumexp(l, 0));
    }
    ctx->save_for_backward({u, v, s, row_lse, col_lse});
    ctx->saved_data["chunk"] = chunk;
    return (0.5 * (row_lse.mean() + col_lse.mean())).to(u.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    const auto &u = saved[0], &v = saved[1], &s = saved[2], &row_lse = saved[3], &col_lse = saved[4];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const int64_t b = u.size(0);
    auto g = grad_out[0].to(torch::kDouble) / (2.0 * static_cast<double>(b));
    auto du = torch::empty_like(u);
    auto dv = torch::zeros_like(v);
    auto ds = torch::zeros({}, s.options().dtype(torch::kDouble));
    auto vt = v.t();
    auto sd = s.to(torch::kDouble);
    for (int64_t r0 = 0; r0 < b; r0 += chunk) {
      const int64_t r1 = std::min(b, r0 + chunk);
      auto ur = u.slice(0, r0, r1);
      auto p = torch::mm(ur, vt).to(torch::kDouble);  // U_r Vᵀ
      auto l = p * sd;  // logits up to 100: the softmax is formed in float64 so that l − lse keeps its digits
      auto gr = (torch::exp(l - row_lse.slice(0, r0, r1).unsqueeze(1)) + torch::exp(l - col_lse.unsqueeze(0))) * g;
      ds.add_((gr * p).sum());
      auto grf = gr.to(u.scalar_type());
      du.slice(0, r0, r1).copy_(torch::mm(grf, v) * s);
      dv.add_(torch::mm(grf.t(), ur) * s);
    }
    return {du, dv, ds.to(s.scalar_type()).reshape(s.sizes()), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor clip_loss(const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& logit_scale,
                        double label_smoothing, int64_t chunk) {
  check_pair(u, v, "clip_loss");
  check_scalar(logit_scale, "clip_loss", "logit_scale");
  BRAID_INPUT_CHECK(label_smoothing >= 0 && label_smoothing < 1, "clip_loss: label_smoothing must be in [0, 1), got {}",
                    label_smoothing);
  BRAID_INPUT_CHECK(chunk >= 0, "clip_loss: chunk must be >= 0, got {}", chunk);
  auto s = logit_scale.reshape({}).exp().clamp_max(100.0);
  const int64_t b = u.size(0);
  if (chunk == 0) {
    auto logits = torch::mm(u, v.t()) * s;
    auto target = torch::arange(b, torch::TensorOptions().dtype(torch::kLong).device(u.device()));
    return 0.5 * (cross_entropy(logits, target, label_smoothing) + cross_entropy(logits.t(), target, label_smoothing));
  }
  // CE_row_i = lse_i − (1−ε) L_ii − ε mean_j L_ij; the mean over i of mean_j L_ij is s·ū·v̄, and the
  // same for the columns, so only the log-sum-exp part needs the B×B logits.
  auto lse = ChunkedLse::apply(u, v, s, chunk);
  auto diag = (u * v).sum(1).mean() * s;
  auto means = (u.mean(0) * v.mean(0)).sum() * s;
  return lse - (1.0 - label_smoothing) * diag - label_smoothing * means;
}

torch::Tensor siglip_loss(const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& logit_scale,
                          const torch::Tensor& bias) {
  check_pair(u, v, "siglip_loss");
  check_scalar(logit_scale, "siglip_loss", "logit_scale");
  check_scalar(bias, "siglip_loss", "bias");
  const int64_t b = u.size(0);
  auto logits = torch::mm(u, v.t()) * logit_scale.reshape({}).exp() + bias.reshape({});
  auto z = 2 * torch::eye(b, u.options()) - 1;
  return -torch::log_sigmoid(z * logits).sum() / static_cast<double>(b);
}

torch::Tensor info_nce(const torch::Tensor& q, const torch::Tensor& k, double temperature) {
  check_pair(q, k, "info_nce", "q", "k");
  BRAID_INPUT_CHECK(temperature > 0, "info_nce: temperature must be > 0, got {}", temperature);
  auto logits = torch::mm(q, k.t()) / temperature;
  auto target = torch::arange(q.size(0), torch::TensorOptions().dtype(torch::kLong).device(q.device()));
  return cross_entropy(logits, target);
}

}  // namespace braid::objectives
