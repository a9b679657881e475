// The `unicode` model end to end: objective terms, gradients, codebook EMA buffers, CLUB kept out of the
// encoders' gradient, single-modality embedding; `braid train` (task align) + `braid eval --task cmg`.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <sstream>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/models/unicode.h"
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

models::ModelContext context() {
  models::ModelContext ctx;
  ctx.modalities = {"image", "audio", "text"};
  ctx.align = true;
  ctx.encoders["image"] = {"image", 0, 12, 0, 0};
  ctx.encoders["audio"] = {"audio", 0, 0, 6, 0};
  ctx.encoders["text"] = {"text", 30, 0, 0, 0};
  return ctx;
}

data::Batch batch(int64_t B) {
  data::Batch b;
  auto ones = torch::ones({B}, torch::kBool);
  auto lens = [&](int64_t n) { return torch::full({B}, n, torch::kLong); };
  b.mods["image"] = {torch::randn({B, 3, 12, 12}), lens(12), ones};
  b.mods["audio"] = {torch::randn({B, 6, 10}), lens(10), ones};
  b.mods["text"] = {torch::randint(1, 30, {B, 5}), lens(5), ones};
  b.labels = torch::zeros({B}, torch::kLong);
  return b;
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
  data::Batch only;
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
)") + [] {
    std::string s, line;
    std::istringstream in(kModel);
    while (std::getline(in, line))
      if (!line.empty()) s += "  " + line + "\n";
    return s;
  }() + "train: {epochs: 2, batch_size: 8, lr: 0.001, weight_decay: 0, checkpoint_every: 3}\n");
  auto run = dir + "/run";
  auto r = run_braid("train " + q(dir + "/recipe.yaml") + " --data " + q(manifest) + " --out " + q(run));
  ASSERT_EQ(r.code, 0) << r.err;
  auto lines = read_jsonl(run + "/metrics.jsonl");
  bool logged = false;
  for (const auto& j : lines) logged = logged || (j.contains("cpc") && j.contains("ppl_image"));
  EXPECT_TRUE(logged);
  auto e = run_braid("eval " + q(run) + " --data " + q(manifest) + " --task cmg --cmg-epochs 20 --json");
  ASSERT_EQ(e.code, 0) << e.err;
  auto out = e.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  auto j = nlohmann::json::parse(out.substr(out.rfind('\n') + 1));
  EXPECT_EQ(j["pairs"].size(), 9u);
  for (auto& [k, v] : j["pairs"].items()) {
    EXPECT_GE(v["acc"].get<double>(), 0.0) << k;
    EXPECT_LE(v["acc"].get<double>(), 1.0) << k;
  }
  EXPECT_NEAR(j["chance"].get<double>(), 1.0 / 3, 1e-9);
  EXPECT_TRUE(j.contains("codes") && j.contains("code_agreement") && j.contains("mean_r1"));
  EXPECT_NE(e.out.find("image->audio"), std::string::npos);
  braid::remove_tree(dir);
}
