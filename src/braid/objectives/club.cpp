// braid/objectives/club.cpp — CLUB mutual-information upper bound and its inner optimizer.
#include "braid/objectives/club.h"

#include <torch/torch.h>

namespace braid::objectives {

ClubImpl::ClubImpl(ClubOptions o) : options(o) {
  mu1_ = register_module("mu1", torch::nn::Linear(o.x_dim, o.hidden));
  mu2_ = register_module("mu2", torch::nn::Linear(o.hidden, o.y_dim));
  lv1_ = register_module("logvar1", torch::nn::Linear(o.x_dim, o.hidden));
  lv2_ = register_module("logvar2", torch::nn::Linear(o.hidden, o.y_dim));
}

ClubImpl::~ClubImpl() = default;

namespace {
torch::Tensor lin(torch::nn::Linear l, const torch::Tensor& x, bool detach) {
  return detach ? torch::nn::functional::linear(x, l->weight.detach(), l->bias.detach()) : l->forward(x);
}
}  // namespace

std::pair<torch::Tensor, torch::Tensor> ClubImpl::gaussian(const torch::Tensor& x, bool d) const {
  auto mu = lin(mu2_, torch::relu(lin(mu1_, x, d)), d);
  auto lv = torch::tanh(lin(lv2_, torch::relu(lin(lv1_, x, d)), d));
  return {mu, lv};
}

torch::Tensor ClubImpl::loglik(const torch::Tensor& x, const torch::Tensor& y) const {
  auto [mu, lv] = gaussian(x, false);
  return (-(mu - y).pow(2) / lv.exp() - lv).sum(1).mean();
}

torch::Tensor ClubImpl::estimate(const torch::Tensor& x, const torch::Tensor& y, bool detach_params) const {
  auto [mu, lv] = gaussian(x, detach_params);
  auto inv = 0.5 / lv.exp();
  auto pos = -(mu - y).pow(2) * inv;
  auto ybar = y.mean(0, true);
  auto yvar = (y - ybar).pow(2).mean(0, true);
  auto neg = -((mu - ybar).pow(2) + yvar) * inv;
  return (pos.sum(1) - neg.sum(1)).mean();
}

double ClubImpl::fit(const torch::Tensor& x_in, const torch::Tensor& y_in) {
  if (!opt_) opt_ = std::make_unique<torch::optim::Adam>(parameters(), torch::optim::AdamOptions(options.lr));
  auto x = x_in.detach(), y = y_in.detach();
  double last = 0;
  for (int64_t i = 0; i < options.steps; ++i) {
    opt_->zero_grad();
    auto l = -loglik(x, y);
    l.backward();
    opt_->step();
    last = l.item<double>();
  }
  for (auto& p : parameters()) p.mutable_grad() = torch::Tensor();  // leave no gradient for the outer optimizer
  return last;
}

}  // namespace braid::objectives
