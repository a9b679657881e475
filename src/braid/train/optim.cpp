#include "braid/train/optim.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/sgd.h>
#include <torch/version.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>
#include <type_traits>

#include "braid/core/cpu_features.h"
#include "braid/core/error.h"
#include "braid/train/trainer.h"

#if defined(__x86_64__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's avx512fintrin.h (_mm512_undefined_*)
#include <immintrin.h>
#endif

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

// One AdamW update of n float parameters in one pass (torch::optim::AdamW's formulas and order of operations:
// p·(1 − lr·wd); m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g·g; p += −lr/bc1 · m / (√v / √bc2 + eps)), instead of
// ~10 ATen kernels per tensor that each read and write whole tensors.
struct AdamWCoef {
  float decay, beta1, one_minus_beta1, beta2, one_minus_beta2, sqrt_bc2, eps, neg_step;
};
void adamw_scalar(float* p, const float* g, float* m, float* v, int64_t i0, int64_t i1, const AdamWCoef& c) {
  for (int64_t i = i0; i < i1; ++i) {
    const float pi = p[i] * c.decay;
    const float mi = m[i] * c.beta1 + c.one_minus_beta1 * g[i];
    const float vi = v[i] * c.beta2 + c.one_minus_beta2 * g[i] * g[i];
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + c.neg_step * (mi / (std::sqrt(vi) / c.sqrt_bc2 + c.eps));
  }
}
#if defined(__x86_64__)
__attribute__((target("avx512f"))) void adamw_avx512(float* p, const float* g, float* m, float* v, int64_t i0,
                                                     int64_t i1, const AdamWCoef& c) {
  const __m512 decay = _mm512_set1_ps(c.decay), b1 = _mm512_set1_ps(c.beta1), ob1 = _mm512_set1_ps(c.one_minus_beta1);
  const __m512 b2 = _mm512_set1_ps(c.beta2), ob2 = _mm512_set1_ps(c.one_minus_beta2);
  const __m512 sb2 = _mm512_set1_ps(c.sqrt_bc2), eps = _mm512_set1_ps(c.eps), ns = _mm512_set1_ps(c.neg_step);
  int64_t i = i0;
  for (; i + 16 <= i1; i += 16) {
    const __m512 gi = _mm512_loadu_ps(g + i);
    const __m512 mi = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(m + i), b1), _mm512_mul_ps(ob1, gi));
    const __m512 vi = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(v + i), b2), _mm512_mul_ps(_mm512_mul_ps(ob2, gi), gi));
    const __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), sb2), eps);
    const __m512 pi = _mm512_mul_ps(_mm512_loadu_ps(p + i), decay);
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    _mm512_storeu_ps(p + i, _mm512_add_ps(pi, _mm512_mul_ps(ns, _mm512_div_ps(mi, den))));
  }
  adamw_scalar(p, g, m, v, i, i1, c);
}
#endif

// The CPU "fused" step of a bucket: one pass per tensor (float32, contiguous, on the CPU; checked by the caller).
void adamw_cpu_fused(std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                     std::vector<torch::Tensor>& avg, std::vector<torch::Tensor>& avg_sq, const AdamWCoef& c,
                     bool avx512) {
  for (size_t k = 0; k < params.size(); ++k) {
    float* p = params[k].data_ptr<float>();
    const float* g = grads[k].data_ptr<float>();
    float* m = avg[k].data_ptr<float>();
    float* v = avg_sq[k].data_ptr<float>();
    at::parallel_for(0, params[k].numel(), 1 << 15, [&](int64_t i0, int64_t i1) {
#if defined(__x86_64__)
      if (avx512) return adamw_avx512(p, g, m, v, i0, i1, c);
#endif
      adamw_scalar(p, g, m, v, i0, i1, c);
    });
  }
}

bool cpu_fusable(const torch::Tensor& p, const torch::Tensor& g, const torch::Tensor& m, const torch::Tensor& v) {
  auto ok = [](const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(); };
  return ok(p) && ok(g) && ok(m) && ok(v) && g.sizes() == p.sizes();
}

}  // namespace

void MultiTensorAdamW::set_cpu_avx512(bool on) { cpu_avx512_ = on; }

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
  // auto: one fused pass per tensor, on CUDA (_fused_adamw_) and on the CPU (adamw_cpu_fused: one loop over
  // each tensor's elements instead of ~10 ATen kernels; AVX-512 where the CPU has it)
  const bool loop = impl_ == "loop";
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
      const double bc1 = 1 - std::pow(beta1, static_cast<double>(step));
      const double bc2 = 1 - std::pow(beta2, static_cast<double>(step));
      if (!fused && impl_ != "foreach" && b.params[0].is_cpu()) {
        bool ok = true;
        for (size_t i = 0; i < b.params.size() && ok; ++i) ok = cpu_fusable(b.params[i], b.grads[i], b.avg[i], b.avg_sq[i]);
        if (ok) {
          const AdamWCoef c{static_cast<float>(1 - lr * wd), static_cast<float>(beta1), static_cast<float>(1 - beta1),
                            static_cast<float>(beta2), static_cast<float>(1 - beta2), static_cast<float>(std::sqrt(bc2)),
                            static_cast<float>(eps), static_cast<float>(-lr / bc1)};
          adamw_cpu_fused(b.params, b.grads, b.avg, b.avg_sq, c, cpu_avx512_ && detected_cpu_features().avx512f);
          used_ = "fused";
          fused = true;
        }
      }
      if (!fused) {
        BRAID_INPUT_CHECK(impl_ != "fused",
                          "train.adamw: fused needs float32 contiguous CPU parameters, or CUDA ones and LibTorch >= 2.1");
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
