// braid/objectives/cca.h — canonical correlation analysis: closed-form linear CCA and the deep CCA loss.
//
// X [n, dx], Y [n, dy], rows paired. C_xx = X̃ᵀX̃/(n−1) + r_x I (X̃ centred), C_yy likewise,
// C_xy = X̃ᵀỸ/(n−1); T = C_xx^{−1/2} C_xy C_yy^{−1/2} = U S Vᵀ. The canonical correlations are
// the top singular values of T. Computed in float64 internally; results come back in X's dtype.
// Shape mismatches (rows differ, not 2-D, k too large, n < 2) throw a one-line braid::InputError.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace braid::objectives {

// A fitted linear CCA. Project with (X − mean_x)·A and (Y − mean_y)·B ([n, k] each); column i of
// both projections has correlation ≈ corr[i] on the fitting data (exactly when the ridge is 0).
struct CCA {
  torch::Tensor mean_x, mean_y;  // [dx], [dy]
  torch::Tensor A, B;            // [dx, k] = C_xx^{−1/2} U_k, [dy, k] = C_yy^{−1/2} V_k
  torch::Tensor corr;            // [k], descending
};

// Closed-form fit; k ≤ min(dx, dy); no gradient.
CCA linear_cca(const torch::Tensor& X, const torch::Tensor& Y, int64_t k, double rx = 1e-4, double ry = 1e-4);

// Deep CCA objective on a batch of network outputs: −(sum of the top-k singular values of T),
// k = 0 → all of them (the trace norm). Differentiable w.r.t. X and Y (through eigh and svdvals).
// Needs n > max(dx, dy) for a meaningful (non-degenerate) value; n ≥ 2 is enforced.
torch::Tensor dcca_loss(const torch::Tensor& X, const torch::Tensor& Y, int64_t k = 0, double r = 1e-4);

// The top-k canonical correlations (k = 0 → min(dx, dy)) with ridge r on both sides; no gradient.
torch::Tensor canonical_correlations(const torch::Tensor& X, const torch::Tensor& Y, int64_t k = 0, double r = 1e-4);

}  // namespace braid::objectives
