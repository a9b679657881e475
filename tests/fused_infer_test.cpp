// Fused inference kernels (nn/fused_infer.h, issue 19) against the unfused ATen ops they replace: attention from the
// fused qkv projection (with and without key padding, a fully padded row, head dims that are and are not multiples of
// 16, more than 16 and 32 keys) and LayerNorm (widths with and without a 16-float tail), each through the AVX-512 path
// (where the CPU has it) and the scalar path; the pre-packed Transformer block with the kernels vs the training path;
// the ISA switch and bad shapes. Speed: bench/engine.sh PARTS=ort and `braid bench speed --op-profile`.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "braid/core/cpu_features.h"
#include "braid/nn/blocks.h"
#include "braid/nn/encoders/image_vit.h"
#include "braid/nn/fused_infer.h"
#include "braid/nn/prepack.h"
#include "test_util.h"

using namespace braid;
using braid::test::max_diff;

namespace {

struct IsaScope {  // the kernels' ISA for one test, Auto put back
  explicit IsaScope(nn::Isa isa) { nn::set_fused_infer_isa(isa); }
  ~IsaScope() { nn::set_fused_infer_isa(nn::Isa::Auto); }
};

bool has_avx2_fma() { return detected_cpu_features().avx2 && detected_cpu_features().fma; }

std::vector<nn::Isa> isas() {  // every path this CPU can run (Auto is the AVX-512 one here)
  std::vector<nn::Isa> v{nn::Isa::Scalar};
  if (has_avx2_fma()) v.push_back(nn::Isa::Avx2);
  if (detected_cpu_features().avx512f) v.push_back(nn::Isa::Auto);
  return v;
}
std::string isa_name(nn::Isa isa) {
  return isa == nn::Isa::Scalar ? "scalar" : isa == nn::Isa::Avx2 ? "avx2" : "auto (avx512)";
}

// The unfused reference: q, k, v split out of qkv [B, T, 3, H, d] and nn::attention (matmul, mask, softmax, matmul).
torch::Tensor reference_attention(const torch::Tensor& qkv, int64_t H, const torch::Tensor& pad) {
  const int64_t B = qkv.size(0), T = qkv.size(1), d = qkv.size(2) / (3 * H);
  auto q = qkv.view({B, T, 3, H, d}).permute({2, 0, 3, 1, 4});  // [3, B, H, T, d]
  return nn::attention(q[0], q[1], q[2], pad).transpose(1, 2).reshape({B, T, H * d});
}

}  // namespace

TEST(FusedInfer, AttentionMatchesUnfusedReference) {
  torch::manual_seed(0);
  torch::NoGradGuard ng;
  struct Case {
    int64_t B, T, H, d;
    bool padded;
  };
  // the bench image tower (17 tokens, 4 heads of 64: one full key block + 1 key by dot products), the text tower
  // (24 tokens, padding: a tail of 8 transposed), one key block, three key blocks, tails of 3 and 1 keys after full
  // blocks (padding in them), and head dims off the 16-float vector (the scalar path on every CPU)
  for (const Case& c : {Case{32, 17, 4, 64, false}, Case{5, 24, 4, 64, true}, Case{2, 16, 2, 32, true},
                        Case{3, 40, 2, 16, true}, Case{4, 19, 2, 64, true}, Case{3, 33, 2, 32, true},
                        Case{2, 9, 3, 8, true}, Case{1, 1, 1, 64, false}}) {
    auto qkv = torch::randn({c.B, c.T, 3 * c.H * c.d}) * 1.5;
    torch::Tensor pad;
    if (c.padded) {
      auto len = torch::randint(1, c.T + 1, {c.B}, torch::kLong);
      len[0] = c.T;                          // one full row
      if (c.B > 2) len[c.B - 1] = 0;         // one row that is padding only: zeros, not NaN
      pad = nn::padding_mask(len, c.T);
    }
    auto want = reference_attention(qkv, c.H, pad);
    for (auto isa : isas()) {
      IsaScope s(isa);
      auto got = nn::infer_attention(qkv, c.H, pad);
      const std::string what = "B " + std::to_string(c.B) + " T " + std::to_string(c.T) + " H " +
                               std::to_string(c.H) + " d " + std::to_string(c.d) + (c.padded ? " padded " : " ") +
                               isa_name(isa);
      ASSERT_EQ(got.sizes(), want.sizes()) << what;
      EXPECT_FALSE(got.isnan().any().item<bool>()) << what;
      EXPECT_LE(max_diff(got, want), 1e-5) << what;
    }
  }
}

