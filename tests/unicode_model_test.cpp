// The `unicode` model end to end: objective terms, gradients, codebook EMA buffers, CLUB kept out of the
// encoders' gradient, single-modality embedding; `braid train` (task align) + `braid eval --task cmg`.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/models/unicode.h"
#include "unicode_fixtures.h"
#include "test_util.h"
#include "braid/core/fs.h"

using namespace braid;
using namespace braid::test;

namespace {

const char* kModel = R"(
name: unicode
steps: 4
dim: 8
hidden: 8
codes: 16
reset_after: 2
recent: 2
sequences: {image: {name: image_rows, dim: 8}, audio: {name: audio_frames, dim: 8, stride: 2}, text: {name: text_tokens, dim: 8}}
club: {hidden: 8, steps: 2}
cpc: {context: 8, horizon: 1}
weights: {recon: 1, commit: 1, club: 1, cpc: 1, cmcm: 1, nce: 1}
)";

models::ModelContext context() { return test::unicode_toy_context(); }

Batch batch(int64_t B) {
  Batch b;
  auto ones = torch::ones({B}, torch::kBool);
  auto lens = [&](int64_t n) { return torch::full({B}, n, torch::kLong); };
  b.mods["image"] = {torch::randn({B, 3, 12, 12}), lens(12), ones};
  b.mods["audio"] = {torch::randn({B, 6, 10}), lens(10), ones};
  b.mods["text"] = {torch::randint(1, 30, {B, 5}), lens(5), ones};
  b.labels = torch::zeros({B}, torch::kLong);
  return b;
}

// kModel (+ extra keys) indented under a recipe's `model:`
std::string model_section(const std::string& extra = "") {
  std::string s, line;
  std::istringstream in(std::string(kModel) + extra);
  while (std::getline(in, line))
    if (!line.empty()) s += "  " + line + "\n";
  return s;
}

}  // namespace

TEST(UnicodeModel, ObjectiveTermsGradientsAndCodebookBuffers) {
  torch::manual_seed(0);
  auto cfg = Config::from_string(kModel, "unicode-test");
  models::UnicodeImpl model(cfg, context());
  model.train();
  auto before = model.codebook()->embedding().clone();
  auto b = batch(6);
  auto loss = model.objective(b);
  ASSERT_TRUE(std::isfinite(loss.item<double>()));
  auto terms = model.loss_terms();
  for (const char* k : {"recon", "commit", "club", "cpc", "cmcm", "nce", "ppl_image", "used_audio", "agree_image_text",
                        "live_codes", "club_nll_text"})
    EXPECT_TRUE(terms.count(k)) << k;
  loss.backward();
  for (const auto& p : model.named_parameters()) {
    const bool club = p.key().rfind("club_", 0) == 0;
    if (club) {
      EXPECT_FALSE(p.value().grad().defined()) << p.key() << ": the encoders' objective must not train CLUB's q";
    } else {  // every encoder / branch / decoder / cpc parameter is reached
      EXPECT_TRUE(p.value().grad().defined() && p.value().grad().abs().sum().item<double>() > 0) << p.key();
    }
  }
  EXPECT_FALSE(torch::equal(before, model.codebook()->embedding()));  // EMA moved the codebook
  // a few more steps: codes unused for 2 updates are reset
  double resets = 0;
  for (int i = 0; i < 3; ++i) {
    model.objective(batch(6));
    resets += model.loss_terms().at("resets");
  }
  EXPECT_GT(resets, 0);
  // single modality at downstream time
  model.eval();
  torch::NoGradGuard ng;
  auto e = model.embed("audio", batch(3).mods.at("audio"));
  ASSERT_EQ(e.sizes(), (torch::IntArrayRef{3, 8}));
  EXPECT_NEAR(e.norm(2, 1).mean().item<double>(), 1.0, 1e-5);
  Batch only;
  only.mods["text"] = batch(2).mods.at("text");
  EXPECT_EQ(model.forward(only).size(0), 2);
}

TEST(UnicodeModel, BadRecipeValuesAreInputErrors) {
  auto bad = [](const std::string& extra) {
    auto cfg = Config::from_string(std::string(kModel) + extra, "unicode-bad");
    models::UnicodeImpl m(cfg, context());
  };
  EXPECT_THROW(bad("teacher: transformer\n"), InputError);
  EXPECT_THROW(bad("decay: 1.5\n"), InputError);
}

