// Issue 20, "fusion that never hurts": the confidence-weighted decision fusion (late_conf,
// nn/fusion/late_confidence.h) on hand-made log-probabilities, and `braid data filter`, which
// builds the held-out-style and missing-modality manifests of scripts/style_shift.sh.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <filesystem>
#include <string>
#include <vector>

#include "braid/core/error.h"
#include "braid/data/filter.h"
#include "braid/data/manifest.h"
#include "braid/nn/fusion/late_confidence.h"
#include "braid/run/run_dir.h"
#include "test_util.h"

using namespace braid::test;
namespace fs = std::filesystem;

namespace {

// [1, M, K] log-probabilities from rows of probabilities
torch::Tensor logp_of(const std::vector<std::vector<double>>& probs) {
  std::vector<torch::Tensor> rows;
  for (const auto& p : probs) rows.push_back(torch::tensor(p, torch::kDouble));
  return torch::stack(rows).log().unsqueeze(0);
}

double confidence_by_hand(const std::vector<double>& p) {
  double h = 0;
  for (double x : p) h -= x * std::log(x);
  return 1.0 - h / std::log(static_cast<double>(p.size()));
}

}  // namespace

// Expert A is sure of class 0; expert B hesitates between 1 and 2 and gives class 0 almost nothing.
// The plain product of experts (power 0) follows B's veto to class 1; weighting by confidence
// lets the sure expert decide, with weights and fused log-probabilities computed here by hand.
TEST(LateConfidence, ASureExpertOutweighsAnUnsureOne) {
  const std::vector<double> a{0.9, 0.05, 0.05}, b{0.01, 0.5, 0.49};
  auto logp = logp_of({a, b});
  auto present = torch::ones({1, 2}, torch::kDouble);

  const double ca = confidence_by_hand(a), cb = confidence_by_hand(b);
  ASSERT_GT(ca, cb);
  auto c = braid::nn::expert_confidence(logp);
  EXPECT_NEAR(c[0][0].item<double>(), ca, 1e-12);
  EXPECT_NEAR(c[0][1].item<double>(), cb, 1e-12);

  auto w = braid::nn::confidence_weights(logp, present, 1.0);
  EXPECT_NEAR(w[0][0].item<double>(), ca / (ca + cb), 1e-12);
  EXPECT_NEAR(w[0][1].item<double>(), cb / (ca + cb), 1e-12);

  auto fused = braid::nn::confidence_fuse(logp, present, 1.0);
  std::vector<double> z(3);
  double norm = 0;
  for (int k = 0; k < 3; ++k) {
    z[k] = (ca * std::log(a[k]) + cb * std::log(b[k])) / (ca + cb);
    norm += std::exp(z[k]);
  }
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(fused[0][k].item<double>(), z[k] - std::log(norm), 1e-12) << "class " << k;
  EXPECT_EQ(fused.argmax(1).item<int64_t>(), 0);

  // power 0: equal weights, the geometric mean — B's near-zero on class 0 wins
  auto plain = braid::nn::confidence_fuse(logp, present, 0.0);
  EXPECT_EQ(plain.argmax(1).item<int64_t>(), 1);
  // a larger power moves the weight further to the sure expert
  EXPECT_GT(braid::nn::confidence_weights(logp, present, 4.0)[0][0].item<double>(), w[0][0].item<double>());
}

