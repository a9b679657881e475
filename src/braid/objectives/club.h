// braid/objectives/club.h — CLUB, the contrastive log-ratio upper bound of mutual information
// (Cheng et al. 2020), used by Uni-Code to make semantic and modality-specific features independent.
//
// q_θ(y|x) is a diagonal Gaussian with mean μ_θ(x) = Linear-ReLU-Linear and log-variance
// ℓ_θ(x) = Linear-ReLU-Linear-tanh. For pairs (x_i, y_i), i = 1..N:
//   estimate   Î = mean_i Σ_d [−(μ_id − y_id)² / (2e^ℓ_id)] − mean_i mean_j Σ_d [−(μ_id − y_jd)² / (2e^ℓ_id)]
//   loglik     L = mean_i Σ_d [−(μ_id − y_id)² / e^ℓ_id − ℓ_id]   (what θ maximizes)
// The mean over j is computed in closed form (mean_j (μ − y_j)² = (μ − ȳ)² + var(y)), O(N·D) not O(N²·D).
// Training alternates: `fit` takes `steps` Adam steps of θ on −L with x and y detached; then the encoders
// minimize `estimate(x, y, /*detach_params=*/true)`, which reads θ without making it a gradient target.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include <memory>

namespace torch::optim {
class Adam;
}

namespace braid::objectives {

struct ClubOptions {
  int64_t x_dim = 64, y_dim = 64;
  int64_t hidden = 64;
  int64_t steps = 5;      // inner θ steps per `fit`
  double lr = 1e-3;       // inner Adam learning rate
};

class ClubImpl : public torch::nn::Module {
 public:
  explicit ClubImpl(ClubOptions o);
  ~ClubImpl() override;
  ClubOptions options;

  // μ and ℓ of x [N, x_dim]; with detach_params the weights are read as constants.
  std::pair<torch::Tensor, torch::Tensor> gaussian(const torch::Tensor& x, bool detach_params = false) const;
  torch::Tensor loglik(const torch::Tensor& x, const torch::Tensor& y) const;
  torch::Tensor estimate(const torch::Tensor& x, const torch::Tensor& y, bool detach_params = true) const;
  // `options.steps` Adam steps maximizing loglik on (x, y) detached; returns the last −loglik. The
  // optimizer lives here (created on first use; not checkpointed — a resumed run restarts its moments).
  double fit(const torch::Tensor& x, const torch::Tensor& y);

 private:
  torch::nn::Linear mu1_{nullptr}, mu2_{nullptr}, lv1_{nullptr}, lv2_{nullptr};
  std::unique_ptr<torch::optim::Adam> opt_;
};
TORCH_MODULE(Club);

}  // namespace braid::objectives
