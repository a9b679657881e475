#include "braid/train/optim.h"

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/sgd.h>
#include <torch/version.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>
#include <type_traits>

#include "braid/core/error.h"
#include "braid/train/trainer.h"

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define BRAID_HAVE_FUSED_ADAMW 1  // at::_fused_adamw_ on CUDA, _foreach_mul_ with a tensor factor
#endif

namespace braid::train {

namespace {

// The key torch::optim keeps a parameter's state under: the TensorImpl's address, as a string
// on LibTorch 1.x and as the pointer itself on 2.x.
using StateMap = std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>;
template <class Key>
Key key_of(const torch::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream os;  // c10::guts::to_string's format
    os << p.unsafeGetTensorImpl();
    return os.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

std::vector<torch::Tensor> defined_grads(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> g;
  for (const auto& p : params)
    if (p.grad().defined()) g.push_back(p.grad());
  return g;
}

}  // namespace

MultiTensorAdamW::MultiTensorAdamW(std::vector<torch::Tensor> params, torch::optim::AdamWOptions o, std::string impl)
    : torch::optim::AdamW(std::move(params), o), impl_(std::move(impl)) {
  BRAID_INPUT_CHECK(impl_ == "auto" || impl_ == "loop" || impl_ == "foreach" || impl_ == "fused",
                    "recipe key 'train.adamw': expected auto, loop, foreach or fused, got '{}'", impl_);
}

torch::Tensor MultiTensorAdamW::step(LossClosure closure) {
  torch::NoGradGuard ng;
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode on(true);
    loss = closure();
  }
  // auto: one fused kernel on CUDA; on the CPU the per-tensor loop, which measured faster than the
  // foreach kernels there (the small CLIP: 2.006 vs 1.913 steps/s, 1 thread: those allocate every
  // intermediate for all tensors at once instead of reusing cache-sized ones)
  bool cuda = false;
  for (auto& group : param_groups())
    for (auto& p : group.params()) cuda = cuda || p.is_cuda();
  const bool loop = impl_ == "loop" || (impl_ == "auto" && !cuda);
  for (auto& group : param_groups()) {
    auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
    if (loop || o.amsgrad()) {
      used_ = "loop";
      torch::optim::AdamW::step(nullptr);
      return loss;
    }
  }
  for (auto& group : param_groups()) {
    auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
    const double lr = o.lr(), wd = o.weight_decay(), eps = o.eps();
    const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
    // Parameters with a gradient, bucketed by step count (they differ only when some
    // parameter went without a gradient for a while) and by device.
    struct Bucket {
      std::vector<torch::Tensor> params, grads, avg, avg_sq;
    };
    std::map<std::pair<int64_t, std::string>, Bucket> buckets;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto key = key_of<StateMap::key_type>(p);
      auto it = state().find(key);
      if (it == state().end()) {
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(0);
        s->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
        s->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
        it = state().emplace(key, std::move(s)).first;
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
      s.step(s.step() + 1);
      auto& b = buckets[{s.step(), p.device().str()}];
      b.params.push_back(p);
      b.grads.push_back(p.grad());
      b.avg.push_back(s.exp_avg());
      b.avg_sq.push_back(s.exp_avg_sq());
    }
    for (auto& [k, b] : buckets) {
      const int64_t step = k.first;
      bool fused = false;
#ifdef BRAID_HAVE_FUSED_ADAMW
      fused = impl_ != "foreach" && b.params[0].is_cuda() && b.params[0].scalar_type() == at::kFloat;
      if (fused) {
        // the kernel reads each parameter's step count from a device tensor: one fill, n views
        auto steps = torch::full({static_cast<int64_t>(b.params.size())}, static_cast<double>(step),
                                 torch::TensorOptions().dtype(at::kFloat).device(b.params[0].device()))
                         .unbind(0);
        at::_fused_adamw_(b.params, b.grads, b.avg, b.avg_sq, {}, steps, lr, beta1, beta2, wd, eps,
                          /*amsgrad=*/false, /*maximize=*/false);
        used_ = "fused";
      }
#endif
      if (!fused) {
        BRAID_INPUT_CHECK(impl_ != "fused" || b.params[0].is_cuda(),
                          "train.adamw: fused needs CUDA parameters and LibTorch >= 2.1");
        const double bc1 = 1 - std::pow(beta1, static_cast<double>(step));
        const double bc2 = 1 - std::pow(beta2, static_cast<double>(step));
        if (wd != 0) at::_foreach_mul_(b.params, 1 - lr * wd);
        at::_foreach_mul_(b.avg, beta1);
        at::_foreach_add_(b.avg, b.grads, 1 - beta1);
        at::_foreach_mul_(b.avg_sq, beta2);
        at::_foreach_addcmul_(b.avg_sq, b.grads, b.grads, 1 - beta2);
        auto denom = at::_foreach_sqrt(b.avg_sq);
        at::_foreach_div_(denom, std::sqrt(bc2));
        at::_foreach_add_(denom, eps);
        at::_foreach_addcdiv_(b.params, b.avg, denom, -lr / bc1);
        used_ = "foreach";
      }
    }
  }
  return loss;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainOptions& to, std::vector<torch::Tensor> params) {
  if (to.optimizer == "sgd")
    return std::make_unique<torch::optim::SGD>(
        std::move(params), torch::optim::SGDOptions(to.lr).momentum(to.momentum).weight_decay(to.weight_decay));
  return std::make_unique<MultiTensorAdamW>(std::move(params),
                                            torch::optim::AdamWOptions(to.lr).weight_decay(to.weight_decay), to.adamw);
}

void zero_grads(const std::vector<torch::Tensor>& params) {
  auto g = defined_grads(params);
  if (!g.empty()) at::_foreach_zero_(g);
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  auto g = defined_grads(params);
  if (g.empty()) return torch::zeros({});
  if (!g[0].is_cuda())  // per tensor: faster on the CPU
    return torch::scalar_tensor(torch::nn::utils::clip_grad_norm_(params, max_norm), torch::kDouble);
  torch::NoGradGuard ng;
  auto total = at::stack(at::_foreach_norm(g, 2)).norm(2);
  auto coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
#ifdef BRAID_HAVE_FUSED_ADAMW
  at::_foreach_mul_(g, coef);
#else
  at::_foreach_mul_(g, std::vector<torch::Tensor>(g.size(), coef));
#endif
  return total;
}

}  // namespace braid::train