// An absent expert has no say whatever its outputs (even -inf and NaN-prone ones), nothing present
// gives the uniform distribution, rows are independent, and a uniform expert's confidence is 0.
TEST(LateConfidence, AnAbsentExpertIsIgnored) {
  auto logp = torch::stack({logp_of({{0.7, 0.2, 0.1}, {0.001, 0.001, 0.998}})[0],
                            logp_of({{0.7, 0.2, 0.1}, {0.001, 0.001, 0.998}})[0],
                            logp_of({{0.2, 0.3, 0.5}, {1.0 / 3, 1.0 / 3, 1.0 / 3}})[0]});  // [3, 2, 3]
  logp[1][1][0] = -std::numeric_limits<double>::infinity();
  auto present = torch::tensor({1.0, 0.0, 0.0, 0.0, 1.0, 1.0}, torch::kDouble).view({3, 2});
  auto fused = braid::nn::confidence_fuse(logp, present, 2.0);
  ASSERT_TRUE(torch::isfinite(fused).all().item<bool>()) << fused;
  // row 0: only A is present, so the fused distribution is A's own
  EXPECT_TRUE(AllClose(fused[0], logp[0][0], 1e-12, "row 0 = expert A"));
  // row 1: nothing present -> uniform
  EXPECT_TRUE(AllClose(fused[1], torch::full({3}, -std::log(3.0), torch::kDouble), 1e-12, "row 1 uniform"));
  auto w = braid::nn::confidence_weights(logp, present, 2.0);
  EXPECT_DOUBLE_EQ(w[0][1].item<double>(), 0.0);
  EXPECT_DOUBLE_EQ(w[1].sum().item<double>(), 0.0);
  // a uniform expert has confidence 0
  EXPECT_NEAR(braid::nn::expert_confidence(logp)[2][1].item<double>(), 0.0, 1e-12);
  // the weights are a rule, not a learned path: the gradient reaches the experts' log-probabilities
  // only as w · d(log_softmax), so an absent expert gets none
  auto x = logp.clone().nan_to_num(0.0, 0.0, -50.0).requires_grad_(true);
  braid::nn::confidence_fuse(x, present, 1.0).select(1, 0).sum().backward();
  EXPECT_EQ(x.grad()[0][1].abs().sum().item<double>(), 0.0);
  EXPECT_GT(x.grad()[0][0].abs().sum().item<double>(), 0.0);
}

TEST(LateConfidence, BadShapesAndPowersAreRefused) {
  auto logp = torch::zeros({2, 3, 4});
  EXPECT_THROW(braid::nn::confidence_fuse(logp, torch::ones({2, 2}), 1.0), c10::Error);
  EXPECT_THROW(braid::nn::confidence_fuse(logp, torch::ones({2, 3}), -1.0), c10::Error);
  EXPECT_THROW(braid::nn::confidence_fuse(torch::zeros({2, 3, 1}), torch::ones({2, 3}), 1.0), c10::Error);
}

// Temperature scaling (late_conf's `calibrate: temperature`): an expert that is right 60 % of the
// time with logit gaps of 8 is far too sure; the fitted temperature is > 1, lowers the NLL, is the
// minimum (a step either way is worse) and leaves every row's argmax where it was. An expert right
// 95 % of the time with gaps of 0.5 is too unsure: T < 1.
TEST(LateConfidence, FittedTemperatureLowersNllAndKeepsTheArgmax) {
  torch::manual_seed(3);
  const int64_t n = 400, k = 4;
  auto make = [&](double gap, double right) {
    auto pred = torch::randint(k, {n}, torch::kLong);
    auto logits = torch::randn({n, k}, torch::kDouble) * 0.1;
    logits.scatter_add_(1, pred.unsqueeze(1), torch::full({n, 1}, gap, torch::kDouble));
    // the label is the predicted class for the first `right` share of rows, another class after that
    auto labels = pred.clone();
    const auto wrong = static_cast<int64_t>(n * (1 - right));
    labels.narrow(0, n - wrong, wrong).add_(1).remainder_(k);
    return std::make_pair(logits, labels);
  };
  auto [over, y_over] = make(8.0, 0.6);
  const double t = braid::nn::fit_temperature(over, y_over);
  EXPECT_GT(t, 1.5);
  const double nll1 = braid::nn::temperature_nll(over, y_over, 1.0), nllt = braid::nn::temperature_nll(over, y_over, t);
  EXPECT_LT(nllt, nll1 - 0.5) << "T " << t;
  EXPECT_LE(nllt, braid::nn::temperature_nll(over, y_over, t * 1.05) + 1e-12);
  EXPECT_LE(nllt, braid::nn::temperature_nll(over, y_over, t / 1.05) + 1e-12);
  EXPECT_TRUE(torch::equal(torch::log_softmax(over / t, -1).argmax(1), over.argmax(1)));

  auto [under, y_under] = make(0.5, 0.95);
  const double tu = braid::nn::fit_temperature(under, y_under);
  EXPECT_LT(tu, 0.7);
  EXPECT_LT(braid::nn::temperature_nll(under, y_under, tu), braid::nn::temperature_nll(under, y_under, 1.0));

  // inside the bounds, 1 without rows, and shapes checked
  EXPECT_GE(braid::nn::fit_temperature(over * 100, over.argmax(1)), braid::nn::kMinTemperature);
  EXPECT_DOUBLE_EQ(braid::nn::fit_temperature(torch::zeros({0, k}), torch::zeros({0}, torch::kLong)), 1.0);
  EXPECT_THROW(braid::nn::fit_temperature(torch::zeros({3, 1}), torch::zeros({3}, torch::kLong)), c10::Error);
  EXPECT_THROW(braid::nn::fit_temperature(torch::zeros({3, 2}), torch::zeros({2}, torch::kLong)), c10::Error);
}