TEST(FusedInfer, LayerNormMatchesAtLayerNorm) {
  torch::manual_seed(1);
  torch::NoGradGuard ng;
  for (int64_t D : {256, 40, 7, 16}) {
    // an offset and a scale on the rows: the variance must not come from E[x²] - E[x]²
    auto x = torch::randn({3, 11, D}) * 2.0 + 5.0;
    auto w = torch::randn({D}), b = torch::randn({D});
    auto want = at::layer_norm(x, {D}, w, b, 1e-5);
    for (auto isa : isas()) {
      IsaScope s(isa);
      auto got = nn::infer_layer_norm(x, w, b, 1e-5);
      EXPECT_LE(max_diff(got, want), 1e-5) << "D " << D << " " << isa_name(isa);
      // a strided view is made contiguous
      EXPECT_LE(max_diff(nn::infer_layer_norm(x.transpose(0, 1), w, b), want.transpose(0, 1)), 1e-5)
          << "D " << D << " transposed " << isa_name(isa);
    }
  }
}

TEST(FusedInfer, GeluMatchesTorchGelu) {
  torch::NoGradGuard ng;
  // -40..40 densely (the erf approximation's clamp at |x/√2| = 4 included), large |x|, an odd length (masked
  // tail), ±inf and NaN
  auto x = torch::cat({torch::linspace(-40, 40, 800001),
                       torch::tensor({1e4f, -1e4f, 1e30f, -1e30f, 5.65f, -5.65f, 5.66f, -5.66f, 0.0f})});
  auto want = torch::gelu(x);  // the erf form
  for (auto isa : isas()) {
    IsaScope s(isa);
    auto got = x.clone();
    nn::infer_gelu_(got);
    EXPECT_LE(max_diff(got, want), 1e-5) << isa_name(isa);
    const float special[] = {INFINITY, -INFINITY, NAN};
    auto sp = torch::tensor({special[0], special[1], special[2]});
    nn::infer_gelu_(sp);
    EXPECT_EQ(sp[0].item<float>(), INFINITY) << isa_name(isa);
    EXPECT_TRUE(std::isnan(sp[2].item<float>())) << "NaN must propagate, " << isa_name(isa);
  }
  auto strided = x.view({-1, 1}).expand({-1, 2});
  EXPECT_THROW(nn::infer_gelu_(strided), c10::Error);
}

TEST(FusedInfer, PackedBlockWithFusedKernelsMatchesTrainingPath) {
  if (!nn::prepack_available()) GTEST_SKIP() << "built without oneDNN (libdnnl-dev)";
  torch::manual_seed(2);
  nn::clear_prepacked();
  nn::TransformerBlock blk(nn::TransformerBlockOptions{256, 4, 4, 0.0});
  blk->eval();
  auto x = torch::randn({6, 24, 256});
  auto len = torch::tensor({24, 3, 17, 1, 24, 9}, torch::kLong);
  auto pad = nn::padding_mask(len, 24);
  auto want = blk->forward(x, pad).detach();  // grad mode on: the unfused ATen ops
  ASSERT_GT(nn::prepack_linears(*blk), 0);
  for (bool on : {true, false}) {
    nn::set_fused_infer(on);
    torch::NoGradGuard ng;
    auto got = blk->forward(x, pad);
    EXPECT_LE(max_diff(got, want), 1e-4) << "fused inference kernels " << (on ? "on" : "off");
  }
  nn::set_fused_infer(true);
  nn::clear_prepacked();
}

TEST(FusedInfer, PackedImageViTMatchesTrainingPath) {
  // the patch embedding as a GEMM over patch rows, the blocks and the final LayerNorm on the fused path; 36-px images
  // leave a 4-px remainder that the convolution drops
  if (!nn::prepack_available()) GTEST_SKIP() << "built without oneDNN (libdnnl-dev)";
  torch::manual_seed(3);
  for (int64_t side : {32, 36}) {
    nn::clear_prepacked();
    nn::EncoderContext ctx;
    ctx.modality = "image";
    ctx.image_size = side;
    nn::ImageViTOptions o;
    o.patch = 8;
    o.dim = 64;
    o.depth = 2;
    o.heads = 4;
    auto vit = std::make_shared<nn::ImageViTImpl>(o, ctx);
    vit->eval();
    auto images = torch::randn({3, 3, side, side});
    auto want = vit->tokens(images).detach();  // grad mode on: convolution, ATen LayerNorm and attention
    ASSERT_GT(nn::prepack_linears(*vit), 0);
    torch::NoGradGuard ng;
    auto got = vit->tokens(images);
    EXPECT_LE(max_diff(got, want), 1e-4) << side << " px";
  }
  nn::clear_prepacked();
}

