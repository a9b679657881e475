// Temporal fusions: MulT's cross-modal layer against a PyTorch golden, sequence front-ends and
// step helpers, shape / gradient / masking tests of mult, mfn and mctn, and a CLI training run.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/core/safetensors.h"
#include "braid/models/mctn.h"
#include "braid/models/mfn.h"
#include "braid/models/mult.h"
#include "braid/nn/blocks.h"
#include "braid/nn/sequence.h"
#include "braid/nn/temporal/crossmodal.h"
#include "braid/nn/temporal/memory.h"
#include "test_util.h"

using namespace braid;
using namespace braid::test;

namespace {

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// image (16 px), audio (8 mels), text (vocab 50); 3 outputs.
models::ModelContext context(std::vector<std::string> mods = {"image", "audio", "text"}) {
  models::ModelContext ctx;
  ctx.modalities = mods;
  ctx.outputs = 3;
  for (const auto& m : mods) {
    nn::EncoderContext e;
    e.modality = m;
    e.vocab_size = 50;
    e.image_size = 16;
    e.n_mels = 8;
    e.series_channels = 2;
    ctx.encoders[m] = e;
  }
  return ctx;
}

// B = 4 rows with unequal lengths and one absent modality per row but the first:
//   row 0: image, audio (10 steps), text (6 tokens)
//   row 1: image, text (2)          — no audio
//   row 2: audio (6), text (4)      — no image
//   row 3: image, audio (3)         — no text
// Padding is zero (as the loader pads); `extra` appends that many more padding steps to audio and text.
Batch toy_batch(int64_t extra = 0, uint64_t seed = 7) {
  torch::manual_seed(seed);
  Batch b;
  b.index = {0, 1, 2, 3};
  b.labels = torch::tensor({0, 1, 2, 1}, torch::kLong);
  auto bools = [](std::vector<int> v) {
    return torch::tensor(std::vector<int64_t>(v.begin(), v.end()), torch::kLong).to(torch::kBool);
  };
  auto longs = [](std::vector<int64_t> v) { return torch::tensor(v, torch::kLong); };
  ModalityBatch im;
  im.present = bools({1, 1, 0, 1});
  im.lengths = longs({1, 1, 0, 1});
  im.data = torch::randn({4, 3, 16, 16}) * im.present.to(torch::kFloat).view({4, 1, 1, 1});
  b.mods["image"] = im;

  ModalityBatch au;
  au.present = bools({1, 0, 1, 1});
  au.lengths = longs({10, 0, 6, 3});
  au.data = torch::zeros({4, 8, 10 + extra});
  for (int64_t i = 0; i < 4; ++i) {
    int64_t L = au.lengths[i].item<int64_t>();
    if (L > 0) au.data[i].narrow(1, 0, L).copy_(torch::randn({8, L}));
  }
  b.mods["audio"] = au;

  ModalityBatch tx;
  tx.present = bools({1, 1, 1, 0});
  tx.lengths = longs({6, 2, 4, 0});
  tx.data = torch::zeros({4, 6 + extra}, torch::kLong);
  for (int64_t i = 0; i < 4; ++i) {
    int64_t L = tx.lengths[i].item<int64_t>();
    if (L > 0) tx.data[i].narrow(0, 0, L).copy_(torch::randint(1, 50, {L}, torch::kLong));
  }
  b.mods["text"] = tx;
  return b;
}

// Every parameter has a finite gradient that is not all zero.
void expect_all_gradients(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.named_parameters()) {
    ++n;
    const auto& g = p.value().grad();
    ASSERT_TRUE(g.defined()) << "no gradient for " << p.key();
    EXPECT_TRUE(torch::isfinite(g).all().item<bool>()) << "non-finite gradient for " << p.key();
    EXPECT_GT(g.abs().sum().item<double>(), 0.0) << "zero gradient for " << p.key();
  }
  EXPECT_GT(n, 0);
}

models::ModelPtr build(const std::string& yaml, const models::ModelContext& ctx) {
  auto cfg = Config::from_string(yaml);
  return models::model_registry().make(cfg, ctx);
}

}  // namespace

// ---------------------------------------------------------------- golden