// `calibrate: rank`: a confidence is replaced by its rank among the expert's validation
// confidences. Expert A is usually sure (reference 0.6..0.9), B usually unsure (0.0..0.3): at the
// same raw confidence 0.5, B is at the top of its range and A at the bottom, so B gets the weight.
TEST(LateConfidence, RankedConfidenceWeighsAnExpertAgainstItsOwnHabits) {
  auto ranks = torch::stack({torch::tensor({0.6, 0.7, 0.8, 0.9}, torch::kDouble),
                             torch::tensor({0.0, 0.1, 0.2, 0.3}, torch::kDouble)});  // [M = 2, Q = 4]
  auto c = torch::tensor({0.5, 0.5, 0.75, 0.05, 0.95, 0.0}, torch::kDouble).view({3, 2});
  auto r = braid::nn::confidence_rank(c, ranks);
  EXPECT_TRUE(AllClose(r, torch::tensor({0.0, 1.0, 0.5, 0.25, 1.0, 0.25}, torch::kDouble).view({3, 2}), 1e-12, "ranks"));
  // two experts with the same raw confidence: raw weights are equal, ranked ones all B's
  const std::vector<double> a{0.8, 0.1, 0.1}, b{0.1, 0.8, 0.1};
  auto logp = logp_of({a, b});
  auto present = torch::ones({1, 2}, torch::kDouble);
  auto raw = braid::nn::confidence_weights(logp, present, 1.0);
  EXPECT_NEAR(raw[0][0].item<double>(), 0.5, 1e-12);
  const double conf = braid::nn::expert_confidence(logp)[0][0].item<double>();
  ASSERT_GT(conf, 0.3);
  ASSERT_LT(conf, 0.6);
  auto ranked = braid::nn::confidence_weights(logp, present, 1.0, ranks);
  EXPECT_GT(ranked[0][1].item<double>(), 0.99);
  EXPECT_EQ(braid::nn::confidence_fuse(logp, present, 1.0, ranks).argmax(1).item<int64_t>(), 1);
  EXPECT_THROW(braid::nn::confidence_rank(c, ranks.narrow(0, 0, 1)), c10::Error);
}

namespace {

// Two styles of three items, one item per split; paths relative to the manifest in `dir`/data.
std::string two_style_manifest(const TempDir& d) {
  fs::create_directories(d.path / "data");
  std::string text;
  const char* splits[] = {"train", "val", "test"};
  for (int i = 0; i < 3; ++i)
    for (const char* style : {"google", "twitter"})
      text += fmt::format(R"({{"id":"e{}-{}","split":"{}","label":"c{}","group":"e{}","text":{{"en":"item {}","zh":"x"}},)"
                          R"("image":"images/{}/e{}.png","audio":"audio/e{}-{}.wav"}})"
                          "\n",
                          i, style, splits[i], i % 2, i, i, style, i, i, style);
  return d.file("data/manifest.jsonl", text);
}

// The toy three-modality late_conf recipe of the CLI tests: `fusion` is its model.fusion map,
// `model_extra` one more model key (or "").
std::string toy_late_conf_recipe(const TempDir& d, const std::string& fusion, const std::string& model_extra,
                                 int epochs) {
  return d.file("r.yaml", fmt::format(R"(
threads: 1
data: {{image: {{size: 8}}, audio: {{sample_rate: 8000, n_fft: 256, hop: 128, n_mels: 8}}, text: {{vocab: 30}}}}
model:
  name: fusion_classifier
  encoders:
    image: {{name: image_cnn, channels: [4], dim: 8}}
    audio: {{name: audio_cnn, channels: [4], dim: 8}}
    text: {{name: text_bow, embed: 8, dim: 8}}
  fusion: {}
  head: {{hidden: [8]}}
  aux_heads: 1.0
  {}
train: {{epochs: {}, batch_size: 8}}
)",
                                      fusion, model_extra, epochs));
}

}  // namespace

