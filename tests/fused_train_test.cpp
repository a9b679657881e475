// The training kernels of nn/fused.h (issue 19: gelu, dropout_add, attention_qkv) against the unfused ATen ops they replace, on
// the AVX-512 path (where the CPU has it) and the scalar path: forward values and gradients for float and bf16
// inputs with tails of every length, the dropout mask's rate, repeatability and agreement between the two paths,
// TransformerBlock with the kernels on vs off (float and under bf16 autocast), and the refusals. Speed:
// bench/engine.sh PARTS=precision.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "braid/core/precision.h"
#include "braid/nn/blocks.h"
#include "braid/nn/fused.h"
#include "test_util.h"

using namespace braid;
using braid::test::max_diff;

namespace {

// Forces the scalar path (or not) for a test and puts the default back.
struct Scalar {
  explicit Scalar(bool on) { nn::set_fused_train_scalar(on); }
  ~Scalar() { nn::set_fused_train_scalar(false); }
};

// Switches the training kernels for a test and puts the old setting back.
struct TrainKernels {
  bool old = nn::fused_train_enabled();
  explicit TrainKernels(bool on) { nn::set_fused_train(on); }
  ~TrainKernels() { nn::set_fused_train(old); }
};

// The largest |a - b| / (|b| + floor): relative error with an absolute floor near zero.
double max_rel(const torch::Tensor& a, const torch::Tensor& b, double floor) {
  auto bd = b.to(torch::kDouble);
  return ((a.to(torch::kDouble) - bd).abs() / (bd.abs() + floor)).max().item<double>();
}

std::string path_name(bool scalar) { return scalar ? "scalar" : "avx512-or-scalar"; }

}  // namespace

TEST(FusedTrain, GeluMatchesAtenForwardAndBackward) {
  for (bool scalar : {false, true}) {
    Scalar s(scalar);
    for (auto dt : {torch::kFloat, torch::kBFloat16}) {
      for (int64_t n : {1, 15, 16, 17, 33, 1000, 40000}) {  // every tail length class, and several pieces
        torch::manual_seed(n);
        auto z0 = (torch::randn({n}) * 3).to(dt);
        auto z1 = z0.clone().set_requires_grad(true), z2 = z0.clone().set_requires_grad(true);
        // the reference in float, rounded once: ATen 1.13's own bf16 GELU is off by up to 100 % in the tails on
        // AVX2 hosts (gelu(-3.27) = -0.0 instead of -1.8e-3), not a reference for a kernel that computes in float
        auto mine = nn::gelu(z1), ref = torch::gelu(z2.to(torch::kFloat)).to(dt);
        ASSERT_EQ(mine.scalar_type(), dt);
        auto g = torch::randn({n}).to(dt);
        mine.backward(g);
        ref.backward(g);
        const std::string what = path_name(scalar) + " " + std::string(c10::toString(dt)) + " n=" + std::to_string(n);
        if (dt == torch::kFloat) {
          EXPECT_LT(max_diff(mine, ref), 2e-6) << what;
          EXPECT_LT(max_diff(z1.grad(), z2.grad()), 5e-6) << what;
        } else {  // one bf16 rounding step apart at most (2^-8 relative), both computed in float
          EXPECT_LT(max_rel(mine, ref, 1e-3), 8e-3) << what;
          EXPECT_LT(max_rel(z1.grad(), z2.grad(), 1e-3), 8e-3) << what;
        }
      }
    }
  }
  // 2-D, non-contiguous input; no grad: the plain pass
  auto z = torch::randn({64, 48}).t();
  torch::NoGradGuard ng;
  EXPECT_LT(max_diff(nn::gelu(z), torch::gelu(z)), 2e-6);
}