TEST(TemporalGolden, CrossModalLayerMatchesPyTorch) {
  const std::string path = std::string(BRAID_FIXTURES) + "/temporal/crossmodal_layer.safetensors";
  auto t = read_safetensors(path);
  nn::CrossModalLayer layer(nn::CrossModalLayerOptions{16, 4, 4, 0.0});
  load_module_tensors(*layer, t, path, "layer.");  // strict: unknown, missing, mis-shaped names throw
  layer->eval();
  torch::NoGradGuard ng;
  auto target = t.at("input.target"), source = t.at("input.source"), expected = t.at("expected");
  auto pad = nn::padding_mask(t.at("input.source_lengths"), source.size(1));
  ASSERT_TRUE(pad[2].all().item<bool>()) << "the fixture's row 2 should have no valid source step";
  auto out = layer->forward(target, source, pad);
  ASSERT_EQ(out.sizes(), expected.sizes());
  ASSERT_TRUE(torch::isfinite(out).all().item<bool>());
  double worst = max_abs_diff(out, expected);
  std::printf("[ golden   ] cross-modal layer vs PyTorch: max abs diff %.3g (tolerance 1e-5)\n", worst);
  EXPECT_LE(worst, 1e-5);
  // the mask matters: without it the output is far from the reference
  EXPECT_GT(max_abs_diff(layer->forward(target, source), expected), 1e-2);
}

TEST(TemporalGolden, StrictLoadRejectsMissingAndMisshapedTensors) {
  const std::string path = std::string(BRAID_FIXTURES) + "/temporal/crossmodal_layer.safetensors";
  auto t = read_safetensors(path);
  nn::CrossModalLayer wide(nn::CrossModalLayerOptions{32, 4, 4, 0.0});
  EXPECT_THROW(load_module_tensors(*wide, t, path, "layer."), InputError);
  auto missing = t;
  missing.erase("layer.ln_kv.weight");
  nn::CrossModalLayer layer(nn::CrossModalLayerOptions{16, 4, 4, 0.0});
  EXPECT_THROW(load_module_tensors(*layer, missing, path, "layer."), InputError);
}

// ---------------------------------------------------------------- helpers and front-ends

TEST(Temporal, SinusoidalPositionsFollowTheFormula) {
  auto pe = nn::sinusoidal_positions(6, 10, torch::TensorOptions());
  ASSERT_EQ(pe.sizes(), (std::vector<int64_t>{6, 10}));
  for (int64_t t : {0, 3, 5})
    for (int64_t i = 0; i < 5; ++i) {
      double w = std::pow(10000.0, -2.0 * i / 10.0);
      EXPECT_NEAR(pe[t][2 * i].item<double>(), std::sin(t * w), 1e-6);
      EXPECT_NEAR(pe[t][2 * i + 1].item<double>(), std::cos(t * w), 1e-6);
    }
  EXPECT_EQ(nn::sinusoidal_positions(3, 7, torch::TensorOptions()).size(1), 7);  // odd widths work
}

TEST(Temporal, ResampleNearestAndLastStep) {
  // row 0: 4 valid steps -> 8 (each repeated); row 1: 8 -> 4 (every other); row 2: empty
  auto x = torch::arange(24, torch::kFloat).view({3, 8, 1});
  auto len = torch::tensor({4, 8, 0}, torch::kLong);
  auto r = nn::resample_nearest(x, len, 4).squeeze(-1);
  EXPECT_TRUE(torch::equal(r[0], torch::tensor({0.f, 1.f, 2.f, 3.f})));
  EXPECT_TRUE(torch::equal(r[1], torch::tensor({9.f, 11.f, 13.f, 15.f})));
  EXPECT_TRUE(torch::equal(r[2], torch::full({4}, 16.f)));
  auto up = nn::resample_nearest(x, len, 8).squeeze(-1);
  EXPECT_TRUE(torch::equal(up[0], torch::tensor({0.f, 0.f, 1.f, 1.f, 2.f, 2.f, 3.f, 3.f})));
  auto last = nn::last_step(x, len).squeeze(-1);
  EXPECT_TRUE(torch::equal(last, torch::tensor({3.f, 15.f, 16.f})));
}

