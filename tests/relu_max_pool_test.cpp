// nn/pool.h's relu + 2x2 max pool (issue 19) against the ATen composition it replaces in ConvStack,
// torch::max_pool2d(torch::relu(x), 2, 2, 0, 1, ceil): outputs and input gradients must be equal bit for bit
// (float, double and bfloat16; NCHW and channels-last; even and odd sizes; floor and ceil mode; inputs full of
// ties, zeros, negative windows and a NaN), on one thread and on several. Also the ConvStack forward with the kernel vs the same
// blocks written out with ATen ops, and the refusals. Speed: bench/engine.sh PARTS=precision.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <tuple>
#include <vector>

#include "braid/nn/conv.h"
#include "braid/nn/pool.h"

using namespace braid;

namespace {

// Values with many exact ties (a few integer levels, half of them <= 0) so that the arg-max order matters.
torch::Tensor tied_input(std::vector<int64_t> shape, torch::ScalarType t) {
  return torch::randint(-3, 4, shape, torch::kInt64).to(torch::kFloat).mul(0.5).to(t);
}

// Output and input gradient of `f` for the upstream gradient `g`.
std::pair<torch::Tensor, torch::Tensor> run(const std::function<torch::Tensor(const torch::Tensor&)>& f,
                                            const torch::Tensor& x0, const torch::Tensor& g) {
  auto x = x0.detach().clone().set_requires_grad(true);
  auto y = f(x);
  y.backward(g);
  return {y.detach(), x.grad()};
}

void expect_same(const torch::Tensor& x, bool ceil, const char* what) {
  auto ref = [ceil](const torch::Tensor& t) { return torch::max_pool2d(torch::relu(t), 2, 2, 0, 1, ceil); };
  auto ours = [ceil](const torch::Tensor& t) { return nn::relu_max_pool2x2(t, ceil); };
  auto shape = ref(x).sizes().vec();
  auto g = torch::randn(shape).to(x.scalar_type());
  auto [yr, gr] = run(ref, x, g);
  auto [yo, go] = run(ours, x, g);
  ASSERT_EQ(yo.sizes(), yr.sizes()) << what;
  EXPECT_EQ(yo.scalar_type(), x.scalar_type()) << what;
  EXPECT_TRUE(yo.is_contiguous(x.is_contiguous() ? torch::MemoryFormat::Contiguous : torch::MemoryFormat::ChannelsLast))
      << what << " (layout kept)";
  EXPECT_TRUE(torch::equal(yo.isnan(), yr.isnan())) << what;
  EXPECT_TRUE(torch::equal(yo.nan_to_num(), yr.nan_to_num())) << what << " (values)";
  ASSERT_EQ(go.sizes(), x.sizes()) << what;
  EXPECT_TRUE(torch::equal(go, gr)) << what << " (gradient): max diff "
                                    << (go.to(torch::kDouble) - gr.to(torch::kDouble)).abs().max().item<double>();
}

}  // namespace

TEST(ReluMaxPool, EqualsAtenReluThenMaxPool) {
  torch::manual_seed(0);
  const int old_threads = at::get_num_threads();
  for (int threads : {1, 3}) {  // 3: planes split over the intra-op pool
    at::set_num_threads(threads);
    for (auto t : {torch::kFloat, torch::kDouble, torch::kBFloat16}) {
      for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{2, 2}, {28, 28}, {7, 7}, {32, 63}, {3, 8}, {5, 2}}) {
        for (bool ceil : {false, true}) {
          SCOPED_TRACE(testing::Message() << "threads " << threads << " dtype " << t << " " << h << "x" << w
                                          << (ceil ? " ceil" : " floor"));
          expect_same(tied_input({4, 3, h, w}, t), ceil, "tied");
          expect_same(torch::randn({2, 5, h, w}).to(t), ceil, "randn");
          expect_same(tied_input({4, 3, h, w}, t).contiguous(torch::MemoryFormat::ChannelsLast), ceil, "tied, channels-last");
        }
      }
    }
  }
  at::set_num_threads(old_threads);
}

TEST(ReluMaxPool, NaNAndAllNegativeWindows) {
  auto x = -torch::rand({1, 2, 6, 5}) - 0.1;        // every window <= 0: output 0, no gradient
  x.index_put_({0, 1, 2, 3}, std::nan(""));          // one NaN: it wins its window and keeps its gradient
  x.index_put_({0, 1, 0, 0}, 2.0);
  for (bool ceil : {false, true}) {
    expect_same(x, ceil, "nan");
    expect_same(x.contiguous(torch::MemoryFormat::ChannelsLast), ceil, "nan, channels-last");
  }
}

