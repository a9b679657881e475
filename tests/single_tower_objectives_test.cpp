// single_tower's masked-image objectives (issue 20): MRFR regresses the pixels of masked patches and
// MRC classifies their colour bin; both enter the loss with their recipe weights, are finite, send
// gradients into the patch embedding, and are absent (no term, no parameters) at weight 0.
// The loss functions themselves (mrfr_loss, mrc_loss) are checked on hand-computed cases in
// alignment_objectives_test.cpp.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "braid/core/config.h"
#include "braid/models/model.h"
#include "braid/models/single_tower.h"
#include "braid/nn/encoder.h"
#include "test_util.h"

using namespace braid;
using namespace braid::test;

namespace {

const char* kBase = "name: single_tower\ndim: 16\nheads: 2\ndepth: 1\npatch: 4\nmax_text: 8\nembed_dim: 8\ndropout: 0\n";

models::ModelPtr build(const std::string& extra) {
  models::ModelContext ctx;
  ctx.modalities = {"image", "text"};
  ctx.task = models::Task::Align;
  for (const auto& m : ctx.modalities) {
    nn::EncoderContext e;
    e.modality = m;
    e.vocab_size = 30;
    e.image_size = 16;
    e.image_mean = {0.5, 0.5, 0.5};
    e.image_std = {0.5, 0.5, 0.5};
    ctx.encoders[m] = e;
  }
  return models::model_registry().make(Config::from_string(std::string(kBase) + extra, "model.yaml"), ctx);
}

// B image-text rows: 16-px images in [-1, 1], 6 text ids in [1, 30).
Batch make_batch(int64_t B, uint64_t seed = 0) {
  torch::manual_seed(seed);
  Batch b;
  for (int64_t i = 0; i < B; ++i) b.index.push_back(i);
  auto all = torch::ones({B}, torch::kBool);
  b.mods["image"] = {torch::rand({B, 3, 16, 16}) * 2 - 1, torch::ones({B}, torch::kLong), all};
  b.mods["text"] = {torch::randint(1, 30, {B, 6}, torch::kLong), torch::full({B}, 6, torch::kLong), all};
  return b;
}

// B rows whose images are one flat colour each (plus a little noise): a masked patch can be read off
// the unmasked ones.
Batch flat_colour_batch(int64_t B, uint64_t seed) {
  auto b = make_batch(B, seed);
  auto colour = torch::rand({B, 3, 1, 1}) * 2 - 1;
  b.mods["image"].data = colour.expand({B, 3, 16, 16}) + 0.02 * torch::randn({B, 3, 16, 16});
  return b;
}

std::vector<std::string> param_names(const models::ModelPtr& m) {
  std::vector<std::string> out;
  for (const auto& p : m->named_parameters()) out.push_back(p.key());
  return out;
}

torch::Tensor grad_of(const models::ModelPtr& m, const std::string& name) {
  auto p = m->named_parameters().find(name);
  EXPECT_NE(p, nullptr) << name;
  return p ? p->grad() : torch::Tensor();
}

}  // namespace

TEST(SingleTowerObjectives, TermsEnterTheLossWithTheirWeights) {
  auto m = build("weights: {itc: 1, itm: 0.5, mlm: 0.25, mrfr: 3, mrc: 2}\n");
  auto loss = m->objective(make_batch(4));
  auto t = m->loss_terms();
  for (const char* k : {"itc", "itm", "mlm", "mrfr", "mrc", "mrc_acc"}) {
    ASSERT_TRUE(t.count(k)) << k;
    EXPECT_TRUE(std::isfinite(t[k])) << k;
  }
  EXPECT_GT(t["mrfr"], 0);
  EXPECT_GT(t["mrc"], 0);
  EXPECT_GE(t["mrc_acc"], 0);
  EXPECT_LE(t["mrc_acc"], 1);
  const double want = t["itc"] + 0.5 * t["itm"] + 0.25 * t["mlm"] + 3 * t["mrfr"] + 2 * t["mrc"];
  EXPECT_NEAR(loss.item<double>(), want, 1e-4 * std::abs(want));
  // 64 colour classes (4 bins per channel): an untrained head is near ln 64
  EXPECT_NEAR(t["mrc"], std::log(64.0), 1.0);
}