TEST(Temporal, MaskedAttentionOfFullyMaskedRowIsZeroWithFiniteGradients) {
  torch::manual_seed(1);
  auto q = torch::randn({2, 2, 3, 4}, torch::requires_grad());
  auto k = torch::randn({2, 2, 5, 4}, torch::requires_grad());
  auto v = torch::randn({2, 2, 5, 4}, torch::requires_grad());
  auto pad = nn::padding_mask(torch::tensor({3, 0}, torch::kLong), 5);
  auto out = nn::masked_attention(q, k, v, pad);
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  EXPECT_EQ(out[1].abs().max().item<float>(), 0.f);
  EXPECT_LT(max_abs_diff(out[0], nn::attention(q, k, v, pad)[0]), 1e-6);
  out.sum().backward();
  for (const auto& g : {q.grad(), k.grad(), v.grad()}) EXPECT_TRUE(torch::isfinite(g).all().item<bool>());
  EXPECT_GT(v.grad()[0].abs().sum().item<double>(), 0);
}

TEST(Temporal, SequenceFrontEndsShapesLengthsAndAbsentRows) {
  auto ctx = context({"image", "audio", "text"});
  auto b = toy_batch();
  auto mk = [&](const std::string& yaml, const std::string& mod) {
    auto c = Config::from_string(yaml);
    return nn::make_sequence(c, ctx.encoders.at(mod));
  };
  struct Case {
    std::string yaml, mod;
    int64_t T, dim;
    std::vector<int64_t> lengths;
  };
  std::vector<Case> cases = {
      {"{image: {name: image_rows, dim: 12}}", "image", 16, 12, {16, 16, 0, 16}},
      {"{image: {name: image_rows, dim: 12, pool: 2}}", "image", 8, 12, {8, 8, 0, 8}},
      {"{image: {name: image_grid, channels: [4, 6], dim: 12}}", "image", 16, 12, {16, 16, 0, 16}},
      {"{audio: {dim: 12}}", "audio", 10, 12, {10, 0, 6, 3}},  // default: audio_frames
      {"{audio: {name: audio_frames, dim: 12, stride: 2, kernel: 5}}", "audio", 5, 12, {5, 0, 3, 2}},
      {"{text: {name: text_tokens, dim: 12}}", "text", 6, 12, {6, 2, 4, 0}},
      {"{text: {name: text_tokens, dim: 12, max_len: 3}}", "text", 3, 12, {3, 2, 3, 0}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.yaml);
    auto s = mk(c.yaml, c.mod);
    EXPECT_EQ(s->out_dim(), c.dim);
    auto f = s->forward(b.mods.at(c.mod));
    ASSERT_EQ(f.x.sizes(), (std::vector<int64_t>{4, c.T, c.dim}));
    EXPECT_TRUE(torch::equal(f.lengths, torch::tensor(c.lengths, torch::kLong)));
    // steps at or past each row's length (all steps of absent rows) are zero
    auto pad = nn::padding_mask(f.lengths, c.T).unsqueeze(-1).expand_as(f.x);
    EXPECT_EQ(f.x.masked_select(pad).abs().sum().item<float>(), 0.f);
    EXPECT_GT(f.x.abs().sum().item<float>(), 0.f);
  }
  // a batch where nobody has the modality: data undefined -> zeros, length 0
  ModalityBatch none;
  none.present = torch::zeros({4}, torch::kBool);
  none.lengths = torch::zeros({4}, torch::kLong);
  auto f = mk("{}", "audio")->forward(none);
  EXPECT_EQ(f.x.sizes(), (std::vector<int64_t>{4, 1, 32}));
  EXPECT_EQ(f.lengths.sum().item<int64_t>(), 0);
  // series frames
  nn::EncoderContext sctx;
  sctx.modality = "series";
  sctx.series_channels = 2;
  ModalityBatch se;
  se.present = torch::ones({2}, torch::kBool);
  se.lengths = torch::tensor({5, 2}, torch::kLong);
  se.data = torch::randn({2, 5, 2});
  auto sf = nn::make_sequence(Config::from_string("{series: {stride: 2, dim: 4}}"), sctx)->forward(se);
  EXPECT_EQ(sf.x.sizes(), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_TRUE(torch::equal(sf.lengths, torch::tensor({3, 1}, torch::kLong)));
}

TEST(Temporal, FrontEndForTheWrongModalityIsAnInputError) {
  auto ctx = context({"audio"});
  EXPECT_THROW(nn::make_sequence(Config::from_string("{audio: {name: image_rows}}"), ctx.encoders.at("audio")),
               InputError);
  EXPECT_THROW(nn::make_sequence(Config::from_string("{audio: {name: nope}}"), ctx.encoders.at("audio")), InputError);
  EXPECT_THROW(nn::make_sequence(Config::from_string("{audio: {kernel: 2}}"), ctx.encoders.at("audio")), InputError);
}

TEST(Temporal, GatedMemoryFollowsTheFormulas) {
  torch::manual_seed(3);
  nn::DeltaMemoryAttention att(nn::DeltaMemoryAttentionOptions{6, 5, 0.0});
  nn::GatedMemory mem(nn::GatedMemoryOptions{6, 4, 5, true, 0.0});
  auto c_hat = torch::randn({2, 6});
  auto a = att->forward(c_hat);
  // a / ĉ is a softmax: positive, sums to 1 per row
  auto w = a / c_hat;
  EXPECT_TRUE((w > 0).all().item<bool>());
  EXPECT_LT(max_abs_diff(w.sum(1), torch::ones({2})), 1e-5);
  auto u0 = torch::randn({2, 4});
  auto u1 = mem->forward(a, u0);
  ASSERT_EQ(u1.sizes(), (std::vector<int64_t>{2, 4}));
  // with both gates at 1 the memory is u_{t-1} + tanh(D_u(a)): bound by |u_{t-1}| + 1
  EXPECT_TRUE(((u1.abs() - u0.abs()) <= 1.0 + 1e-6).all().item<bool>());
}

// ---------------------------------------------------------------- mult

const char* kMulT = R"(
name: mult
sequences:
  image: {name: image_rows, dim: 12}
  audio: {name: audio_frames, dim: 10, stride: 2}
  text: {name: text_tokens, dim: 8}
  series: {name: series_frames}
dim: 16
heads: 2
layers: 2
self_layers: 1
dropout: 0.0
head: {hidden: [16], dropout: 0.0}
)";

