// The multi-tensor AdamW, gradient clipping and zeroing (train/optim.h) against LibTorch's own
// torch::optim::AdamW and clip_grad_norm_, and the bf16 autocast scope (core/precision.h).
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <sstream>

#include "braid/core/error.h"
#include "braid/core/precision.h"
#include "braid/train/optim.h"
#include "test_util.h"

using namespace braid;
using braid::test::AllClose;

namespace {

// Three parameter tensors of assorted shapes; `seed` fixes their values.
std::vector<torch::Tensor> make_params(int seed, torch::Device dev = torch::kCPU) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> ps = {torch::randn({5, 7}), torch::randn({7}), torch::randn({2, 3, 4})};
  for (auto& p : ps) p = p.to(dev).set_requires_grad(true);
  return ps;
}

std::vector<torch::Tensor> clones(const std::vector<torch::Tensor>& ps) {
  std::vector<torch::Tensor> out;
  for (const auto& p : ps) out.push_back(p.detach().clone().set_requires_grad(true));
  return out;
}

// Gradients of step `t`: the same on both sides; parameter 1 gets none on steps 1 and 2.
void set_grads(std::vector<torch::Tensor>& ps, int t) {
  torch::manual_seed(100 + t);
  for (size_t i = 0; i < ps.size(); ++i) {
    auto g = (torch::randn(ps[i].sizes()) * (1.0 + t)).to(ps[i].device());
    if (i == 1 && (t == 1 || t == 2)) ps[i].mutable_grad() = torch::Tensor();
    else ps[i].mutable_grad() = g;
  }
}

void set_lr(torch::optim::Optimizer& o, double lr) {
  for (auto& g : o.param_groups()) g.options().set_lr(lr);
}

}  // namespace

// Six steps of MultiTensorAdamW(`impl`) against torch::optim::AdamW on `dev`, within `atol`.
static void expect_adamw_matches(const std::string& impl, torch::Device dev, double atol, bool cpu_avx512 = true) {
  auto a = make_params(1, dev), b = clones(a);
  auto opts = torch::optim::AdamWOptions(0.01).weight_decay(0.05);
  torch::optim::AdamW ref(a, opts);
  train::MultiTensorAdamW mine(b, opts, impl);
  mine.set_cpu_avx512(cpu_avx512);
  for (int t = 0; t < 6; ++t) {
    set_grads(a, t);
    set_grads(b, t);
    set_lr(ref, 0.01 * (t + 1) / 6.0);  // a schedule, as the trainer sets it
    set_lr(mine, 0.01 * (t + 1) / 6.0);
    ref.step();
    mine.step();
    EXPECT_EQ(mine.impl(), impl);
    for (size_t i = 0; i < a.size(); ++i)
      ASSERT_TRUE(AllClose(b[i].detach().cpu(), a[i].detach().cpu(), atol,
                           impl + " param " + std::to_string(i) + " step " + std::to_string(t)));
  }
}

TEST(Optim, ForeachAdamWMatchesTorchAdamW) { expect_adamw_matches("foreach", torch::kCPU, 1e-6); }

// The CPU fused step (one pass per tensor; AVX-512 where the CPU has it, and the scalar loop), also what "auto"
// picks on the CPU. Parameter 1 skips two steps, so the step counts differ between buckets.
TEST(Optim, CpuFusedAdamWMatchesTorchAdamW) {
  expect_adamw_matches("fused", torch::kCPU, 1e-6);
  expect_adamw_matches("fused", torch::kCPU, 1e-6, /*cpu_avx512=*/false);
  auto a = make_params(7);
  train::MultiTensorAdamW opt(a, torch::optim::AdamWOptions(0.01), "auto");
  set_grads(a, 0);
  opt.step();
  EXPECT_EQ(opt.impl(), "fused");
  // a double parameter cannot take the float pass: "auto" falls back to foreach, "fused" says why
  auto d = std::vector<torch::Tensor>{torch::randn({3}, torch::kDouble).set_requires_grad(true)};
  d[0].mutable_grad() = torch::ones({3}, torch::kDouble);
  train::MultiTensorAdamW fallback(d, torch::optim::AdamWOptions(0.01), "auto");
  fallback.step();
  EXPECT_EQ(fallback.impl(), "foreach");
  train::MultiTensorAdamW strict(d, torch::optim::AdamWOptions(0.01), "fused");
  EXPECT_THROW(strict.step(), InputError);
}