TEST(ReluMaxPool, ConvStackMatchesAtenBlocks) {
  torch::manual_seed(1);
  auto owner = std::make_shared<torch::nn::Module>();
  nn::ConvStack stack(*owner, 1, {4, 6});
  owner->train();
  auto modules = owner->named_modules("", /*include_self=*/false);
  auto x = torch::randn({3, 1, 9, 13});
  auto len = torch::tensor({13, 7, 2}, torch::kInt64);
  // the same two blocks with ATen's relu and max_pool2d, on the same modules
  auto reference = [&](const torch::Tensor& in) {
    auto h = in;
    for (const auto& name : {"0", "1"}) {
      auto conv = modules[std::string("convs.") + name]->as<torch::nn::Conv2d>();
      auto bn = modules[std::string("norms.") + name]->as<torch::nn::BatchNorm2d>();
      h = torch::max_pool2d(torch::relu(bn->forward(conv->forward(h))), 2, 2, 0, 1, /*ceil=*/true);
    }
    return h;
  };
  auto xr = x.clone().set_requires_grad(true), xo = x.clone().set_requires_grad(true);
  auto yr = reference(xr);
  auto l = len.clone();
  auto yo = stack.forward(xo, /*ceil=*/true, &l);
  EXPECT_TRUE(torch::equal(yo, yr));
  EXPECT_TRUE(torch::equal(l, torch::tensor({4, 2, 1}, torch::kInt64)));
  auto g = torch::randn_like(yr);
  yr.backward(g);
  yo.backward(g);
  EXPECT_TRUE(torch::allclose(xo.grad(), xr.grad(), 1e-6, 1e-7));
}

TEST(ReluMaxPool, AppliesOnlyToContiguousCpuFloatingPlanes) {
  EXPECT_TRUE(nn::relu_max_pool2x2_applies(torch::zeros({1, 2, 4, 4})));
  EXPECT_TRUE(nn::relu_max_pool2x2_applies(torch::zeros({1, 2, 2, 3}, torch::kBFloat16)));
  EXPECT_FALSE(nn::relu_max_pool2x2_applies(torch::zeros({1, 2, 4, 4}, torch::kInt64)));
  EXPECT_FALSE(nn::relu_max_pool2x2_applies(torch::zeros({1, 2, 1, 4})));
  EXPECT_FALSE(nn::relu_max_pool2x2_applies(torch::zeros({2, 4, 4})));
  EXPECT_TRUE(nn::relu_max_pool2x2_applies(torch::zeros({1, 2, 4, 4}).contiguous(torch::MemoryFormat::ChannelsLast)));
  EXPECT_FALSE(nn::relu_max_pool2x2_applies(torch::zeros({1, 4, 4, 2}).permute({0, 3, 2, 1})));  // neither layout
  EXPECT_THROW(nn::relu_max_pool2x2(torch::zeros({1, 2, 4, 4}, torch::kInt64), false), c10::Error);
}

// ConvStack in the channels-last layout (recipe key channels_last; on by default under CPU bf16) computes the
// same function as in NCHW, also from one input channel (audio), where it must really run channels-last.
TEST(ReluMaxPool, ConvStackChannelsLastMatchesNchw) {
  for (int64_t in : {1, 3}) {
    torch::manual_seed(2);
    auto a = std::make_shared<torch::nn::Module>(), b = std::make_shared<torch::nn::Module>();
    nn::ConvStack nchw(*a, in, {4, 6}), cl(*b, in, {4, 6}, /*channels_last=*/true);
    torch::NoGradGuard ng;
    auto pa = a->parameters(), pb = b->parameters();
    for (size_t i = 0; i < pa.size(); ++i) pb[i].copy_(pa[i]);
    auto x = torch::randn({3, in, 10, 13});
    auto ya = nchw.forward(x, /*ceil=*/true), yb = cl.forward(x, /*ceil=*/true);
    EXPECT_TRUE(yb.is_contiguous(torch::MemoryFormat::ChannelsLast)) << "in " << in;
    EXPECT_TRUE(torch::allclose(ya, yb, 1e-5, 1e-6)) << "in " << in << ": max diff " << (ya - yb).abs().max().item<double>();
  }
}
