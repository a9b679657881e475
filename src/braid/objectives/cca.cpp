// braid/objectives/cca.cpp — linear CCA (closed form) and the deep CCA trace-norm objective.
#include "braid/objectives/cca.h"

#include <torch/torch.h>

#include <algorithm>
#include <tuple>

#include "braid/objectives/check.h"

namespace braid::objectives {
namespace {

void check_views(const torch::Tensor& X, const torch::Tensor& Y, int64_t k, const char* fn) {
  check_dim(X, 2, fn, "X");
  check_dim(Y, 2, fn, "Y");
  BRAID_INPUT_CHECK(X.size(0) == Y.size(0), "{}: X {} and Y {} must have the same number of rows", fn, shape_str(X),
                    shape_str(Y));
  BRAID_INPUT_CHECK(X.size(0) >= 2, "{}: needs at least 2 rows, got X {}", fn, shape_str(X));
  const int64_t kmax = std::min(X.size(1), Y.size(1));
  BRAID_INPUT_CHECK(k >= 0 && k <= kmax, "{}: k must be in [0, min(dx, dy) = {}] for X {} and Y {}, got {}", fn, kmax,
                    shape_str(X), shape_str(Y), k);
}

// C^{−1/2} of a symmetric positive-definite matrix through its eigendecomposition.
torch::Tensor inv_sqrt(const torch::Tensor& c) {
  torch::Tensor w, q;
  std::tie(w, q) = at::linalg_eigh(c, "L");
  return torch::mm(q * w.clamp_min(1e-12).rsqrt().unsqueeze(0), q.t());
}

struct Whitened {
  torch::Tensor mx, my, cxx_is, cyy_is, t;
};

// Centre, form the regularized covariances and T = C_xx^{−1/2} C_xy C_yy^{−1/2}, in float64.
Whitened whiten(const torch::Tensor& X, const torch::Tensor& Y, double rx, double ry) {
  auto x = X.to(torch::kDouble), y = Y.to(torch::kDouble);
  const double n1 = static_cast<double>(x.size(0) - 1);
  Whitened w;
  w.mx = x.mean(0);
  w.my = y.mean(0);
  auto xc = x - w.mx, yc = y - w.my;
  auto cxx = torch::mm(xc.t(), xc) / n1 + rx * torch::eye(x.size(1), x.options());
  auto cyy = torch::mm(yc.t(), yc) / n1 + ry * torch::eye(y.size(1), y.options());
  auto cxy = torch::mm(xc.t(), yc) / n1;
  w.cxx_is = inv_sqrt(cxx);
  w.cyy_is = inv_sqrt(cyy);
  w.t = torch::mm(torch::mm(w.cxx_is, cxy), w.cyy_is);
  return w;
}

}  // namespace

CCA linear_cca(const torch::Tensor& X, const torch::Tensor& Y, int64_t k, double rx, double ry) {
  check_views(X, Y, k, "linear_cca");
  BRAID_INPUT_CHECK(k >= 1, "linear_cca: k must be >= 1, got {}", k);
  BRAID_INPUT_CHECK(rx >= 0 && ry >= 0, "linear_cca: ridge must be >= 0, got rx {} ry {}", rx, ry);
  torch::NoGradGuard no_grad;
  auto w = whiten(X, Y, rx, ry);
  torch::Tensor u, s, vh;
  std::tie(u, s, vh) = at::linalg_svd(w.t, /*full_matrices=*/false);
  CCA out;
  const auto dt = X.scalar_type();
  out.mean_x = w.mx.to(dt);
  out.mean_y = w.my.to(dt);
  out.A = torch::mm(w.cxx_is, u.slice(1, 0, k)).to(dt);
  out.B = torch::mm(w.cyy_is, vh.slice(0, 0, k).t()).to(dt);
  out.corr = s.slice(0, 0, k).to(dt);
  return out;
}

torch::Tensor dcca_loss(const torch::Tensor& X, const torch::Tensor& Y, int64_t k, double r) {
  check_views(X, Y, k, "dcca_loss");
  BRAID_INPUT_CHECK(r >= 0, "dcca_loss: ridge must be >= 0, got {}", r);
  auto w = whiten(X, Y, r, r);
  auto s = at::linalg_svdvals(w.t);  // descending
  if (k > 0) s = s.slice(0, 0, k);
  return (-s.sum()).to(X.scalar_type());
}

torch::Tensor canonical_correlations(const torch::Tensor& X, const torch::Tensor& Y, int64_t k, double r) {
  check_views(X, Y, k, "canonical_correlations");
  torch::NoGradGuard no_grad;
  auto w = whiten(X, Y, r, r);
  auto s = at::linalg_svdvals(w.t);
  if (k > 0) s = s.slice(0, 0, k);
  return s.to(X.scalar_type());
}

}  // namespace braid::objectives
