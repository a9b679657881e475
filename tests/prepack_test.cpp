// Inference through pre-packed oneDNN weights (nn/prepack.h, issue 19) against the fp32 ATen path it replaces:
// packed_linear with each epilogue (bias, GELU, residual add) at the bench CLIP's GEMM shapes, 1 and 2 threads,
// within 1e-4 and cosine >= 0.9999; the Transformer block and an MLP with packed weights vs without; and every
// case where it must fall back (grad mode on, not packed, cleared, another dtype) or repack (a weight changed
// in place). Speed is measured by bench/engine.sh PARTS=ort, not here.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "braid/nn/blocks.h"
#include "braid/nn/prepack.h"

using namespace braid;

namespace {

struct Threads {  // intra-op threads for a test, the old count put back
  int old = at::get_num_threads();
  explicit Threads(int n) { at::set_num_threads(n); }
  ~Threads() { at::set_num_threads(old); }
};

struct Cleared {  // no packed weights before or after a test
  Cleared() { nn::clear_prepacked(); }
  ~Cleared() { nn::clear_prepacked(); }
};

// max |a - b| <= 1e-4 and the cosine of the flattened tensors >= 0.9999
void expect_close(const torch::Tensor& got, const torch::Tensor& want, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what << ": no result";
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const double diff = (got - want).abs().max().item<double>();
  const double cos = torch::cosine_similarity(got.flatten(), want.flatten(), 0).item<double>();
  EXPECT_LE(diff, 1e-4) << what;
  EXPECT_GE(cos, 0.9999) << what;
}

#define SKIP_WITHOUT_DNNL() \
  if (!nn::prepack_available()) GTEST_SKIP() << "built without oneDNN (libdnnl-dev)"

}  // namespace

TEST(Prepack, PackedLinearMatchesAtLinearWithEachEpilogue) {
  SKIP_WITHOUT_DNNL();
  Cleared c;
  torch::manual_seed(0);
  for (int threads : {1, 2}) {
    Threads t(threads);
    // the bench CLIP's Linear shapes (dim 256, 4x MLP), a narrow head, and a [B, T, K] input
    for (auto [K, N] : {std::pair<int64_t, int64_t>{256, 768}, {1024, 256}, {64, 10}}) {
      torch::nn::Linear l(K, N);
      ASSERT_EQ(nn::prepack_linears(*l), 1);
      torch::NoGradGuard ng;
      for (auto shape : {std::vector<int64_t>{1, K}, {17, K}, {32, 17, K}}) {
        auto x = torch::randn(shape);
        auto want = at::linear(x, l->weight, l->bias);
        const std::string what = "K " + std::to_string(K) + " N " + std::to_string(N) + " rows " +
                                 std::to_string(x.numel() / K) + " threads " + std::to_string(threads);
        expect_close(nn::packed_linear(x, l->weight, l->bias), want, what + " bias");
        expect_close(nn::packed_linear(x, l->weight, {}), at::linear(x, l->weight), what + " no bias");
        expect_close(nn::packed_linear(x, l->weight, l->bias, nn::Epilogue::Gelu), torch::gelu(want), what + " gelu");
        auto r = torch::randn_like(want);
        expect_close(nn::packed_linear(x, l->weight, l->bias, nn::Epilogue::None, r), want + r, what + " residual");
        expect_close(nn::packed_linear(x, l->weight, l->bias, nn::Epilogue::Gelu, r), torch::gelu(want) + r,
                     what + " gelu + residual");
        // a non-contiguous input (a transposed view) gives the same
        auto xt = x.transpose(0, -1).contiguous().transpose(0, -1);
        expect_close(nn::packed_linear(xt, l->weight, l->bias), want, what + " strided input");
      }
    }
  }
}