// model.private_norm: batch standardizes the private branch p^m over the batch's (row, step) vectors in
// training mode (so a constant private branch cannot satisfy CLUB); none leaves it as the bare branch; a bad
// value is an input error naming the key.
TEST(UnicodeModel, PrivateNormBatchStandardizesThePrivateFeatures) {
  torch::manual_seed(0);
  auto variance = [](models::UnicodeImpl& model, const std::string& m) {
    auto p = model.encode(m, batch(6).mods.at(m)).p.reshape({-1, 8});  // [B·T, D] = [24, 8]
    return std::make_pair(p.var(0, /*unbiased=*/false), p.mean(0));
  };
  models::UnicodeImpl normed(Config::from_string(std::string(kModel) + "private_norm: batch\n", "unicode-pn"),
                             context());
  normed.train();
  for (const char* m : {"image", "audio", "text"}) {
    auto [var, mean] = variance(normed, m);
    EXPECT_NEAR(var.min().item<double>(), 1.0, 1e-2) << m;  // BatchNorm eps 1e-5 vs small raw variances
    EXPECT_NEAR(var.max().item<double>(), 1.0, 1e-2) << m;
    EXPECT_LT(mean.abs().max().item<double>(), 1e-4) << m;
  }
  ASSERT_TRUE(std::isfinite(normed.objective(batch(6)).item<double>()));
  EXPECT_TRUE(normed.loss_terms().count("club"));
  // the default (none) is the bare Linear-ReLU-Linear branch: its variance is far from 1 at initialization
  models::UnicodeImpl bare(Config::from_string(kModel, "unicode-pn-none"), context());
  bare.train();
  EXPECT_EQ(bare.options.private_norm, "none");
  EXPECT_LT(variance(bare, "audio").first.max().item<double>(), 0.5);
  try {
    models::UnicodeImpl bad(Config::from_string(std::string(kModel) + "private_norm: group\n", "unicode-bad"),
                            context());
    ADD_FAILURE() << "private_norm: group was accepted";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("private_norm"), std::string::npos) << what;
    EXPECT_NE(what.find("group"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

// model.club_detach: semantic makes s^m a constant inside CLUB's estimate: with CLUB the only term, no
// gradient reaches the semantic branches (with none it does, also through the straight-through codes of
// club_input: quantized); the private branches get one either way. Bad values are one-line input errors.
TEST(UnicodeModel, ClubDetachSemanticLeavesNoGradientOnTheSemanticBranch) {
  std::string only_club = kModel;  // kModel with CLUB the only nonzero weight (its weights line is the last)
  only_club = only_club.substr(0, only_club.find("weights:")) +
              "weights: {recon: 0, commit: 0, club: 1, cpc: 0, cmcm: 0, nce: 0}\nprivate_norm: batch\n";
  auto grad_sums = [&](const std::string& detach, const std::string& input) {
    torch::manual_seed(0);
    models::UnicodeImpl model(Config::from_string(only_club + "club_detach: " + detach +
                                                      "\nclub_input: " + input + "\n",
                                                  "unicode-cd"),
                              context());
    model.train();
    model.objective(batch(6)).backward();
    EXPECT_GT(std::abs(model.loss_terms().at("club")), 0) << detach << " " << input;
    std::map<std::string, double> sum;  // per branch prefix: Σ |grad| over its parameters
    for (const auto& p : model.named_parameters())
      for (const char* prefix : {"semantic_", "specific_"})
        if (p.key().rfind(prefix, 0) == 0 && p.value().grad().defined())
          sum[prefix] += p.value().grad().abs().sum().item<double>();
    return sum;
  };
  for (const char* input : {"continuous", "quantized"}) {
    auto detached = grad_sums("semantic", input);
    EXPECT_EQ(detached["semantic_"], 0.0) << input;
    EXPECT_GT(detached["specific_"], 0.0) << input;
    auto attached = grad_sums("none", input);
    EXPECT_GT(attached["semantic_"], 0.0) << input;
    EXPECT_GT(attached["specific_"], 0.0) << input;
  }
  for (const auto& [key, value] : {std::pair{"club_detach", "private"}, std::pair{"club_input", "codes"}}) {
    try {
      models::UnicodeImpl bad(
          Config::from_string(std::string(kModel) + key + ": " + value + "\n", "unicode-bad"), context());
      ADD_FAILURE() << key << ": " << value << " was accepted";
    } catch (const InputError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(key), std::string::npos) << what;
      EXPECT_NE(what.find(value), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  }
}

// A run trained before model.semantic_norm existed (no normalization, no such key in its
// recipe.resolved.yaml) still opens: as semantic_norm none, not today's default.
TEST(UnicodeModel, RunFromBeforeSemanticNormStillOpens) {
  auto dir = temp_dir("unicode_old");
  ToyOptions o;
  o.n = 24;
  auto manifest = make_toy_dataset(dir + "/data", o);
  const std::string model = model_section("semantic_norm: none\n");
  write_file(dir + "/recipe.yaml", "task: align\nseed: 1\nthreads: 1\ndata:\n  workers: 1\n  image: {size: 12}\n"
             "  audio: {sample_rate: 8000, n_fft: 256, hop: 128, n_mels: 6}\n  text: {vocab: 40}\nmodel:\n" + model +
             "train: {epochs: 1, batch_size: 8}\n");
  auto run = dir + "/run";
  auto r = run_braid("train " + q(dir + "/recipe.yaml") + " --data " + q(manifest) + " --out " + q(run));
  ASSERT_EQ(r.code, 0) << r.err;
  // the recipe an old run wrote: no semantic_norm line
  const std::string resolved = read_file(run + "/recipe.resolved.yaml");
  std::string old;
  {
    std::string line;
    std::istringstream in(resolved);
    while (std::getline(in, line))
      if (line.find("semantic_norm:") == std::string::npos) old += line + "\n";
  }
  ASSERT_NE(old, resolved);
  write_file(run + "/recipe.resolved.yaml", old);
  auto e = run_braid("eval " + q(run) + " --data " + q(manifest) + " --threads 1 --json");
  EXPECT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.err.find("semantic_norm: none"), std::string::npos) << e.err;
  braid::remove_tree(dir);
}

TEST(UnicodeModel, TrainAlignThenEvalCmgPrintsEveryOrderedPair) {
  auto dir = temp_dir("unicode");
  ToyOptions o;
  o.n = 48;
  auto manifest = make_toy_dataset(dir + "/data", o);
  write_file(dir + "/recipe.yaml", std::string(R"(
task: align
seed: 1
threads: 1
data:
  workers: 1
  image: {size: 12}
  audio: {sample_rate: 8000, n_fft: 256, hop: 128, n_mels: 6}
  text: {vocab: 40}
model:
)") + model_section() + "train: {epochs: 2, batch_size: 8, lr: 0.001, weight_decay: 0, checkpoint_every: 3}\n");
  auto run = dir + "/run";
  auto r = run_braid("train " + q(dir + "/recipe.yaml") + " --data " + q(manifest) + " --out " + q(run));
  ASSERT_EQ(r.code, 0) << r.err;
  auto lines = read_jsonl(run + "/metrics.jsonl");
  bool logged = false;
  for (const auto& j : lines) logged = logged || (j.contains("cpc") && j.contains("ppl_image"));
  EXPECT_TRUE(logged);
  const std::string cmg = "eval " + q(run) + " --data " + q(manifest) + " --task cmg --cmg-epochs 300 --threads 1 --json";
  auto e = run_braid(cmg);
  ASSERT_EQ(e.code, 0) << e.err;
  auto j = last_json_line(e.out);
  EXPECT_EQ(j["pairs"].size(), 9u);
  // 48 toy samples: 30 train, 6 test (two per class); every sample has all three modalities
  double cross = 0;
  for (auto& [k, v] : j["pairs"].items()) {
    EXPECT_EQ(v["n_train"].get<int64_t>(), 30) << k;
    EXPECT_EQ(v["n_test"].get<int64_t>(), 6) << k;
    EXPECT_NEAR(v["majority"].get<double>(), 1.0 / 3, 1e-12) << k;
    const double hits = v["acc"].get<double>() * 6;  // a share of the 6 test samples
    EXPECT_NEAR(hits, std::round(hits), 1e-9) << k << ": " << v.dump();
    auto arrow = k.find("->");
    if (k.substr(0, arrow) != k.substr(arrow + 2)) cross += v["acc"].get<double>() / 6;
  }
  EXPECT_NEAR(j["mean_cross"].get<double>(), cross, 1e-12);
  // the toy classes are easy (tones of class-dependent pitch, class-coloured squares, class words): on
  // some modality the head trained and tested on that modality beats answering one class (2 of 6).
  // (After this short training it is audio; image and text embeddings still score chance.)
  double best_self = 0;
  for (const char* m : {"image", "audio", "text"})
    best_self = std::max(best_self, j["pairs"][std::string(m) + "->" + m]["acc"].get<double>());
  EXPECT_GT(best_self, 0.5) << j["pairs"].dump();
  // the same evaluation again gives the same numbers (frozen model, seeded heads)
  auto again = run_braid(cmg);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(last_json_line(again.out)["pairs"], j["pairs"]);
  EXPECT_NEAR(j["chance"].get<double>(), 1.0 / 3, 1e-9);
  EXPECT_TRUE(j.contains("codes") && j.contains("code_agreement") && j.contains("mean_r1"));
  EXPECT_NE(e.out.find("image->audio"), std::string::npos);
  braid::remove_tree(dir);
}
