// Uni-Code's changes for shared codes across modalities (issue 20, "Uni-Code"): the per-modality
// normalization of the semantic features before quantization (`semantic_norm`) and the cross-modal
// commitment matched by nearest step (`cross_commit: nearest`) for modalities whose steps are not aligned.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/models/unicode.h"
#include "unicode_fixtures.h"
#include "braid/objectives/codebook.h"

using namespace braid;

namespace {

std::string model_yaml(const std::string& extra) {
  return R"(
name: unicode
steps: 4
dim: 8
hidden: 8
codes: 16
sequences: {image: {name: image_rows, dim: 8}, audio: {name: audio_frames, dim: 8, stride: 2}, text: {name: text_tokens, dim: 8}}
club: {hidden: 8, steps: 1}
cpc: {context: 8, horizon: 1}
)" + extra;
}

models::ModelContext context() { return test::unicode_toy_context(); }

Batch batch(int64_t B) {
  Batch b;
  auto ones = torch::ones({B}, torch::kBool);
  auto lens = [&](int64_t n) { return torch::full({B}, n, torch::kLong); };
  // each modality's inputs with its own offset and scale, as real image / audio / text inputs have
  b.mods["image"] = {3 + 2 * torch::randn({B, 3, 12, 12}), lens(12), ones};
  b.mods["audio"] = {-4 + 0.1 * torch::randn({B, 6, 10}), lens(10), ones};
  b.mods["text"] = {torch::randint(1, 30, {B, 5}), lens(5), ones};
  return b;
}

// Largest |per-dimension mean| and largest |per-dimension variance − 1| of s [B, T, D] over its (row, step) vectors.
std::pair<double, double> moments(const torch::Tensor& s) {
  auto flat = s.detach().reshape({-1, s.size(-1)});
  auto mean = flat.mean(0).abs().max().item<double>();
  auto var = (flat.var(0, /*unbiased=*/false) - 1).abs().max().item<double>();
  return {mean, var};
}

}  // namespace

TEST(UnicodeSharedCodes, SemanticFeaturesOfEveryModalityAreStandardizedBeforeQuantization) {
  torch::manual_seed(0);
  auto b = batch(16);
  {
    models::UnicodeImpl model(Config::from_string(model_yaml("semantic_norm: batch\n"), "norm"), context());
    model.train();
    for (const auto& m : model.modalities()) {
      auto [mean, var] = moments(model.encode(m, b.mods.at(m)).s);
      EXPECT_LT(mean, 1e-4) << m;
      EXPECT_LT(var, 0.1) << m;  // v / (v + ε), ε = 1e-5: a dimension of tiny spread stays a little below 1
    }
    // running statistics at eval time: an eval-mode embedding of one row does not depend on the other rows
    model.eval();
    torch::NoGradGuard ng;
    auto all = model.encode("audio", b.mods.at("audio")).s;
    ModalityBatch one{b.mods.at("audio").data.slice(0, 0, 1), b.mods.at("audio").lengths.slice(0, 0, 1),
                      b.mods.at("audio").present.slice(0, 0, 1)};
    EXPECT_TRUE(torch::allclose(model.encode("audio", one).s, all.slice(0, 0, 1), 1e-5, 1e-5));
  }
  {  // LayerNorm: every vector has zero mean and unit variance over D
    models::UnicodeImpl model(Config::from_string(model_yaml("semantic_norm: layer\n"), "norm"), context());
    auto s = model.encode("image", b.mods.at("image")).s.detach();
    EXPECT_LT(s.mean(-1).abs().max().item<double>(), 1e-4);
  }
  {  // the bare branch (before): the same check fails, so it can fail
    models::UnicodeImpl model(Config::from_string(model_yaml("semantic_norm: none\n"), "norm"), context());
    model.train();
    double worst = 0;
    for (const auto& m : model.modalities()) worst = std::max(worst, moments(model.encode(m, b.mods.at(m)).s).first);
    EXPECT_GT(worst, 1e-2);
  }
}

TEST(UnicodeSharedCodes, NearestCrossCommitmentMatchesHandValuesAndIgnoresStepOrder) {
  objectives::CodebookOptions o;
  o.codes = 4;
  o.dim = 2;
  o.beta = 0.25;
  // two modalities, one row, two steps; each modality sits exactly on its own codes (own term 0)
  auto s0 = torch::tensor({0.f, 0.f, 2.f, 0.f}).reshape({1, 2, 2}).requires_grad_(true);
  auto s1 = torch::tensor({2.f, 1.f, 5.f, 0.f}).reshape({1, 2, 2});
  auto q0 = s0.detach().clone(), q1 = s1.clone();
  o.cross_commit = "nearest";
  objectives::SharedCodebook nearest(o);
  // a=0: nearest squared distances 5 (to (2,1)) and 1 (to (2,1)): mean 3 / D 2 = 1.5; a=1: 1 and 9: 2.5;
  // weight β/(M−1) = 0.25 each -> 0.375 + 0.625
  auto loss = nearest->commitment({s0, s1}, {q0, q1});
  EXPECT_NEAR(loss.item<double>(), 1.0, 1e-6);
  loss.backward();
  // d/ds0_t = 0.25 · 1/(B·T) · 1/D · 2 (s0_t − q1_t*) = 0.125 (s0_t − q1_t*), t* = step 0 of s1 for both steps
  auto want = torch::tensor({-0.25f, -0.125f, 0.f, -0.125f}).reshape({1, 2, 2});
  EXPECT_TRUE(torch::allclose(s0.grad(), want, 1e-6, 1e-6)) << s0.grad();
  o.cross_commit = "position";
  objectives::SharedCodebook position(o);
  // positional: mse((0,0,2,0), (2,1,5,0)) = 14 / 4 = 3.5 per direction, 0.25 · 3.5 · 2
  EXPECT_NEAR(position->commitment({s0.detach(), s1}, {q0, q1}).item<double>(), 1.75, 1e-6);

  // the same content in another step order: "nearest" sees a perfect match, "position" does not
  auto a = torch::randn({3, 4, 2});
  auto b = a.flip({1});
  EXPECT_NEAR(nearest->commitment({a, b}, {a, b}).item<double>(), 0.0, 1e-6);
  EXPECT_GT(position->commitment({a, b}, {a, b}).item<double>(), 0.1);
}

TEST(UnicodeSharedCodes, UnknownNormOrCrossCommitIsAnInputError) {
  auto make = [](const std::string& extra) {
    models::UnicodeImpl m(Config::from_string(model_yaml(extra), "unicode-bad"), context());
  };
  EXPECT_THROW(make("semantic_norm: group\n"), InputError);
  EXPECT_THROW(make("cross_commit: diagonal\n"), InputError);
  EXPECT_NO_THROW(make("semantic_norm: layer\ncross_commit: nearest\n"));
}