TEST(Prepack, FallsBackWhereItDoesNotApplyAndRepacksAChangedWeight) {
  SKIP_WITHOUT_DNNL();
  Cleared c;
  torch::manual_seed(1);
  torch::nn::Linear l(32, 16), other(32, 16);
  auto x = torch::randn({5, 32});
  {
    torch::NoGradGuard ng;
    EXPECT_FALSE(nn::packed_linear(x, l->weight, l->bias).defined()) << "nothing packed yet";
  }
  ASSERT_EQ(nn::prepack_linears(*l), 1);
  EXPECT_EQ(nn::prepacked_count(), 1);
  EXPECT_TRUE(nn::any_prepacked());
  EXPECT_FALSE(nn::packed_linear(x, l->weight, l->bias).defined()) << "grad mode is on: training keeps at::linear";
  torch::NoGradGuard ng;
  EXPECT_TRUE(nn::packed_linear(x, l->weight, l->bias).defined());
  EXPECT_FALSE(nn::packed_linear(x, other->weight, other->bias).defined()) << "another Linear was not packed";
  EXPECT_FALSE(nn::packed_linear(x.to(torch::kDouble), l->weight, l->bias).defined()) << "double input";
  EXPECT_FALSE(nn::packed_linear(torch::randn({5, 31}), l->weight, l->bias).defined()) << "wrong width";
  // a weight changed in place after packing (e.g. weights loaded into the module) is packed again
  l->weight.add_(0.5);
  expect_close(nn::packed_linear(x, l->weight, l->bias), at::linear(x, l->weight, l->bias), "after weight.add_");
  nn::clear_prepacked();
  EXPECT_FALSE(nn::any_prepacked());
  EXPECT_FALSE(nn::packed_linear(x, l->weight, l->bias).defined()) << "cleared";
}

TEST(Prepack, TransformerBlockAndMlpGiveTheSameOutputPacked) {
  SKIP_WITHOUT_DNNL();
  Cleared c;
  torch::manual_seed(2);
  nn::TransformerBlockOptions bo;
  bo.dim = 64;
  bo.dropout = 0.1;
  nn::TransformerBlock block(bo);
  nn::MLPOptions mo;
  mo.in = 64;
  mo.hidden = {48};
  mo.out = 7;
  nn::MLP mlp(mo);
  block->eval();
  mlp->eval();
  auto x = torch::randn({3, 9, 64});
  auto pad = torch::zeros({3, 9}, torch::kBool);
  pad.index_put_({2, torch::indexing::Slice(5)}, true);  // the last row has 5 valid steps
  torch::NoGradGuard ng;
  auto want = block->forward(x, pad), want_mlp = mlp->forward(want.mean(1));
  EXPECT_EQ(nn::prepack_linears(*block), 4);  // qkv, proj, ff1, ff2
  EXPECT_EQ(nn::prepack_linears(*mlp), 2);
  for (int threads : {1, 2}) {
    Threads t(threads);
    c10::InferenceMode im;
    auto got = block->forward(x, pad);
    expect_close(got, want, "block, threads " + std::to_string(threads));
    expect_close(mlp->forward(got.mean(1)), want_mlp, "mlp, threads " + std::to_string(threads));
  }
  // in training mode with dropout the block keeps its own ops (dropout is not an epilogue)
  block->train();
  torch::manual_seed(3);
  auto a = block->forward(x, pad);
  torch::manual_seed(3);
  nn::clear_prepacked();
  expect_close(block->forward(x, pad), a, "block in training mode");
}

TEST(Prepack, AttentionMatchesTheUnfusedOps) {
  SKIP_WITHOUT_DNNL();
  Cleared c;
  torch::manual_seed(4);
  torch::nn::Linear l(8, 8);
  ASSERT_EQ(nn::prepack_linears(*l), 1);  // packed_attention runs while weights are packed
  const int64_t B = 3, T = 7, H = 4, d = 16;
  auto qkv = torch::randn({B, T, 3 * H * d});
  auto pad = torch::zeros({B, T}, torch::kBool);
  pad.index_put_({1, torch::indexing::Slice(4)}, true);  // 4 valid steps
  pad[2].fill_(true);                                    // every key masked: zeros, as nn::attention
  torch::NoGradGuard ng;
  for (int threads : {1, 2}) {
    Threads t(threads);
    for (bool masked : {false, true}) {
      auto m = masked ? pad : torch::Tensor();
      auto q = qkv.view({B, T, 3, H, d}).permute({2, 0, 3, 1, 4});
      auto want = nn::attention(q[0], q[1], q[2], m).transpose(1, 2).reshape({B, T, H * d});
      expect_close(nn::packed_attention(qkv, H, m), want,
                   std::string(masked ? "masked" : "unmasked") + ", threads " + std::to_string(threads));
    }
  }
  EXPECT_FALSE(nn::packed_attention(qkv.transpose(0, 1), H).defined()) << "not contiguous";
  nn::clear_prepacked();
  EXPECT_FALSE(nn::packed_attention(qkv, H).defined()) << "nothing packed: the caller's own ops";
}
