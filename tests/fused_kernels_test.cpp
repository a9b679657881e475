// The fused CPU kernels of nn/fused.h (issue 19) against the unfused ATen ops they replace: forward values and
// every gradient (float, several threads so that rows are split into chunks), a finite-difference gradient check
// in double (the C++ API has no torch.autograd.gradcheck: central differences of the fused op's own forward),
// the Transformer block with the switch on vs off, and the shape / dtype refusals. Speed is measured in
// bench/engine.sh PARTS=fused, not here.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "braid/nn/blocks.h"
#include "braid/nn/fused.h"
#include "test_util.h"

using namespace braid;
using braid::test::max_diff;

namespace {

// Sets the intra-op threads for a test and puts the old count back.
struct Threads {
  int old = at::get_num_threads();
  explicit Threads(int n) { at::set_num_threads(n); }
  ~Threads() { at::set_num_threads(old); }
};

// Switches the fused kernels for a test and puts the old setting back.
struct Fused {
  bool old = nn::fused_kernels();
  explicit Fused(bool on) { nn::set_fused_kernels(on); }
  ~Fused() { nn::set_fused_kernels(old); }
};

// Analytical vs central-difference gradient of sum(f(inputs) * probe) for every element of every input (double).
void gradcheck(const std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)>& f,
               std::vector<torch::Tensor> inputs, double eps = 1e-6, double tol = 1e-6) {
  for (auto& t : inputs) t = t.detach().clone().set_requires_grad(true);
  auto outs = f(inputs);
  std::vector<torch::Tensor> probes;
  torch::Tensor loss = torch::zeros({}, torch::kDouble);
  for (auto& o : outs) {
    probes.push_back(torch::randn_like(o));
    loss = loss + (o * probes.back()).sum();
  }
  auto grads = torch::autograd::grad({loss}, inputs);
  auto value = [&](const std::vector<torch::Tensor>& in) {
    torch::NoGradGuard ng;
    auto o = f(in);
    double s = 0;
    for (size_t k = 0; k < o.size(); ++k) s += (o[k] * probes[k]).sum().item<double>();
    return s;
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto flat = inputs[i].detach().clone().view(-1);
    for (int64_t e = 0; e < flat.numel(); ++e) {
      std::vector<torch::Tensor> in;
      for (auto& t : inputs) in.push_back(t.detach().clone());
      auto v = in[i].view(-1);
      const double x0 = v[e].item<double>();
      v[e] = x0 + eps;
      const double up = value(in);
      v[e] = x0 - eps;
      const double down = value(in);
      const double numeric = (up - down) / (2 * eps);
      const double analytic = grads[i].view(-1)[e].item<double>();
      ASSERT_NEAR(analytic, numeric, tol * (1 + std::abs(numeric))) << "input " << i << ", element " << e;
    }
  }
}

// The names of every autograd node behind `t` (to see which path built it).
std::string graph_names(const torch::Tensor& t) {
  std::string names;
  std::vector<torch::autograd::Node*> todo{t.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  while (!todo.empty()) {
    auto* n = todo.back();
    todo.pop_back();
    if (!n || !seen.insert(n).second) continue;
    names += n->name() + "\n";
    for (const auto& e : n->next_edges()) todo.push_back(e.function.get());
  }
  return names;
}

}  // namespace

TEST(FusedKernels, BiasGeluMatchesTheUnfusedOpsForwardAndBackward) {
  Threads threads(2);
  torch::manual_seed(1);
  // 4 x 40 = 160 rows of 96: several chunks of rows
  auto x = (torch::randn({4, 40, 96}) * 3).requires_grad_(true);
  auto b = torch::randn({96}).requires_grad_(true);
  auto x2 = x.detach().clone().requires_grad_(true), b2 = b.detach().clone().requires_grad_(true);
  auto y = nn::bias_gelu(x, b);
  auto ref = torch::gelu(x2 + b2);
  EXPECT_LT(max_diff(y, ref), 1e-6);
  auto g = torch::randn_like(ref);
  (y * g).sum().backward();
  (ref * g).sum().backward();
  EXPECT_LT(max_diff(x.grad(), x2.grad()), 1e-5) << "dx";
  EXPECT_LT(max_diff(b.grad(), b2.grad()), 1e-4) << "dbias (a sum over 160 rows)";
}