TEST(SingleTowerObjectives, GradientsReachThePatchEmbedding) {
  for (const char* term : {"mrfr", "mrc"}) {
    // every other term weighted 0: a non-zero gradient at the patch embedding comes from this term alone
    auto m = build(std::string("weights: {itc: 0, itm: 0, mlm: 0, ") + term + ": 1}\n");
    m->objective(make_batch(4)).backward();
    for (const std::string& p : {std::string("patch.weight"), std::string("patch_mask"), std::string(term) + ".weight"}) {
      auto g = grad_of(m, p);
      ASSERT_TRUE(g.defined()) << term << ": no gradient at " << p;
      EXPECT_TRUE(torch::isfinite(g).all().item<bool>()) << term << " " << p;
      EXPECT_GT(g.abs().sum().item<double>(), 0) << term << ": zero gradient at " << p;
    }
  }
}

TEST(SingleTowerObjectives, AZeroWeightRemovesTheTermAndItsParameters) {
  auto plain = build("");  // the default: mrfr and mrc weighted 0
  auto names = param_names(plain);
  for (const auto& n : names) {
    EXPECT_EQ(n.rfind("mrfr", 0), std::string::npos) << n;
    EXPECT_EQ(n.rfind("mrc", 0), std::string::npos) << n;
    EXPECT_NE(n, "patch_mask");
  }
  plain->objective(make_batch(4));
  EXPECT_FALSE(plain->loss_terms().count("mrfr"));
  EXPECT_FALSE(plain->loss_terms().count("mrc"));
  EXPECT_TRUE(plain->loss_terms().count("mlm"));

  auto only_mrfr = build("weights: {mrfr: 1, mrc: 0}\n");
  only_mrfr->objective(make_batch(4));
  EXPECT_TRUE(only_mrfr->loss_terms().count("mrfr"));
  EXPECT_FALSE(only_mrfr->loss_terms().count("mrc"));
  EXPECT_FALSE(only_mrfr->named_parameters().contains("mrc.weight"));

  // ITM and MLM at weight 0 are not computed either; their heads get a zero gradient (not none), so
  // weight decay and data-parallel runs treat them as when the term was weighted 0
  auto itc_only = build("weights: {itm: 0, mlm: 0}\n");
  itc_only->objective(make_batch(4)).backward();
  auto t = itc_only->loss_terms();
  EXPECT_TRUE(t.count("itc"));
  EXPECT_FALSE(t.count("itm"));
  EXPECT_FALSE(t.count("itm_acc"));
  EXPECT_FALSE(t.count("mlm"));
  for (const char* p : {"itm.weight", "itm.bias", "mlm.weight", "mlm.bias"}) {
    auto g = grad_of(itc_only, p);
    ASSERT_TRUE(g.defined()) << p;
    EXPECT_EQ(g.abs().sum().item<double>(), 0) << p;
  }

}

TEST(SingleTowerObjectives, PatchPixelsAndColourBinsOnAHandMadeImage) {
  auto m = build("weights: {mrc: 1}\n");
  auto* st = dynamic_cast<models::SingleTowerImpl*>(m.get());
  ASSERT_NE(st, nullptr);
  // patch order and layout: pixel (c, y, x) of a 16-px image, patch 4 -> patch (y/4)·4 + x/4,
  // feature c·16 + (y%4)·4 + x%4
  auto img = torch::arange(2 * 3 * 16 * 16, torch::kFloat).reshape({2, 3, 16, 16});
  auto px = st->patch_pixels(img);
  ASSERT_EQ(px.sizes(), (std::vector<int64_t>{2, 16, 48}));
  for (auto [b, c, y, x] : std::vector<std::array<int64_t, 4>>{{0, 0, 0, 0}, {0, 2, 5, 9}, {1, 1, 15, 3}, {1, 2, 12, 15}})
    EXPECT_EQ(px[b][(y / 4) * 4 + x / 4][c * 16 + (y % 4) * 4 + x % 4].item<float>(), img[b][c][y][x].item<float>())
        << b << " " << c << " " << y << " " << x;

  // colours in [0, 1], normalized with mean 0.5, std 0.5 as the data pipeline does
  auto rgb = torch::ones({1, 3, 16, 16});                       // white: bins (3, 3, 3) -> 63
  rgb.slice(2, 0, 4).slice(3, 0, 4).select(1, 1).fill_(0);      // patch 0: red (1, 0, 0) -> 48
  rgb.slice(2, 0, 4).slice(3, 0, 4).select(1, 2).fill_(0);
  auto p1 = rgb.slice(2, 0, 4).slice(3, 4, 8);                  // patch 1: (0.3, 0.6, 0.9) -> (1, 2, 3) -> 27
  p1.select(1, 0).fill_(0.3);
  p1.select(1, 1).fill_(0.6);
  p1.select(1, 2).fill_(0.9);
  auto p4 = rgb.slice(2, 4, 8).slice(3, 0, 4);                  // patch 4: half black, half white columns:
  p4.slice(3, 0, 2).fill_(0);                                   // mean 0.5 each channel -> bin 2 -> 42
  auto bins = st->colour_bins(st->patch_pixels((rgb - 0.5) / 0.5));
  ASSERT_EQ(bins.sizes(), (std::vector<int64_t>{1, 16}));
  EXPECT_EQ(bins[0][0].item<int64_t>(), 48);
  EXPECT_EQ(bins[0][1].item<int64_t>(), 27);
  EXPECT_EQ(bins[0][4].item<int64_t>(), 42);
  EXPECT_EQ(bins[0][15].item<int64_t>(), 63);
  // values outside [0, 1] after un-normalizing are clamped into the end bins
  EXPECT_EQ(st->colour_bins(st->patch_pixels(torch::full({1, 3, 16, 16}, -7.0)))[0][0].item<int64_t>(), 0);
}