TEST(MulT, ShapesGradientsOnEveryParameterUnequalLengthsAndAbsentModalities) {
  auto m = build(kMulT, context());
  auto* mult = dynamic_cast<models::MulTImpl*>(m.get());
  ASSERT_NE(mult, nullptr);
  m->train();
  auto b = toy_batch();
  auto out = m->forward(b);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{4, 3}));
  ASSERT_TRUE(torch::isfinite(out).all().item<bool>());
  torch::nn::functional::cross_entropy(out, b.labels).backward();
  expect_all_gradients(*m);
  // per-target vectors: zero where the target modality is absent
  torch::NoGradGuard ng;
  auto v = mult->encode(b);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].size(1), 2 * 16);  // (M-1)·dim
  EXPECT_EQ(v[0][2].abs().sum().item<float>(), 0.f);  // image absent in row 2
  EXPECT_EQ(v[1][1].abs().sum().item<float>(), 0.f);  // audio absent in row 1
  EXPECT_EQ(v[2][3].abs().sum().item<float>(), 0.f);  // text absent in row 3
  EXPECT_GT(v[0][0].abs().sum().item<float>(), 0.f);
}

TEST(MulT, PaddingLengthDoesNotChangeOutputs) {
  auto m = build(kMulT, context());
  m->eval();
  torch::NoGradGuard ng;
  auto a = m->forward(toy_batch(0)), b = m->forward(toy_batch(5));
  double d = max_abs_diff(a, b);
  std::printf("[ masking  ] mult: max diff with 5 more padding steps %.3g\n", d);
  EXPECT_LE(d, 1e-5);
}

