// int8 inference through oneDNN (nn/prepack.h PackPrecision::Int8, `--precision int8`, issue 19) against the fp32
// path: the activation quantizer (AVX-512 = scalar, round-trip error), packed_linear with every epilogue at the
// bench CLIP's GEMM shapes, the bench CLIP's image and text towers (random weights) embedded in int8 vs fp32,
// int8 forced off (falls back to fp32 packing), and the CLI (`bench speed --precision int8`: the path it took,
// BRAID_CPU_INT8=0, a CPU without VNNI refused). Tolerances are documented in docs/results/engine.md (2026-12-06).
// Skipped where int8 cannot run (no oneDNN, no VNNI), except the quantizer and the fallback.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

#include "braid/core/config.h"
#include "braid/models/model.h"
#include "braid/nn/encoders/hf_bert.h"
#include "braid/nn/prepack.h"
#include "test_util.h"

using namespace braid;
using braid::test::q;

namespace {

struct Threads {  // intra-op threads for a test, the old count put back
  int old = at::get_num_threads();
  explicit Threads(int n) { at::set_num_threads(n); }
  ~Threads() { at::set_num_threads(old); }
};

struct Cleared {  // no packed weights and int8 allowed before and after a test
  Cleared() { reset(); }
  ~Cleared() { reset(); }
  static void reset() {
    nn::clear_prepacked();
    nn::set_int8_allowed(true);
  }
};

#define SKIP_WITHOUT_INT8()                                                            \
  if (auto s = nn::int8_support(); !s.ok) GTEST_SKIP() << "no int8 here: " << s.reason

// Worst relative error max|got - want| / max|want| and the cosine of the flattened tensors.
std::pair<double, double> rel_err_cos(const torch::Tensor& got, const torch::Tensor& want) {
  const double rel = ((got - want).abs().max() / want.abs().max()).item<double>();
  const double cos = torch::cosine_similarity(got.flatten(), want.flatten(), 0).item<double>();
  return {rel, cos};
}

}  // namespace

TEST(Int8, QuantizerVectorMatchesScalarAndRoundTrips) {
  torch::manual_seed(0);
  for (int64_t K : {1, 15, 16, 17, 64, 257, 1024}) {
    auto x = torch::randn({9, K}) * torch::linspace(0.01, 10, 9).unsqueeze(1);
    x[3].zero_();                          // an all-zero row: scale 0, q 0
    x[5][K / 2] = 50;                      // an outlier sets its row's scale
    auto [qv, sv] = nn::quantize_rows_s8(x, true);
    auto [qs, ss] = nn::quantize_rows_s8(x, false);
    ASSERT_EQ(qv.scalar_type(), torch::kChar);
    EXPECT_TRUE(torch::equal(qv, qs)) << "K " << K;
    EXPECT_TRUE(torch::equal(sv, ss)) << "K " << K;
    EXPECT_EQ(sv[3].item<float>(), 0.f);
    EXPECT_EQ(qv[3].abs().max().item<int>(), 0);
    EXPECT_EQ(qv.abs().max().item<int>(), 127) << "the row maximum maps to +-127";
    // x ~ q · scale within half a step per element
    auto back = qv.to(torch::kFloat) * sv.unsqueeze(1);
    EXPECT_TRUE(((back - x).abs() <= sv.unsqueeze(1) * 0.5001 + 1e-7).all().item<bool>()) << "K " << K;
    EXPECT_TRUE(torch::equal(sv, x.abs().amax(1) / 127)) << "K " << K;
  }
}

// A NaN or an infinity in a row makes that row's outputs NaN (not finite numbers from clamped codes); the other
// rows are unaffected.
TEST(Int8, NonFiniteRowsComeOutNaN) {
  SKIP_WITHOUT_INT8();
  Cleared c;
  torch::manual_seed(6);
  torch::nn::Linear l(40, 24);
  ASSERT_EQ(nn::prepack_linears(*l, nn::PackPrecision::Int8), 1);
  auto x = torch::randn({4, 40});
  torch::NoGradGuard ng;
  auto clean = nn::packed_linear(x, l->weight, l->bias);
  x[1][33] = std::numeric_limits<float>::quiet_NaN();  // in the 16-wide tail of K = 40
  x[2][3] = std::numeric_limits<float>::infinity();
  for (bool vector : {true, false}) {
    auto [q, scale] = nn::quantize_rows_s8(x, vector);
    EXPECT_TRUE(std::isnan(scale[1].item<float>()) && std::isnan(scale[2].item<float>())) << "vector " << vector;
    EXPECT_TRUE(std::isfinite(scale[0].item<float>()) && std::isfinite(scale[3].item<float>())) << "vector " << vector;
  }
  auto y = nn::packed_linear(x, l->weight, l->bias);
  ASSERT_TRUE(y.defined());
  EXPECT_TRUE(y[1].isnan().all().item<bool>());
  EXPECT_TRUE(y[2].isnan().all().item<bool>());
  EXPECT_TRUE(torch::equal(y[0], clean[0]) && torch::equal(y[3], clean[3]));
}