// Runs where the build and the machine have CUDA (the GPU machine, docs/gpu.md); skipped elsewhere.
TEST(Optim, CudaForeachAndFusedAdamWMatchTorchAdamW) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  expect_adamw_matches("foreach", torch::kCUDA, 1e-6);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  expect_adamw_matches("fused", torch::kCUDA, 1e-5);
#endif
  auto a = make_params(3, torch::kCUDA), b = clones(a);
  set_grads(a, 4);
  set_grads(b, 4);
  double want = torch::nn::utils::clip_grad_norm_(a, 0.5);
  EXPECT_NEAR(train::clip_grad_norm(b, 0.5).item<double>(), want, 1e-5 * want);
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_TRUE(AllClose(b[i].grad().cpu(), a[i].grad().cpu(), 1e-6, "cuda grad " + std::to_string(i)));
  torch::nn::Linear lin(8, 4);
  lin->to(torch::kCUDA);
  auto x = torch::randn({3, 8}, torch::kCUDA);
  {
    AutocastScope ac(c10::DeviceType::CUDA, Precision::BF16);
    EXPECT_EQ(lin(x).scalar_type(), torch::kBFloat16);
  }
  EXPECT_EQ(lin(x).scalar_type(), torch::kFloat);
}

TEST(Optim, AdamWCheckpointsInterchangeWithTorchAdamW) {
  // save from MultiTensorAdamW, load into torch::optim::AdamW (and back): same format
  auto a = make_params(2), b = clones(a);
  auto opts = torch::optim::AdamWOptions(0.005).weight_decay(0.01);
  train::MultiTensorAdamW first(a, opts, "foreach");
  for (int t = 0; t < 3; ++t) {
    set_grads(a, t);
    first.step();
  }
  std::stringstream buf;
  {
    torch::serialize::OutputArchive ar;
    first.save(ar);
    ar.save_to(buf);
  }
  for (size_t i = 0; i < a.size(); ++i) b[i].detach().copy_(a[i].detach());
  torch::optim::AdamW ref(b, opts);
  torch::serialize::InputArchive in;
  in.load_from(buf);
  ref.load(in);
  for (int t = 3; t < 6; ++t) {
    set_grads(a, t);
    set_grads(b, t);
    first.step();
    ref.step();
  }
  for (size_t i = 0; i < a.size(); ++i) ASSERT_TRUE(AllClose(a[i].detach(), b[i].detach(), 1e-6, "param " + std::to_string(i)));
}

TEST(Optim, ClipGradNormMatchesTorch) {
  for (double max_norm : {0.5, 1e6}) {  // clipping, and a bound far above the norm
    auto a = make_params(3), b = clones(a);
    set_grads(a, 4);
    set_grads(b, 4);
    double want = torch::nn::utils::clip_grad_norm_(a, max_norm);
    double got = train::clip_grad_norm(b, max_norm).item<double>();
    EXPECT_NEAR(got, want, 1e-5 * want);
    for (size_t i = 0; i < a.size(); ++i)
      ASSERT_TRUE(AllClose(b[i].grad(), a[i].grad(), 1e-6, "grad " + std::to_string(i)));
  }
  auto c = make_params(4);
  set_grads(c, 0);
  train::zero_grads(c);
  for (const auto& p : c) EXPECT_EQ(p.grad().abs().sum().item<double>(), 0.0);
  std::vector<torch::Tensor> none = make_params(5);
  EXPECT_EQ(train::clip_grad_norm(none, 1.0).item<double>(), 0.0);  // no gradients yet
}

TEST(Optim, BadAdamWImplementationIsAnInputError) {
  auto a = make_params(6);
  EXPECT_THROW(train::MultiTensorAdamW(a, torch::optim::AdamWOptions(0.1), "turbo"), InputError);
}

TEST(Precision, AutocastScopeRunsProductsInBf16AndRestores) {
  torch::nn::Linear lin(8, 4);
  auto x = torch::randn({3, 8});
  EXPECT_EQ(lin(x).scalar_type(), torch::kFloat);
  torch::Tensor loss;
  {
    AutocastScope outer(c10::DeviceType::CPU, Precision::BF16);
    EXPECT_EQ(lin(x).scalar_type(), torch::kBFloat16);
    {
      AutocastScope inner(c10::DeviceType::CPU, Precision::BF16);
      EXPECT_EQ(lin(x).scalar_type(), torch::kBFloat16);
    }
    EXPECT_EQ(lin(x).scalar_type(), torch::kBFloat16);  // the inner scope restored "on"
    loss = lin(x).pow(2).mean();
  }
  EXPECT_EQ(lin(x).scalar_type(), torch::kFloat);
  loss.backward();  // outside the scope, as the trainer does: fp32 gradients on fp32 weights
  EXPECT_EQ(lin->weight.grad().scalar_type(), torch::kFloat);
  EXPECT_TRUE(std::isfinite(lin->weight.grad().abs().sum().item<double>()));
  {
    AutocastScope off(c10::DeviceType::CPU, Precision::FP32);
    EXPECT_EQ(lin(x).scalar_type(), torch::kFloat);
  }
  EXPECT_EQ(parse_precision("bf16", "r.yaml"), Precision::BF16);
  braid::test::ExpectInputError([] { parse_precision("fp16", "r.yaml"); }, "r.yaml", "precision");
}