TEST(MulT, BatchWithoutAModalityAndSingleModality) {
  auto m = build(kMulT, context());
  m->eval();
  torch::NoGradGuard ng;
  auto b = toy_batch();
  auto& au = b.mods["audio"];
  au.data = torch::Tensor();  // nobody in this batch has audio
  au.present = torch::zeros({4}, torch::kBool);
  au.lengths = torch::zeros({4}, torch::kLong);
  auto out = m->forward(b);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{4, 3}));
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());

  auto one = build(kMulT, context({"audio"}));
  auto o1 = one->forward(toy_batch());
  EXPECT_EQ(o1.sizes(), (std::vector<int64_t>{4, 3}));
  EXPECT_TRUE(torch::isfinite(o1).all().item<bool>());
}

TEST(MulT, BadOptionsAreInputErrors) {
  EXPECT_THROW(build("{name: mult, dim: 10, heads: 4}", context()), InputError);
  EXPECT_THROW(build("{name: mult, proj_kernel: 2}", context()), InputError);
  EXPECT_THROW(build("{name: mult, layers: 0}", context()), InputError);
}

// ---------------------------------------------------------------- mfn

const char* kMFN = R"(
name: mfn
sequences:
  image: {name: image_grid, channels: [4], dim: 6}
  audio: {name: audio_frames, dim: 5}
  text: {name: text_tokens, dim: 4}
hidden: 8
memory: 12
attn_hidden: 10
steps: 7
dropout: 0.0
head: {hidden: [16], dropout: 0.0}
)";

TEST(MFN, ShapesGradientsOnEveryParameterUnequalLengthsAndAbsentModalities) {
  auto m = build(kMFN, context());
  auto* mfn = dynamic_cast<models::MFNImpl*>(m.get());
  ASSERT_NE(mfn, nullptr);
  m->train();
  auto b = toy_batch();
  auto out = m->forward(b);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{4, 3}));
  ASSERT_TRUE(torch::isfinite(out).all().item<bool>());
  torch::nn::functional::cross_entropy(out, b.labels).backward();
  expect_all_gradients(*m);
  torch::NoGradGuard ng;
  auto z = mfn->encode(b);  // [h_image; h_audio; h_text; u]
  ASSERT_EQ(z.sizes(), (std::vector<int64_t>{4, 3 * 8 + 12}));
  EXPECT_EQ(z[2].slice(0, 0, 8).abs().sum().item<float>(), 0.f);   // image absent in row 2
  EXPECT_EQ(z[1].slice(0, 8, 16).abs().sum().item<float>(), 0.f);  // audio absent in row 1
  EXPECT_EQ(z[3].slice(0, 16, 24).abs().sum().item<float>(), 0.f); // text absent in row 3
  EXPECT_GT(z.slice(1, 24, 36).abs().min().item<float>(), 0.f);    // memory is live in every row
}

TEST(MFN, PaddingLengthDoesNotChangeOutputsAndGateVariantsBuild) {
  auto m = build(kMFN, context());
  m->eval();
  torch::NoGradGuard ng;
  double d = max_abs_diff(m->forward(toy_batch(0)), m->forward(toy_batch(4)));
  std::printf("[ masking  ] mfn: max diff with 4 more padding steps %.3g\n", d);
  EXPECT_LE(d, 1e-5);
  auto plain = build(std::string(kMFN) + "gate_memory: false\n", context());
  EXPECT_EQ(plain->forward(toy_batch()).sizes(), (std::vector<int64_t>{4, 3}));
}

// ---------------------------------------------------------------- mctn

const char* kMCTN = R"(
name: mctn
source: image
target: audio
sequences:
  image: {name: image_rows, dim: 8}
  audio: {dim: 99}
hidden: 12
steps: 9
translation_weight: 0.5
cycle_weight: 0.25
head: {hidden: [16], dropout: 0.0}
)";

TEST(MCTN, ShapesAuxiliaryLossAndGradientsOnEveryParameter) {
  auto m = build(kMCTN, context({"image", "audio"}));
  auto* mctn = dynamic_cast<models::MCTNImpl*>(m.get());
  ASSERT_NE(mctn, nullptr);
  m->train();
  auto b = toy_batch();
  auto out = m->forward(b);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{4, 3}));
  auto aux = m->auxiliary_loss();
  ASSERT_TRUE(aux.defined());
  ASSERT_TRUE(mctn->translation_loss().defined() && mctn->cycle_loss().defined());
  EXPECT_GT(mctn->translation_loss().item<double>(), 0);
  EXPECT_GT(mctn->cycle_loss().item<double>(), 0);
  EXPECT_NEAR(aux.item<double>(),
              0.5 * mctn->translation_loss().item<double>() + 0.25 * mctn->cycle_loss().item<double>(), 1e-6);
  auto loss = torch::nn::functional::cross_entropy(out, b.labels) + aux;
  ASSERT_TRUE(std::isfinite(loss.item<double>()));
  loss.backward();
  expect_all_gradients(*m);
}