TEST(Int8, PackedLinearWithinToleranceOfFp32WithEachEpilogue) {
  SKIP_WITHOUT_INT8();
  Cleared c;
  torch::manual_seed(1);
  double worst_rel = 0, worst_cos = 1;
  for (int threads : {1, 2}) {
    Threads t(threads);
    for (auto [K, N] : {std::pair<int64_t, int64_t>{256, 768}, {1024, 256}, {256, 1024}, {64, 10}}) {
      nn::clear_prepacked();
      torch::nn::Linear l(K, N);
      ASSERT_EQ(nn::prepack_linears(*l, nn::PackPrecision::Int8), 1);
      ASSERT_EQ(nn::prepacked_int8_count(), 1);
      torch::NoGradGuard ng;
      for (auto shape : {std::vector<int64_t>{1, K}, {17, K}, {32, 17, K}}) {
        auto x = torch::randn(shape);
        auto want = at::linear(x, l->weight, l->bias);
        auto r = torch::randn_like(want);
        const std::string what = "K " + std::to_string(K) + " N " + std::to_string(N) + " rows " +
                                 std::to_string(x.numel() / K) + " threads " + std::to_string(threads);
        struct Case {
          const char* name;
          torch::Tensor got, want;
        };
        for (auto& [name, got, w] : std::vector<Case>{
                 {"bias", nn::packed_linear(x, l->weight, l->bias), want},
                 {"no bias", nn::packed_linear(x, l->weight, {}), at::linear(x, l->weight)},
                 {"gelu", nn::packed_linear(x, l->weight, l->bias, nn::Epilogue::Gelu), torch::gelu(want)},
                 {"residual", nn::packed_linear(x, l->weight, l->bias, nn::Epilogue::None, r), want + r},
                 {"gelu + residual", nn::packed_linear(x, l->weight, l->bias, nn::Epilogue::Gelu, r),
                  torch::gelu(want) + r}}) {
          ASSERT_TRUE(got.defined()) << what << " " << name;
          ASSERT_EQ(got.sizes(), w.sizes()) << what << " " << name;
          auto [rel, cos] = rel_err_cos(got, w);
          worst_rel = std::max(worst_rel, rel);
          worst_cos = std::min(worst_cos, cos);
          EXPECT_LE(rel, 0.03) << what << " " << name;
          EXPECT_GE(cos, 0.9995) << what << " " << name;
          EXPECT_GT((got - w).abs().max().item<double>(), 1e-6) << what << " " << name << ": identical to fp32, "
                                                                                            "int8 did not run";
        }
      }
    }
  }
  std::printf("int8 packed_linear vs fp32: worst relative error %.4f, worst cosine %.6f\n", worst_rel, worst_cos);
}