// Held-out style: train and val keep one style, test the other; paths still name the same files
// from the new manifest's directory; key order is kept; a dropped modality is gone.
TEST(ManifestFilter, KeepsOneStylePerSplitAndDropsAModality) {
  TempDir d("filter");
  const auto in = two_style_manifest(d);
  braid::data::FilterOptions o;
  o.keep = {braid::data::parse_filter_rule("train,val:image~/google/"),
            braid::data::parse_filter_rule("test:image~/twitter/")};
  const auto out = (d.path / "elsewhere" / "deeper" / "b.jsonl").string();
  auto r = braid::data::filter_manifest(in, out, o);
  EXPECT_EQ(r.read, 6);
  EXPECT_EQ(r.kept, 3);
  EXPECT_EQ(r.per_split.at("test"), 1);

  auto src = braid::data::Manifest::load(in), got = braid::data::Manifest::load(out);
  ASSERT_EQ(got.samples().size(), 3u);
  EXPECT_EQ(got.samples()[0].id, "e0-google");
  EXPECT_EQ(got.samples()[1].id, "e1-google");
  EXPECT_EQ(got.samples()[2].id, "e2-twitter");
  auto canon = [](const std::string& p) { return fs::weakly_canonical(p).string(); };
  EXPECT_EQ(canon(got.samples()[2].image), canon(src.samples()[5].image));
  EXPECT_EQ(canon(got.samples()[2].audio), canon(src.samples()[5].audio));
  // the input's key order, not sorted
  EXPECT_NE(read_file(out).find(R"({"id":"e0-google","split":"train","label":"c0")"), std::string::npos)
      << read_file(out);

  // a missing-modality test set: the same samples without their image
  o.drop = {"image"};
  braid::data::filter_manifest(in, out, o);
  auto noimg = braid::data::Manifest::load(out);
  ASSERT_EQ(noimg.samples().size(), 3u);
  for (const auto& s : noimg.samples()) {
    EXPECT_FALSE(s.has("image")) << s.id;
    EXPECT_TRUE(s.has("audio") && s.has("text")) << s.id;
  }

  // text rules look at every view; a rule with no split list applies everywhere
  braid::data::FilterOptions t;
  t.keep = {braid::data::parse_filter_rule("text~item 1")};
  EXPECT_EQ(braid::data::filter_manifest(in, out, t).kept, 2);
}

TEST(ManifestFilter, BadRulesAndEmptyResultsAreOneLineErrors) {
  TempDir d("filter_bad");
  const auto in = two_style_manifest(d);
  const auto out = d.file("o.jsonl");
  ExpectInputError([] { braid::data::parse_filter_rule("image/google/"); }, "--keep", "KEY~SUBSTRING");
  ExpectInputError([] { braid::data::parse_filter_rule("colour~red"); }, "--keep", "'colour'");
  ExpectInputError([] { braid::data::parse_filter_rule("tset:image~a"); }, "--keep", "'tset'");
  braid::data::FilterOptions none;
  none.keep = {braid::data::parse_filter_rule("id~nothing-like-this")};
  ExpectInputError([&] { braid::data::filter_manifest(in, out, none); }, in, "no sample");
  braid::data::FilterOptions all;
  all.drop = {"image", "audio", "text"};
  ExpectInputError([&] { braid::data::filter_manifest(in, out, all); }, in + ":1", "without any modality");
  braid::data::FilterOptions typo;
  typo.drop = {"images"};
  ExpectInputError([&] { braid::data::filter_manifest(in, out, typo); }, "--drop", "'images'");
  ExpectInputError([&] { braid::data::filter_manifest(in, in, braid::data::FilterOptions{}); }, in, "input manifest");
  EXPECT_TRUE(fs::exists(in));
}