TEST(MCTN, TestTimeNeedsOnlyTheSource) {
  auto m = build(kMCTN, context({"image", "audio"}));
  m->eval();
  torch::NoGradGuard ng;
  auto b = toy_batch();
  auto full = m->forward(b);
  EXPECT_FALSE(m->auxiliary_loss().defined());
  Batch src_only;
  src_only.index = b.index;
  src_only.mods["image"] = b.mods.at("image");
  auto out = m->forward(src_only);
  EXPECT_TRUE(torch::equal(out, full));
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  // a row without the source is classified from a zero encoding: its output does not depend on the
  // (ignored) contents of its image slot
  auto other = src_only;
  other.mods["image"].data = other.mods["image"].data.clone();
  other.mods["image"].data[2].normal_();
  EXPECT_TRUE(torch::equal(m->forward(other)[2], out[2]));
}

TEST(MCTN, BadSourceOrTargetIsAnInputError) {
  auto ctx = context();
  EXPECT_THROW(build("{name: mctn, source: image, target: text}", ctx), InputError);
  EXPECT_THROW(build("{name: mctn, source: image, target: image}", ctx), InputError);
  EXPECT_THROW(build("{name: mctn, source: image, target: series}", ctx), InputError);  // not a model modality
  EXPECT_THROW(build("{name: mctn, target: audio}", ctx), InputError);                 // source is required
  // text may be the source
  auto m = build("{name: mctn, source: text, target: audio, hidden: 8, steps: 4}", ctx);
  m->train();
  auto b = toy_batch();
  m->forward(b);
  EXPECT_TRUE(m->auxiliary_loss().defined());
}

// ---------------------------------------------------------------- end to end

TEST(MulT, TrainsTwoEpochsThroughTheCli) {
  auto dir = temp_dir("mult");
  ToyOptions o;
  o.n = 48;
  auto manifest = make_toy_dataset(dir + "/data", o);
  write_file(dir + "/recipe.yaml", R"(
task: classify
seed: 1
threads: 1
data:
  workers: 1
  image: {size: 16}
  audio: {sample_rate: 8000, n_fft: 256, hop: 128, n_mels: 16}
  text: {vocab: 40}
model:
  name: mult
  modalities: [image, audio, text]
  sequences:
    image: {name: image_rows, dim: 16}
    audio: {name: audio_frames, dim: 16, stride: 2}
    text: {name: text_tokens, dim: 16}
  dim: 16
  heads: 2
  layers: 1
  self_layers: 1
  head: {hidden: [16], dropout: 0.1}
train: {epochs: 2, batch_size: 8, lr: 0.003, warmup_steps: 2}
)");
  const std::string run = dir + "/run";
  auto r = run_braid("train " + q(dir + "/recipe.yaml") + " --data " + q(manifest) + " --out " + q(run));
  ASSERT_EQ(r.code, 0) << r.err;
  auto e = run_braid("eval " + q(run) + " --data " + q(manifest) + " --split test --json");
  ASSERT_EQ(e.code, 0) << e.err;
  auto j = last_json_line(e.out);
  ASSERT_TRUE(j.contains("accuracy")) << e.out;
  // the printed accuracy is the share of test samples whose argmax output of model.pt is their label,
  // counted here from the model itself
  auto rc = recount_accuracy(run, manifest, "test");
  EXPECT_EQ(j["n"].get<int64_t>(), 6);
  EXPECT_EQ(rc.n, 6);
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), rc.accuracy()) << rc.correct << " of " << rc.n << " recounted";
  // and on the validation split eval reproduces what training scored for the weights it kept
  ExpectEvalMatchesTrainingValidation(run, manifest);
}