namespace {

// The bench CLIP (bench/clip_speed.sh's towers: ViT 256-d x 8, text Transformer 256-d x 6, 128-d space), random
// weights, on a random image batch and random token sequences of varied length.
models::ModelPtr bench_clip() {
  models::ModelContext ctx;
  ctx.modalities = {"image", "text"};
  ctx.task = models::Task::Align;
  for (const auto& m : ctx.modalities) {
    nn::EncoderContext e;
    e.modality = m;
    e.vocab_size = 1500;
    e.image_size = 32;
    ctx.encoders[m] = e;
  }
  return models::model_registry().make(Config::from_string(R"(
name: dual_tower
modalities: [image, text]
encoders:
  image: {name: image_vit, patch: 8, dim: 256, depth: 8, heads: 4, mlp_ratio: 4}
  text: {name: text_transformer, dim: 256, layers: 6, heads: 4, max_len: 24, dropout: 0.1}
embed_dim: 128
projection: {hidden: []}
loss: clip
anchor: image
)", "bench_clip.yaml"), ctx);
}

ModalityBatch image_batch(int64_t B) {
  return {torch::rand({B, 3, 32, 32}) * 2 - 1, torch::ones({B}, torch::kLong), torch::ones({B}, torch::kBool)};
}
ModalityBatch text_batch(int64_t B) {
  auto lengths = torch::randint(3, 25, {B}, torch::kLong);
  auto tokens = torch::randint(4, 1500, {B, 24}, torch::kLong);
  tokens.masked_fill_(torch::arange(24).unsqueeze(0) >= lengths.unsqueeze(1), 0);
  return {tokens, lengths, torch::ones({B}, torch::kBool)};
}

}  // namespace

TEST(Int8, BenchClipTowersEmbedWithinCosineOfFp32) {
  SKIP_WITHOUT_INT8();
  Cleared c;
  torch::manual_seed(2);
  auto model = bench_clip();
  model->eval();
  torch::NoGradGuard ng;
  const int64_t B = 32;
  const std::map<std::string, ModalityBatch> batches{{"image", image_batch(B)}, {"text", text_batch(B)}};
  std::map<std::string, torch::Tensor> want;
  for (const auto& [m, mb] : batches) want[m] = model->embed(m, mb);
  const int64_t packed = nn::prepack_linears(*model, nn::PackPrecision::Int8);
  EXPECT_GE(packed, 8 * 4 + 6 * 4);  // every block's qkv, proj, ff1, ff2 at least
  EXPECT_EQ(nn::prepacked_int8_count(), packed);
  for (int threads : {1, 2}) {
    Threads t(threads);
    c10::InferenceMode im;
    for (const auto& [m, mb] : batches) {
      auto got = model->embed(m, mb);
      auto cos = torch::cosine_similarity(got, want[m], 1);
      const double mean = cos.mean().item<double>(), lo = cos.min().item<double>();
      std::printf("int8 vs fp32 %s embeddings (B %ld, threads %d): cosine mean %.5f, min %.5f\n", m.c_str(),
                  static_cast<long>(B), threads, mean, lo);
      EXPECT_GE(mean, 0.995) << m;
      EXPECT_GE(lo, 0.98) << m;
      EXPECT_LT(lo, 0.999999) << m << ": identical to fp32, int8 did not run";
    }
  }
}

// An imported BERT (hf_bert: MiniLM's encoder) runs its Linear layers through the packed path too: fp32 packed
// within float rounding of its own ops, int8 within the embedding tolerance.
TEST(Int8, HfBertPackedFp32AndInt8) {
  SKIP_WITHOUT_INT8();
  Cleared c;
  torch::manual_seed(5);
  nn::HFBertOptions o;
  o.vocab_size = 100;
  o.hidden_size = 64;
  o.num_hidden_layers = 2;
  o.num_attention_heads = 4;
  o.intermediate_size = 256;
  nn::EncoderContext ctx;
  ctx.modality = "text";
  auto bert = std::make_shared<nn::HFBertImpl>(o, ctx);
  bert->eval();
  auto ids = torch::randint(1, 100, {6, 12}, torch::kLong);
  auto lengths = torch::tensor({12, 9, 5, 12, 3, 7}, torch::kLong);
  torch::NoGradGuard ng;
  auto want = bert->sentence(ids, lengths);
  ASSERT_EQ(nn::prepack_linears(*bert), 2 * 6);  // q, k, v, attention out, intermediate, out per layer
  auto fp32 = bert->sentence(ids, lengths);
  EXPECT_LE((fp32 - want).abs().max().item<double>(), 1e-4);
  nn::clear_prepacked();
  ASSERT_EQ(nn::prepack_linears(*bert, nn::PackPrecision::Int8), 2 * 6);
  auto got = bert->sentence(ids, lengths);
  auto cos = torch::cosine_similarity(got, want, 1);
  std::printf("int8 vs fp32 hf_bert sentence vectors: cosine mean %.5f, min %.5f\n", cos.mean().item<double>(),
              cos.min().item<double>());
  EXPECT_GE(cos.mean().item<double>(), 0.995);
  EXPECT_GE(cos.min().item<double>(), 0.98);
  // (random weights: the embeddings dominate the residual stream, so int8 moves these vectors little)
  EXPECT_GT((got - want).abs().max().item<double>(), 1e-5) << "identical to fp32: the int8 weights were not used";
}

TEST(Int8, ForcedOffPacksFp32Instead) {
  if (!nn::prepack_available()) GTEST_SKIP() << "built without oneDNN (libdnnl-dev)";
  Cleared c;
  torch::manual_seed(3);
  torch::nn::Linear l(256, 768);
  auto x = torch::randn({17, 256});
  torch::NoGradGuard ng;
  auto want = at::linear(x, l->weight, l->bias);
  for (bool named : {false, true}) {
    if (named) nn::set_int8_allowed(false, "BRAID_CPU_INT8=0");  // as the CLI does
    else nn::set_int8_allowed(false);
    const auto s = nn::int8_support();
    EXPECT_FALSE(s.ok);
    EXPECT_TRUE(s.forced_off) << s.reason;
    EXPECT_NE(s.reason.find(named ? "int8 disabled by BRAID_CPU_INT8=0" : "int8 disabled by set_int8_allowed(false)"),
              std::string::npos) << s.reason;
    ASSERT_EQ(nn::prepack_linears(*l, nn::PackPrecision::Int8), 1) << "packs, in fp32";
    EXPECT_EQ(nn::prepacked_int8_count(), 0);
    auto got = nn::packed_linear(x, l->weight, l->bias);
    ASSERT_TRUE(got.defined());
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-4) << "the fp32 packed path";
    Cleared::reset();
  }
  if (nn::int8_support().ok) {  // allowed again: int8, no longer within fp32 rounding
    ASSERT_EQ(nn::prepack_linears(*l, nn::PackPrecision::Int8), 1);
    EXPECT_EQ(nn::prepacked_int8_count(), 1);
    EXPECT_GT((nn::packed_linear(x, l->weight, l->bias) - want).abs().max().item<double>(), 1e-4);
  }
}