TEST(SingleTowerObjectives, TrainingOnOneBatchLowersBothTerms) {
  auto m = build("weights: {itc: 0, itm: 0, mlm: 0, mrfr: 1, mrc: 1}\npatch_mask_prob: 0.5\n");
  auto batch = flat_colour_batch(8, 1);
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(1e-2));
  torch::manual_seed(0);
  m->objective(batch);
  auto first = m->loss_terms();
  std::map<std::string, double> last;
  for (int s = 0; s < 60; ++s) {
    opt.zero_grad();
    m->objective(batch).backward();
    opt.step();
    last = m->loss_terms();
  }
  // each image is one colour: the unmasked patches tell the masked ones' pixels and bin
  EXPECT_LT(last["mrfr"], 0.7 * first["mrfr"]) << first["mrfr"] << " -> " << last["mrfr"];
  EXPECT_LT(last["mrc"], 0.7 * first["mrc"]) << first["mrc"] << " -> " << last["mrc"];
}

TEST(SingleTowerObjectives, BadRecipeValuesAreOneLineErrors) {
  ExpectInputError([] { build("weights: {mrfr: -1}\n"); }, "model.yaml", "weights.mrfr");
  ExpectInputError([] { build("mrc_bins: 1\n"); }, "model.yaml", "mrc_bins");
  ExpectInputError([] { build("patch_mask_prob: 0\n"); }, "model.yaml", "patch_mask_prob");
}

TEST(SingleTowerObjectives, TrainingThroughTheCliLogsBothTerms) {
  TempDir dir("st_mrfr");
  ToyOptions o;
  o.n = 32;
  o.audio = false;
  auto manifest = make_toy_dataset((dir.path / "data").string(), o);
  auto recipe = dir.file("recipe.yaml", R"(
task: align
seed: 1
threads: 1
data: {workers: 1, image: {size: 16}, text: {vocab: 40}, val_split: none}
model: {name: single_tower, dim: 16, depth: 1, heads: 2, patch: 4, max_text: 8, embed_dim: 8,
        weights: {itc: 1, itm: 1, mlm: 1, mrfr: 1, mrc: 0.5}}
train: {epochs: 1, batch_size: 8, checkpoint_every: 100}
)");
  const std::string run = (dir.path / "run").string();
  auto r = run_braid("train " + q(recipe) + " --data " + q(manifest) + " --out " + q(run));
  ASSERT_EQ(r.code, 0) << r.err;
  int lines = 0;
  for (const auto& j : read_jsonl(run + "/metrics.jsonl")) {
    if (!j.contains("mlm")) continue;  // validation lines
    ++lines;
    for (const char* k : {"mrfr", "mrc", "mrc_acc"}) {
      ASSERT_TRUE(j.contains(k)) << k << " missing from " << j.dump();
      EXPECT_TRUE(std::isfinite(j[k].get<double>())) << j.dump();
    }
  }
  EXPECT_GT(lines, 0);
}
