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

// `calibrate: shift`, hand-computed: the k-NN distance of unit vectors, the trust from the tail share of
// the reference distances, and an expert whose input is atypical giving way even though it is sure.
TEST(LateConfidence, ShiftTrustLetsAnAtypicalExpertGiveWay) {
  // reference: three unit vectors; x = (2, 0) normalizes onto the first, (0, -1) is far from all
  auto ref = torch::tensor({1.0, 0.0, 0.0, 1.0, -1.0, 0.0}, torch::kDouble).view({3, 2});
  auto x = torch::tensor({2.0, 0.0, 0.0, -1.0}, torch::kDouble).view({2, 2});
  auto d1 = braid::nn::knn_distance(x, ref, 1);
  EXPECT_TRUE(AllClose(d1, torch::tensor({0.0, std::sqrt(2.0)}, torch::kDouble), 1e-12, "k = 1"));
  auto d2 = braid::nn::knn_distance(x, ref, 2);  // second nearest: (0, 1) for x0; for x1 (1, 0) and (-1, 0) tie
  EXPECT_TRUE(AllClose(d2, torch::tensor({std::sqrt(2.0), std::sqrt(2.0)}, torch::kDouble), 1e-12, "k = 2"));
  // leave one out: each reference row's nearest other row; (1, 0) and (-1, 0) are 2 apart, (0, 1) sqrt 2 from both
  auto loo = braid::nn::knn_distance(ref, ref, 1, /*leave_one_out=*/true);
  EXPECT_TRUE(AllClose(loo, torch::full({3}, std::sqrt(2.0), torch::kDouble), 1e-12, "leave one out"));
  auto loo2 = braid::nn::knn_distance(ref, ref, 2, /*leave_one_out=*/true);
  EXPECT_TRUE(AllClose(loo2, torch::tensor({2.0, std::sqrt(2.0), 2.0}, torch::kDouble), 1e-12, "leave one out, k 2"));
  EXPECT_THROW(braid::nn::knn_distance(ref, ref, 3, /*leave_one_out=*/true), c10::Error);
  EXPECT_THROW(braid::nn::knn_distance(x, ref.narrow(1, 0, 1), 1), c10::Error);

  // quantiles 0 .. 1 in steps of 0.25: d = 0.8 has 1 of 5 at or above it -> share 0.2, alpha 0.4 -> 0.5;
  // 0.5 has 3 of 5 -> 1 (capped); 1.5 has none -> 0
  auto q = torch::tensor({0.0, 0.25, 0.5, 0.75, 1.0}, torch::kDouble);
  auto t = braid::nn::shift_trust(torch::tensor({0.8, 0.5, 1.5}, torch::kDouble), q, 0.4);
  EXPECT_TRUE(AllClose(t, torch::tensor({0.5, 1.0, 0.0}, torch::kDouble), 1e-12, "trust"));
  EXPECT_THROW(braid::nn::shift_trust(t, q, 0.0), c10::Error);
  EXPECT_THROW(braid::nn::shift_trust(t, q, 1.5), c10::Error);

  // expert A sure of class 0, B leaning to class 1: confidence alone lets A decide
  const std::vector<double> a{0.9, 0.05, 0.05}, b{0.2, 0.6, 0.2};
  auto logp = logp_of({a, b});
  auto present = torch::ones({1, 2}, torch::kDouble);
  const double ca = confidence_by_hand(a), cb = confidence_by_hand(b);
  ASSERT_EQ(braid::nn::confidence_fuse(logp, present, 1.0).argmax(1).item<int64_t>(), 0);
  // A's input at trust 0.5: weights ca / 2 and cb, normalized
  auto half = torch::tensor({0.5, 1.0}, torch::kDouble).view({1, 2});
  auto w = braid::nn::confidence_weights(logp, present, 1.0, {}, half);
  EXPECT_NEAR(w[0][0].item<double>(), 0.5 * ca / (0.5 * ca + cb), 1e-12);
  EXPECT_NEAR(w[0][1].item<double>(), cb / (0.5 * ca + cb), 1e-12);
  // A's input beyond every held-in one (trust 0, floored at 1e-6): B's distribution but for A's
  // 1e-6 share, by hand
  auto none = torch::tensor({0.0, 1.0}, torch::kDouble).view({1, 2});
  auto fused = braid::nn::confidence_fuse(logp, present, 1.0, {}, none);
  const double wa = 1e-6 * ca / (1e-6 * ca + cb);
  std::vector<double> z(3);
  double norm = 0;
  for (int k = 0; k < 3; ++k) norm += std::exp(z[k] = wa * std::log(a[k]) + (1 - wa) * std::log(b[k]));
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(fused[0][k].item<double>(), z[k] - std::log(norm), 1e-12) << "class " << k;
  EXPECT_TRUE(AllClose(fused[0], logp[0][1], 1e-4, "B decides")) << fused;
  EXPECT_EQ(fused.argmax(1).item<int64_t>(), 1);
  // every expert at trust 0: the confidences alone decide again
  auto zero = torch::zeros({1, 2}, torch::kDouble);
  EXPECT_TRUE(AllClose(braid::nn::confidence_weights(logp, present, 1.0, {}, zero),
                       braid::nn::confidence_weights(logp, present, 1.0), 1e-9, "all atypical"));
  EXPECT_THROW(braid::nn::confidence_weights(logp, present, 1.0, {}, torch::ones({1, 3})), c10::Error);
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

// A toy late_conf model trained through the CLI (3 epochs, model.fusion = `fusion`) in d/run.
struct ToyLateConf {
  std::string manifest, recipe, run, log;  // log: stdout and stderr of `braid train`
  int code = -1;
};
ToyLateConf train_toy_late_conf(const TempDir& d, const std::string& fusion) {
  ToyLateConf r;
  r.manifest = make_toy_dataset((d.path / "data").string(), ToyOptions{48, 3});
  r.recipe = toy_late_conf_recipe(d, fusion, "", 3);
  r.run = (d.path / "run").string();
  auto t = run_braid("train " + q(r.recipe) + " --data " + q(r.manifest) + " --out " + q(r.run));
  r.code = t.code;
  r.log = t.out + t.err;
  return r;
}

// The saved model's buffer `name` (undefined when it has none).
torch::Tensor saved_buffer(const std::string& run, const std::string& name) {
  auto p = braid::run::open_run(run);
  for (const auto& b : p.model->named_buffers())
    if (b.key() == name) return b.value().clone();
  return {};
}

// `braid eval` of the test split gives the recount of the saved model's accuracy.
void expect_eval_is_recount(const ToyLateConf& r) {
  auto e = run_braid("eval " + q(r.run) + " --data " + q(r.manifest) + " --split test --threads 1 --json");
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_DOUBLE_EQ(last_json_line(e.out)["accuracy"].get<double>(), recount_accuracy(r.run, r.manifest, "test").accuracy());
}

// Training the same recipe with `--set set` is an input error naming `key` and saying `range`.
void expect_bad_set_names_key(const ToyLateConf& r, const std::string& set, const std::string& key,
                              const std::string& range) {
  auto bad = run_braid("train " + q(r.recipe) + " --data " + q(r.manifest) + " --out " + q(r.run + "2") + " --set " + set);
  EXPECT_EQ(bad.code, 2) << set;
  EXPECT_NE(bad.err.find(key), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find(range), std::string::npos) << bad.err;
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
// accuracy is the recount of the saved model), and a value other than none / temperature / rank /
// shift is a one-line error naming the key.
TEST(StyleShift, CalibratedLateConfThroughTheCli) {
  TempDir d("style_cal");
  auto r = train_toy_late_conf(d, "{name: late_conf, calibrate: temperature}");
  ASSERT_EQ(r.code, 0) << r.log;
  EXPECT_NE(r.log.find("expert temperatures on the validation split: image"), std::string::npos) << r.log;
  auto temps = saved_buffer(r.run, "expert_temperature");
  ASSERT_TRUE(temps.defined());
  ASSERT_EQ(temps.numel(), 3);
  EXPECT_TRUE((temps >= braid::nn::kMinTemperature).all().item<bool>()) << temps;
  EXPECT_FALSE(torch::allclose(temps, torch::ones_like(temps))) << temps;
  expect_eval_is_recount(r);
  expect_bad_set_names_key(r, "model.fusion.calibrate=platt", "model.fusion.calibrate", "none, temperature, rank or shift");
}

// `calibrate: shift` through the CLI: training ends by keeping each expert's validation features and
// their k-NN distances (logged; saved as buffers with a nonzero row count, the distance quantiles
// ascending), eval reads them back (its accuracy is the recount of the saved model), and a bad
// shift_alpha / shift_k / floor is a one-line error naming the key.
TEST(StyleShift, ShiftCalibratedLateConfThroughTheCli) {
  TempDir d("style_shift_cal");
  auto r = train_toy_late_conf(d, "{name: late_conf, calibrate: shift, shift_k: 2, shift_alpha: 0.2, floor: 0.1}");
  ASSERT_EQ(r.code, 0) << r.log;
  EXPECT_NE(r.log.find("expert k-NN feature distances on the validation split: image median"), std::string::npos)
      << r.log;
  auto n = saved_buffer(r.run, "expert_shift_n"), dist = saved_buffer(r.run, "expert_shift_dist");
  ASSERT_TRUE(n.defined() && dist.defined());
  ASSERT_EQ(n.numel(), 3);
  EXPECT_TRUE((n > 2).all().item<bool>()) << n;
  EXPECT_TRUE((dist.narrow(1, 1, dist.size(1) - 1) >= dist.narrow(1, 0, dist.size(1) - 1)).all().item<bool>()) << dist;
  expect_eval_is_recount(r);
  expect_bad_set_names_key(r, "model.fusion.shift_alpha=0", "model.fusion.shift_alpha", "(0, 1]");
  expect_bad_set_names_key(r, "model.fusion.shift_k=0", "model.fusion.shift_k", "[1, 1024)");
  expect_bad_set_names_key(r, "model.fusion.floor=1", "model.fusion.floor", "[0, 1)");
}