TEST(FusedTrain, DropoutAddWithoutDropoutIsTheResidualAdd) {
  for (bool scalar : {false, true}) {
    Scalar s(scalar);
    for (auto dt : {torch::kFloat, torch::kBFloat16}) {
      auto x = torch::randn({7, 37}).set_requires_grad(true);
      auto o = torch::randn({7, 37}).to(dt).set_requires_grad(true);
      auto h = nn::dropout_add(x, o, 0.0);
      ASSERT_EQ(h.scalar_type(), torch::kFloat);
      EXPECT_EQ(max_diff(h, x.detach() + o.detach().to(torch::kFloat)), 0.0) << path_name(scalar);
      auto g = torch::randn({7, 37});
      h.backward(g);
      EXPECT_EQ(max_diff(x.grad(), g), 0.0);
      ASSERT_EQ(o.grad().scalar_type(), dt);
      EXPECT_EQ(max_diff(o.grad(), g.to(dt)), 0.0) << path_name(scalar);  // the same rounding as ATen's cast
    }
  }
}

TEST(FusedTrain, DropoutAddMasksScalesAndRepeats) {
  const double p = 0.3;
  const int64_t n = 100003;  // a tail of 3 past the last full 16
  torch::Tensor first_h;
  for (bool scalar : {false, true}) {
    Scalar s(scalar);
    for (auto dt : {torch::kFloat, torch::kBFloat16}) {
      torch::manual_seed(1);
      auto x = torch::randn({n});
      auto o = (torch::rand({n}) + 0.5).to(dt).set_requires_grad(true);  // no zeros: a dropped element shows
      torch::manual_seed(7);
      auto h = nn::dropout_add(x, o, p);
      auto d = h.detach() - x;
      auto kept = d.ne(0);
      const double rate = kept.to(torch::kDouble).mean().item<double>();
      EXPECT_NEAR(rate, 1 - p, 0.005) << path_name(scalar);
      // kept elements: x + o / (1 - p)
      auto want = (o.detach().to(torch::kFloat) / (1 - p)).masked_select(kept);
      EXPECT_LT(max_rel(d.masked_select(kept), want, 1e-3), 1e-5) << path_name(scalar);
      // backward: the same mask, the same scale, cast to o's dtype
      auto g = torch::randn({n});
      h.backward(g);
      auto gwant = torch::where(kept, g / (1 - p), torch::zeros_like(g)).to(dt);
      EXPECT_LT(max_rel(o.grad(), gwant, 1e-3), 1e-5) << path_name(scalar);
      // repeatable under manual_seed, bit for bit across the two paths; the next call draws a new mask
      torch::manual_seed(7);
      auto again = nn::dropout_add(x, o.detach(), p);
      EXPECT_TRUE(again.equal(h.detach()));
      auto next = nn::dropout_add(x, o.detach(), p);
      EXPECT_FALSE(next.equal(h.detach()));
      if (dt == torch::kFloat) {
        if (!first_h.defined()) first_h = h.detach();
        else EXPECT_TRUE(first_h.equal(h.detach())) << "AVX-512 and scalar masks differ";
      }
    }
  }
}

TEST(FusedTrain, AttentionMatchesUnfusedOps) {
  struct Case {
    int64_t B, T, H, d;
    bool pad;
  };
  for (bool scalar : {false, true}) {
    Scalar s(scalar);
    for (const Case& c : {Case{3, 17, 4, 64, false}, Case{4, 24, 4, 64, true}, Case{2, 5, 2, 8, true}, Case{2, 33, 1, 16, true}}) {
      for (auto dt : {torch::kFloat, torch::kBFloat16}) {
        torch::manual_seed(c.T);
        auto qkv0 = torch::randn({c.B, c.T, 3 * c.H * c.d}).to(dt);
        torch::Tensor pad;
        if (c.pad) {  // row 1 keeps 3 keys; the last row has every key padded (its queries get zeros)
          pad = torch::zeros({c.B, c.T}, torch::kBool);
          pad.index_put_({1, torch::indexing::Slice(3)}, true);
          pad.index_put_({c.B - 1}, true);
        }
        auto mine_in = qkv0.clone().set_requires_grad(true);
        auto ref_in = qkv0.to(torch::kFloat).set_requires_grad(true);  // the reference in float
        auto mine = nn::attention_qkv(mine_in, c.H, pad);
        auto q = ref_in.view({c.B, c.T, 3, c.H, c.d}).permute({2, 0, 3, 1, 4});
        auto ref = nn::attention(q[0], q[1], q[2], pad).transpose(1, 2).reshape({c.B, c.T, c.H * c.d});
        ASSERT_EQ(mine.scalar_type(), dt);
        auto g = torch::randn({c.B, c.T, c.H * c.d});
        mine.backward(g.to(dt));
        ref.backward(g);
        const double tol = dt == torch::kFloat ? 2e-5 : 3e-2;
        const std::string what = path_name(scalar) + " " + std::string(c10::toString(dt)) + " T=" + std::to_string(c.T);
        EXPECT_LT(max_diff(mine, ref), tol) << what;
        EXPECT_LT(max_diff(mine_in.grad(), ref_in.grad()), tol * 4) << what;
        if (c.pad) EXPECT_EQ(mine[c.B - 1].abs().max().item<double>(), 0.0) << what;
      }
    }
  }
  EXPECT_THROW(nn::attention_qkv(torch::randn({2, 3, 10}), 4), c10::Error);  // 10 is not 3·H·d
  EXPECT_THROW(nn::attention_qkv(torch::randn({2, 3, 24}), 4, torch::zeros({2, 4}, torch::kBool)), c10::Error);
}