// Through the CLI: `braid data filter` on a toy set, then a late_conf model trained on it and
// scored on its test split without images; eval's accuracy is the model's own recount.
TEST(StyleShift, FilterAndLateConfThroughTheCli) {
  TempDir d("style_cli");
  auto manifest = make_toy_dataset((d.path / "data").string(), ToyOptions{48, 3});
  const auto noimg = (d.path / "noimg.jsonl").string();
  auto f = run_braid("data filter " + q(manifest) + " --out " + q(noimg) + " --drop image");
  ASSERT_EQ(f.code, 0) << f.err;
  EXPECT_NE(f.out.find("kept 48 of 48 samples"), std::string::npos) << f.out;
  auto bad = run_braid("data filter " + q(manifest) + " --out " + q(noimg) + " --keep image");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--keep 'image'"), std::string::npos) << bad.err;

  const auto recipe = toy_late_conf_recipe(d, "{name: late_conf, power: 2}", "modality_dropout: 0.3", 2);
  const auto run = (d.path / "run").string();
  auto t = run_braid("train " + q(recipe) + " --data " + q(manifest) + " --out " + q(run));
  ASSERT_EQ(t.code, 0) << t.err;
  auto e = run_braid("eval " + q(run) + " --data " + q(noimg) + " --split test --threads 1 --json");
  ASSERT_EQ(e.code, 0) << e.err;
  auto rc = recount_accuracy(run, noimg, "test");
  EXPECT_EQ(rc.n, 6);
  EXPECT_DOUBLE_EQ(last_json_line(e.out)["accuracy"].get<double>(), rc.accuracy());

  auto neg = run_braid("train " + q(recipe) + " --data " + q(manifest) + " --out " + q(run + "2") +
                       " --set model.fusion.power=-1");
  EXPECT_EQ(neg.code, 2);
  const auto at = neg.err.find("braid: error: ");
  ASSERT_NE(at, std::string::npos) << neg.err;
  const auto line = neg.err.substr(at, neg.err.find('\n', at) - at);
  EXPECT_NE(line.find("model.fusion.power"), std::string::npos) << neg.err;
  EXPECT_NE(line.find("[0, 16]"), std::string::npos) << neg.err;
}

// `calibrate: temperature` through the CLI: training ends by fitting one temperature per expert on
// the validation split (logged, saved as the model's buffer, not all 1), eval reads it back (its
// accuracy is the recount of the saved model), and a value other than none / temperature is a
// one-line error naming the key.
TEST(StyleShift, CalibratedLateConfThroughTheCli) {
  TempDir d("style_cal");
  auto manifest = make_toy_dataset((d.path / "data").string(), ToyOptions{48, 3});
  const auto recipe = toy_late_conf_recipe(d, "{name: late_conf, calibrate: temperature}", "", 3);
  const auto run = (d.path / "run").string();
  auto t = run_braid("train " + q(recipe) + " --data " + q(manifest) + " --out " + q(run));
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE((t.out + t.err).find("expert temperatures on the validation split: image"), std::string::npos)
      << t.out << t.err;
  {
    auto p = braid::run::open_run(run);
    torch::Tensor temps;
    for (const auto& b : p.model->named_buffers())
      if (b.key() == "expert_temperature") temps = b.value();
    ASSERT_TRUE(temps.defined());
    ASSERT_EQ(temps.numel(), 3);
    EXPECT_TRUE((temps >= braid::nn::kMinTemperature).all().item<bool>()) << temps;
    EXPECT_FALSE(torch::allclose(temps, torch::ones_like(temps))) << temps;
  }
  auto e = run_braid("eval " + q(run) + " --data " + q(manifest) + " --split test --threads 1 --json");
  ASSERT_EQ(e.code, 0) << e.err;
  auto rc = recount_accuracy(run, manifest, "test");
  EXPECT_DOUBLE_EQ(last_json_line(e.out)["accuracy"].get<double>(), rc.accuracy());

  auto bad = run_braid("train " + q(recipe) + " --data " + q(manifest) + " --out " + q(run + "2") +
                       " --set model.fusion.calibrate=platt");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("model.fusion.calibrate"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("none, temperature or rank"), std::string::npos) << bad.err;
}