TEST(FusedInfer, PackedPatchEmbeddingMatchesConvolution) {
  // prepack_linears packs a patch convolution (kernel = stride, no padding) as the Linear [dim, C·p·p] over patch rows;
  // packed_linear with the conv's weight then gives the convolution's tokens. Other convolutions and int8 packing
  // leave it alone (the ViT then falls back to at::linear).
  if (!nn::prepack_available()) GTEST_SKIP() << "built without oneDNN (libdnnl-dev)";
  torch::manual_seed(4);
  const int64_t p = 8, dim = 48, B = 5, side = 32, n = side / p;
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, dim, p).stride(p));
  auto images = torch::randn({B, 3, side, side});
  torch::NoGradGuard ng;
  auto want = conv->forward(images).flatten(2).transpose(1, 2);  // [B, N, dim]
  auto rows = images.reshape({B, 3, n, p, n, p}).permute({0, 2, 4, 1, 3, 5}).reshape({B, n * n, 3 * p * p});
  nn::clear_prepacked();
  ASSERT_EQ(nn::prepack_linears(*conv), 1);
  auto got = nn::packed_linear(rows, conv->weight, conv->bias);
  ASSERT_TRUE(got.defined()) << "packed_linear fell back for the packed patch convolution";
  EXPECT_LE(max_diff(got, want), 1e-4);
  torch::nn::Conv2d same(torch::nn::Conv2dOptions(3, dim, 3).padding(1));
  torch::nn::Conv2d strided(torch::nn::Conv2dOptions(3, dim, 4).stride(2));
  EXPECT_EQ(nn::prepack_linears(*same), 0) << "padded convolution";
  EXPECT_EQ(nn::prepack_linears(*strided), 0) << "kernel 4 != stride 2";
  nn::clear_prepacked();
  nn::EncoderContext ctx;
  ctx.modality = "image";
  ctx.image_size = side;
  nn::ImageViTOptions o;
  o.patch = p;
  o.dim = 64;
  o.depth = 2;
  o.heads = 4;
  nn::ImageViTImpl vit(o, ctx);
  EXPECT_EQ(nn::prepack_linears(vit), 2 * 4 + 1);  // qkv, proj, ff1, ff2 per block and the patch embedding
  nn::release_prepacked(vit);
  EXPECT_EQ(nn::prepacked_count(), 0);
  if (nn::int8_support().ok) EXPECT_EQ(nn::prepack_linears(vit, nn::PackPrecision::Int8), 2 * 4) << "int8: Linears only";
  nn::clear_prepacked();
}

TEST(FusedInfer, IsaSwitchAndBadShapes) {
  {
    IsaScope s(nn::Isa::Scalar);
    EXPECT_FALSE(nn::fused_infer_uses_avx512());
    EXPECT_FALSE(nn::fused_infer_uses_avx2());
  }
  {
    IsaScope s(nn::Isa::Avx2);
    EXPECT_FALSE(nn::fused_infer_uses_avx512());
    EXPECT_EQ(nn::fused_infer_uses_avx2(), has_avx2_fma());
  }
#if defined(__x86_64__)
  EXPECT_EQ(nn::fused_infer_uses_avx512(), detected_cpu_features().avx512f);
  EXPECT_EQ(nn::fused_infer_uses_avx2(), !detected_cpu_features().avx512f && has_avx2_fma());
#endif
  EXPECT_THROW(nn::infer_attention(torch::randn({2, 3, 10}), 4), c10::Error);             // 10 is not 3 x 4 x d
  EXPECT_THROW(nn::infer_attention(torch::randn({2, 3, 24}).to(torch::kDouble), 4), c10::Error);
  EXPECT_THROW(nn::infer_attention(torch::randn({2, 3, 24}), 4, torch::zeros({2, 4}, torch::kBool)), c10::Error);
  EXPECT_THROW(nn::infer_layer_norm(torch::randn({2, 8}), torch::ones({7}), torch::zeros({7})), c10::Error);
}