// Through the CLI: `bench speed --precision int8` says which path it took and reports it; BRAID_CPU_INT8=0 falls
// back to fp32 packing with a log line; a CPU without VNNI (oneDNN capped by DNNL_MAX_CPU_ISA) is refused in one line.
TEST(Int8, CliPrecisionInt8ReportsFallsBackAndRefuses) {
  braid::test::TempDir t("int8");
  braid::test::ToyOptions opt;
  opt.n = 24;
  opt.audio = false;
  const std::string manifest = braid::test::make_toy_dataset((t.path / "data").string(), opt);
  const std::string recipe = t.file("r.yaml", R"(
task: align
threads: 1
data: {workers: 1, image: {size: 16}, text: {max_tokens: 8, vocab: 50}}
model:
  name: dual_tower
  modalities: [image, text]
  encoders:
    image: {name: image_vit, patch: 4, dim: 32, depth: 1, heads: 2, mlp_ratio: 2}
    text: {name: text_transformer, dim: 32, layers: 1, heads: 2, max_len: 8}
  embed_dim: 16
  loss: clip
train: {batch_size: 8}
)");
  const std::string args = "bench speed " + q(recipe) + " --data " + q(manifest) +
                           " --steps 1 --repeats 1 --infer-only --precision int8 --json";
  auto r = braid::test::run_braid(args);
  const auto s = nn::int8_support();
  if (!s.ok) {  // this host cannot: refused, one line
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("--precision int8"), std::string::npos) << r.err;
    return;
  }
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = braid::test::last_json_line(r.out);
  EXPECT_EQ(j["precision"].get<std::string>(), "int8");
  EXPECT_GT(j["prepacked_int8"].get<int64_t>(), 0);
  EXPECT_EQ(j["prepacked_int8"].get<int64_t>(), j["prepacked"].get<int64_t>());
  EXPECT_NE(r.err.find("precision int8: " + s.reason), std::string::npos) << r.err;

  ::setenv("BRAID_CPU_INT8", "0", 1);
  auto off = braid::test::run_braid(args);
  ::unsetenv("BRAID_CPU_INT8");
  ASSERT_EQ(off.code, 0) << off.err;
  auto jo = braid::test::last_json_line(off.out);
  EXPECT_EQ(jo["precision"].get<std::string>(), "fp32");
  EXPECT_EQ(jo["prepacked_int8"].get<int64_t>(), 0);
  EXPECT_GT(jo["prepacked"].get<int64_t>(), 0);
  EXPECT_NE(off.err.find("precision int8 -> fp32 (int8 disabled by BRAID_CPU_INT8=0)"), std::string::npos) << off.err;

  ::setenv("DNNL_MAX_CPU_ISA", "AVX512_CORE", 1);  // oneDNN without VNNI
  auto no = braid::test::run_braid(args);
  ::unsetenv("DNNL_MAX_CPU_ISA");
  EXPECT_EQ(no.code, 2) << no.err;
  EXPECT_NE(no.err.find("--precision int8: this CPU has no VNNI"), std::string::npos) << no.err;
}