TEST(FusedTrain, TransformerBlockMatchesUnfusedOps) {
  if (!nn::fused_train_applies(torch::zeros({1}))) GTEST_SKIP() << "no AVX-512 on this CPU: the block keeps ATen's ops";
  for (double dropout : {0.0, 0.2}) {
    torch::manual_seed(3);
    nn::TransformerBlock block(nn::TransformerBlockOptions{64, 4, 4, dropout});
    auto x0 = torch::randn({3, 9, 64});
    auto pad = torch::zeros({3, 9}, torch::kBool);
    pad.index_put_({1, torch::indexing::Slice(6)}, true);
    for (bool bf16 : {false, true}) {
      // dropout > 0: eval mode (no dropout), where the two paths must agree
      if (dropout > 0) block->eval();
      else block->train();
      torch::Tensor y[2], gx[2];
      std::vector<torch::Tensor> gw[2];
      for (int on = 0; on < 2; ++on) {
        TrainKernels k(on == 1);
        block->zero_grad();
        auto x = x0.clone().set_requires_grad(true);
        {
          AutocastScope ac(c10::DeviceType::CPU, bf16 ? Precision::BF16 : Precision::FP32);
          y[on] = block->forward(x, pad);
        }
        (y[on].to(torch::kFloat) * torch::linspace(-1, 1, 64)).sum().backward();
        gx[on] = x.grad();
        for (auto& p : block->parameters()) gw[on].push_back(p.grad().clone());
      }
      const double tol = bf16 ? 3e-2 : 2e-5;
      const std::string what = std::string(bf16 ? "bf16" : "float") + " dropout " + std::to_string(dropout);
      EXPECT_LT(max_diff(y[1], y[0]), tol) << what;
      EXPECT_LT(max_diff(gx[1], gx[0]), tol) << what;
      for (size_t i = 0; i < gw[0].size(); ++i) EXPECT_LT(max_diff(gw[1][i], gw[0][i]), tol * 10) << what << " param " << i;
    }
  }
  // training with dropout: the fused block drops (outputs differ between two calls) and stays finite
  torch::manual_seed(4);
  nn::TransformerBlock block(nn::TransformerBlockOptions{32, 2, 4, 0.5});
  block->train();
  auto x = torch::randn({2, 5, 32});
  auto a = block->forward(x), b = block->forward(x);
  EXPECT_FALSE(a.equal(b));
  EXPECT_TRUE(torch::isfinite(a).all().item<bool>());
}

TEST(FusedTrain, RefusesWhatItCannotRun) {
  EXPECT_THROW(nn::gelu(torch::randn({4}, torch::kDouble)), c10::Error);
  EXPECT_THROW(nn::dropout_add(torch::randn({4}), torch::randn({5}), 0.1), c10::Error);
  EXPECT_THROW(nn::dropout_add(torch::randn({4}), torch::randn({4}), 1.0), c10::Error);
  EXPECT_THROW(nn::dropout_add(torch::randn({4}).to(torch::kBFloat16), torch::randn({4}), 0.1), c10::Error);
  TrainKernels off(false);
  EXPECT_FALSE(nn::fused_train_applies(torch::zeros({1})));
}