TEST(FusedKernels, AddLayerNormMatchesTheUnfusedOpsForwardAndBackward) {
  Threads threads(2);
  torch::manual_seed(2);
  auto x = (torch::randn({3, 50, 64}) * 2 + 1).requires_grad_(true);
  auto r = torch::randn({3, 50, 64}).requires_grad_(true);
  auto w = (torch::randn({64}) * 0.5 + 1).requires_grad_(true);
  auto bias = torch::randn({64}).requires_grad_(true);
  std::vector<torch::Tensor> ref_in;
  for (auto& t : {x, r, w, bias}) ref_in.push_back(t.detach().clone().requires_grad_(true));
  auto [h, y] = nn::add_layer_norm(x, r, w, bias, 1e-5);
  auto h2 = ref_in[0] + ref_in[1];
  auto y2 = torch::layer_norm(h2, {64}, ref_in[2], ref_in[3], 1e-5);
  EXPECT_LT(max_diff(h, h2), 1e-6);
  EXPECT_LT(max_diff(y, y2), 2e-5);
  // both outputs feed the loss (as in the block: h is the residual stream, y goes to the feed-forward)
  auto gh = torch::randn_like(h2), gy = torch::randn_like(y2);
  ((h * gh).sum() + (y * gy).sum()).backward();
  ((h2 * gh).sum() + (y2 * gy).sum()).backward();
  EXPECT_LT(max_diff(x.grad(), ref_in[0].grad()), 1e-4) << "dx";
  EXPECT_LT(max_diff(r.grad(), ref_in[1].grad()), 1e-4) << "dr";
  EXPECT_LT(max_diff(w.grad(), ref_in[2].grad()), 1e-3) << "dweight";
  EXPECT_LT(max_diff(bias.grad(), ref_in[3].grad()), 1e-3) << "dbias";
  // only the normalised output used
  auto x3 = x.detach().clone().requires_grad_(true);
  auto x4 = x.detach().clone().requires_grad_(true);
  (nn::add_layer_norm(x3, r.detach(), w.detach(), bias.detach()).second * gy).sum().backward();
  (torch::layer_norm(x4 + r.detach(), {64}, w.detach(), bias.detach(), 1e-5) * gy).sum().backward();
  EXPECT_LT(max_diff(x3.grad(), x4.grad()), 1e-4);
}

TEST(FusedKernels, GradientsPassAFiniteDifferenceCheckInDouble) {
  torch::manual_seed(3);
  auto opt = torch::TensorOptions().dtype(torch::kDouble);
  gradcheck([](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{nn::bias_gelu(in[0], in[1])}; },
            {torch::randn({3, 4, 5}, opt) * 2, torch::randn({5}, opt)});
  gradcheck(
      [](const std::vector<torch::Tensor>& in) {
        auto [h, y] = nn::add_layer_norm(in[0], in[1], in[2], in[3], 1e-5);
        return std::vector<torch::Tensor>{h, y};
      },
      {torch::randn({2, 3, 6}, opt), torch::randn({2, 3, 6}, opt), torch::randn({6}, opt) + 1, torch::randn({6}, opt)});
}

TEST(FusedKernels, TransformerBlockGivesTheSameOutputAndGradientsWithThem) {
  Threads threads(2);
  torch::manual_seed(4);
  nn::TransformerBlock block(nn::TransformerBlockOptions{64, 4, 4, 0.0});
  auto x = torch::randn({3, 9, 64});
  auto pad = torch::tensor({0, 0, 0, 0, 0, 0, 0, 1, 1}, torch::kBool).unsqueeze(0).expand({3, 9}).clone();
  auto run = [&](bool fused) {
    Fused f(fused);
    block->zero_grad();
    auto xi = x.clone().requires_grad_(true);
    auto y = block->forward(xi, pad);
    const auto names = graph_names(y);
    // the switch decides the path: the fused Functions are in the graph exactly when it is on
    EXPECT_EQ(names.find("BiasGeluFn") != std::string::npos, fused) << names;
    EXPECT_EQ(names.find("AddLayerNormFn") != std::string::npos, fused) << names;
    (y * y).sum().backward();
    std::vector<torch::Tensor> out{y.detach(), xi.grad()};
    for (auto& p : block->parameters()) out.push_back(p.grad().clone());
    return out;
  };
  auto plain = run(false), fused = run(true);
  ASSERT_EQ(plain.size(), fused.size());
  EXPECT_LT(max_diff(plain[0], fused[0]), 1e-5) << "output";
  for (size_t i = 1; i < plain.size(); ++i)
    EXPECT_LT(max_diff(plain[i], fused[i]), 2e-3 * (1 + plain[i].abs().max().item<double>())) << "gradient " << i;
  EXPECT_FALSE(nn::fused_kernels()) << "the switch is off by default and restored";
}

TEST(FusedKernels, RefuseMismatchedShapesAndDtypes) {
  auto x = torch::randn({4, 8});
  EXPECT_THROW(nn::bias_gelu(x, torch::randn({7})), c10::Error);
  EXPECT_THROW(nn::bias_gelu(x, torch::randn({8}, torch::kDouble)), c10::Error);
  EXPECT_THROW(nn::bias_gelu(x.to(torch::kInt), torch::ones({8}, torch::kInt)), c10::Error);
  EXPECT_THROW(nn::add_layer_norm(x, torch::randn({4, 7}), torch::ones({8}), torch::zeros({8})), c10::Error);
  try {
    nn::add_layer_norm(x, x, torch::ones({6}), torch::zeros({8}));
    FAIL() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("weight"), std::string::npos) << e.what();
  }
}
