// Alignment objectives: golden values and gradients against scripts/make_alignment_goldens.py
// (CLIP incl. label smoothing, clamp and chunking; SigLIP; linear CCA; DCCA; DeViSE; cycle; MLM; ITM),
// sampling statistics of the masking and hard-negative draws, and one-line errors on bad shapes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "braid/core/error.h"
#include "braid/core/safetensors.h"
#include "braid/objectives/cca.h"
#include "braid/objectives/contrastive.h"
#include "braid/objectives/cycle.h"
#include "braid/objectives/itm.h"
#include "braid/objectives/masking.h"
#include "braid/objectives/multitask.h"
#include "braid/objectives/ranking.h"
#include "test_util.h"

namespace obj = braid::objectives;
using braid::TensorMap;
using braid::test::AllClose;
using braid::test::ExpectInputError;

namespace {

TensorMap fixture(const std::string& name) {
  return braid::read_safetensors(std::string(BRAID_FIXTURES) + "/alignment/" + name + ".safetensors");
}

double num(const TensorMap& m, const std::string& k) { return m.at(k).to(torch::kDouble).item<double>(); }

torch::Tensor param(const TensorMap& m, const std::string& k) {
  return m.at(k).to(torch::kFloat).reshape({}).clone().requires_grad_();
}

torch::Tensor leaf(const TensorMap& m, const std::string& k) { return m.at(k).clone().requires_grad_(); }

torch::Tensor scalar_t(double x) { return torch::tensor(x, torch::kFloat).reshape({}); }

}  // namespace

TEST(AlignmentObjectives, ClipGoldenValueAndGradients) {
  auto g = fixture("clip");
  for (const std::string c : {"base", "smooth", "clamped"}) {
    for (int64_t chunk : {0, 3, 8}) {
      auto u = leaf(g, "u"), v = leaf(g, "v"), t = param(g, c + ".t");
      auto loss = obj::clip_loss(u, v, t, num(g, c + ".eps"), chunk);
      loss.backward();
      const std::string what = "clip " + c + " chunk " + std::to_string(chunk);
      EXPECT_TRUE(AllClose(loss, g.at(c + ".loss").reshape({}), 1e-5, what + " loss"));
      EXPECT_TRUE(AllClose(u.grad(), g.at(c + ".du"), 1e-5, what + " du"));
      EXPECT_TRUE(AllClose(v.grad(), g.at(c + ".dv"), 1e-5, what + " dv"));
      EXPECT_TRUE(AllClose(t.grad(), g.at(c + ".dt").reshape({}), 1e-5, what + " dt"));
    }
  }
  EXPECT_EQ(num(g, "clamped.dt"), 0.0);
}

TEST(AlignmentObjectives, ClipChunkedEqualsUnchunked) {
  torch::manual_seed(11);
  auto u0 = torch::nn::functional::normalize(torch::randn({53, 16}), torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto v0 = torch::nn::functional::normalize(torch::randn({53, 16}), torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto run = [&](int64_t chunk, double eps) {
    auto u = u0.clone().requires_grad_(), v = v0.clone().requires_grad_();
    auto t = scalar_t(std::log(1 / 0.07)).requires_grad_();
    auto loss = obj::clip_loss(u, v, t, eps, chunk);
    loss.backward();
    return std::vector<torch::Tensor>{loss.detach(), u.grad(), v.grad(), t.grad()};
  };
  for (double eps : {0.0, 0.1}) {
    auto ref = run(0, eps);
    for (int64_t chunk : {1, 7, 64}) {
      auto got = run(chunk, eps);
      const std::string what = "chunk " + std::to_string(chunk) + " eps " + std::to_string(eps);
      EXPECT_TRUE(AllClose(got[0], ref[0], 1e-5, what + " loss"));
      EXPECT_TRUE(AllClose(got[1], ref[1], 1e-6, what + " du"));
      EXPECT_TRUE(AllClose(got[2], ref[2], 1e-6, what + " dv"));
      EXPECT_TRUE(AllClose(got[3], ref[3], 1e-5, what + " dt"));
    }
  }
}

TEST(AlignmentObjectives, SiglipGoldenValueAndGradients) {
  auto g = fixture("siglip");
  for (const std::string c : {"init", "other"}) {
    auto u = leaf(g, "u"), v = leaf(g, "v"), t = param(g, c + ".t"), b = param(g, c + ".b");
    auto loss = obj::siglip_loss(u, v, t, b);
    loss.backward();
    EXPECT_TRUE(AllClose(loss, g.at(c + ".loss").reshape({}), 1e-5, "siglip " + c + " loss"));
    EXPECT_TRUE(AllClose(u.grad(), g.at(c + ".du"), 1e-5, "siglip " + c + " du"));
    EXPECT_TRUE(AllClose(v.grad(), g.at(c + ".dv"), 1e-5, "siglip " + c + " dv"));
    EXPECT_TRUE(AllClose(t.grad(), g.at(c + ".dt").reshape({}), 1e-5, "siglip " + c + " dt"));
    EXPECT_TRUE(AllClose(b.grad(), g.at(c + ".db").reshape({}), 1e-5, "siglip " + c + " db"));
  }
}

TEST(AlignmentObjectives, InfoNceIsCrossEntropyOverScaledDotProducts) {
  torch::manual_seed(3);
  auto q = torch::randn({6, 4}), k = torch::randn({6, 4});
  auto logits = torch::mm(q, k.t()) / 0.5;
  double want = 0;
  for (int64_t i = 0; i < 6; ++i) want += (torch::logsumexp(logits[i], 0) - logits[i][i]).item<double>();
  EXPECT_NEAR(obj::info_nce(q, k, 0.5).item<double>(), want / 6, 1e-5);
}

TEST(AlignmentObjectives, LinearCcaMatchesNumpyReference) {
  auto g = fixture("cca");
  auto cca = obj::linear_cca(g.at("X"), g.at("Y"), 3, 1e-4, 1e-4);
  EXPECT_EQ(cca.A.scalar_type(), torch::kFloat);
  EXPECT_TRUE(AllClose(cca.corr, g.at("corr"), 1e-4, "cca corr"));
  EXPECT_TRUE(AllClose(cca.mean_x, g.at("mean_x"), 1e-5, "cca mean_x"));
  EXPECT_TRUE(AllClose(cca.mean_y, g.at("mean_y"), 1e-5, "cca mean_y"));
  auto px = torch::mm(g.at("X") - cca.mean_x, cca.A), py = torch::mm(g.at("Y") - cca.mean_y, cca.B);
  // Each component is defined up to a sign (the same sign on both sides).
  auto sign = (px * g.at("px").to(torch::kFloat)).sum(0).sign();
  EXPECT_TRUE(AllClose(px * sign, g.at("px"), 1e-4, "cca projection x (up to sign)"));
  EXPECT_TRUE(AllClose(py * sign, g.at("py"), 1e-4, "cca projection y (up to sign)"));
  EXPECT_TRUE(AllClose(cca.A * sign, g.at("A"), 1e-4, "cca A (up to sign)"));
  EXPECT_TRUE(AllClose(cca.B * sign, g.at("B"), 1e-4, "cca B (up to sign)"));
  // Independent of the reference: the projected columns are correlated by corr[i].
  for (int64_t i = 0; i < 3; ++i) {
    auto a = px.select(1, i).to(torch::kDouble), b = py.select(1, i).to(torch::kDouble);
    a = a - a.mean();
    b = b - b.mean();
    const double r = ((a * b).sum() / (a.norm() * b.norm())).item<double>();
    EXPECT_NEAR(r, cca.corr[i].item<double>(), 1e-3) << "component " << i;
  }
  EXPECT_TRUE(AllClose(obj::canonical_correlations(g.at("X"), g.at("Y"), 3, 1e-4), g.at("corr"), 1e-4,
                       "canonical_correlations"));
}

TEST(AlignmentObjectives, DccaGoldenValueAndGradients) {
  auto g = fixture("dcca");
  for (int64_t k : {0, 2}) {
    const std::string c = "k" + std::to_string(k);
    auto x = leaf(g, "X"), y = leaf(g, "Y");
    auto loss = obj::dcca_loss(x, y, k, 1e-3);
    loss.backward();
    EXPECT_EQ(loss.scalar_type(), torch::kFloat);
    EXPECT_TRUE(AllClose(loss, g.at(c + ".loss").reshape({}), 1e-5, "dcca " + c + " loss"));
    EXPECT_TRUE(AllClose(x.grad(), g.at(c + ".dX"), 1e-5, "dcca " + c + " dX"));
    EXPECT_TRUE(AllClose(y.grad(), g.at(c + ".dY"), 1e-5, "dcca " + c + " dY"));
  }
  EXPECT_NEAR(obj::canonical_correlations(g.at("X"), g.at("Y"), 0, 1e-3).sum().item<double>(), -num(g, "k0.loss"),
              1e-5);
}

TEST(AlignmentObjectives, DeviseGolden) {
  auto g = fixture("devise");
  auto s = leaf(g, "scores");
  auto loss = obj::devise_loss(s, g.at("labels"), num(g, "margin"));
  loss.backward();
  EXPECT_TRUE(AllClose(loss, g.at("loss").reshape({}), 1e-6, "devise loss"));
  EXPECT_TRUE(AllClose(s.grad(), g.at("dscores"), 1e-6, "devise dscores"));
}

TEST(AlignmentObjectives, CycleGolden) {
  auto g = fixture("cycle");
  auto loss = obj::cycle_loss(g.at("a"), g.at("b"), g.at("a2b"), g.at("b2a"), g.at("a2b2a"), g.at("b2a2b"));
  EXPECT_TRUE(AllClose(loss, g.at("loss").reshape({}), 1e-5, "cycle loss"));
}

TEST(AlignmentObjectives, MlmLossMatchesCrossEntropyWithIgnoreIndex) {
  auto g = fixture("mlm");
  auto logits = leaf(g, "logits");
  auto loss = obj::mlm_loss(logits, g.at("targets"));
  loss.backward();
  EXPECT_TRUE(AllClose(loss, g.at("loss").reshape({}), 1e-5, "mlm loss"));
  EXPECT_TRUE(AllClose(logits.grad(), g.at("dlogits"), 1e-6, "mlm dlogits"));
  // Nothing picked: zero, still differentiable.
  auto none = obj::mlm_loss(logits, torch::full({3, 7}, -100, torch::kLong));
  EXPECT_EQ(none.item<double>(), 0.0);
  EXPECT_TRUE(none.requires_grad());
}

TEST(AlignmentObjectives, MaskTokensStatistics) {
  torch::manual_seed(5);
  const int64_t B = 300, L = 40, vocab = 1000, mask_id = 4;
  auto ids = torch::randint(5, vocab, {B, L}, torch::kLong);
  auto len = torch::randint(20, L + 1, {B}, torch::kLong);
  len[7] = 0;  // an all-padding row
  ids.masked_fill_(torch::arange(L).unsqueeze(0).ge(len.unsqueeze(1)), 0);
  // Expected picks per row: pL + (1−p)^L (the forced pick of a row that drew none).
  double expected = 0;
  for (int64_t i = 0; i < B; ++i) {
    const double n = len[i].item<double>();
    if (n > 0) expected += 0.15 * n + std::pow(0.85, n);
  }
  const double tokens = ids.ne(0).sum().item<double>();
  double picked = 0, masked = 0, randomized = 0, kept = 0;
  const int draws = 20;
  for (int d = 0; d < draws; ++d) {
    auto m = obj::mask_tokens(ids, mask_id, vocab);
    auto pick = m.targets.ne(-100);
    ASSERT_FALSE(pick.logical_and(ids.eq(0)).any().item<bool>()) << "a pad was picked";
    ASSERT_TRUE(m.input.masked_select(ids.eq(0)).eq(0).all().item<bool>()) << "a pad was changed";
    ASSERT_TRUE(m.targets.masked_select(pick).equal(ids.masked_select(pick)));
    ASSERT_TRUE(m.input.masked_select(pick.logical_not()).equal(ids.masked_select(pick.logical_not())));
    auto rows = pick.any(1);
    ASSERT_TRUE(rows.equal(ids.ne(0).any(1))) << "a non-empty row without a pick (or an empty row with one)";
    picked += pick.sum().item<double>();
    auto in = m.input.masked_select(pick), orig = ids.masked_select(pick);
    masked += in.eq(mask_id).sum().item<double>();
    kept += in.eq(orig).sum().item<double>();
    randomized += in.ne(mask_id).logical_and(in.ne(orig)).sum().item<double>();
    ASSERT_TRUE(in.ge(1).logical_and(in.lt(vocab)).all().item<bool>());
  }
  const double share = picked / (tokens * draws);
  std::cout << "[   stat   ] picked share " << share << " (expected " << expected / tokens << "), mask "
            << masked / picked << ", random " << randomized / picked << ", kept " << kept / picked << "\n";
  EXPECT_NEAR(share, expected / tokens, 0.003);
  EXPECT_NEAR(masked / picked, 0.8, 0.01);
  EXPECT_NEAR(randomized / picked, 0.1, 0.01);
  EXPECT_NEAR(kept / picked, 0.1, 0.01);
  // Reproducible under the global seed.
  torch::manual_seed(9);
  auto a = obj::mask_tokens(ids, mask_id, vocab);
  torch::manual_seed(9);
  auto b = obj::mask_tokens(ids, mask_id, vocab);
  EXPECT_TRUE(a.input.equal(b.input));
  EXPECT_TRUE(a.targets.equal(b.targets));
}

TEST(AlignmentObjectives, MaskPatchesAndPatchLosses) {
  torch::manual_seed(6);
  auto m = obj::mask_patches(2000, 16, 0.25);
  EXPECT_EQ(m.scalar_type(), torch::kBool);
  EXPECT_TRUE(m.any(1).all().item<bool>());
  const double expected = 0.25 + std::pow(0.75, 16) / 16;
  EXPECT_NEAR(m.to(torch::kDouble).mean().item<double>(), expected, 0.005);

  auto pred = torch::randn({2, 3, 4}, torch::requires_grad()), target = torch::randn({2, 3, 4});
  auto mask = torch::tensor({1, 0, 1, 0, 0, 1}, torch::kBool).reshape({2, 3});
  const std::vector<std::pair<int, int>> masked{{0, 0}, {0, 2}, {1, 2}};
  double want = 0;
  for (auto [b, n] : masked)
    want += (pred[b][n] - target[b][n]).pow(2).mean().item<double>();
  EXPECT_NEAR(obj::mrfr_loss(pred, target, mask).item<double>(), want / 3, 1e-6);

  auto logits = torch::randn({2, 3, 5});
  auto ids = torch::tensor({4, 9, 0, 7, 7, 2}, torch::kLong).reshape({2, 3});  // unmasked ids may be anything
  double ce = 0;
  for (auto [b, n] : masked)
    ce += (torch::logsumexp(logits[b][n], 0) - logits[b][n][ids[b][n].item<int64_t>()]).item<double>();
  EXPECT_NEAR(obj::mrc_loss(logits, ids, mask).item<double>(), ce / 3, 1e-5);
}

TEST(AlignmentObjectives, ItmLossGolden) {
  auto g = fixture("itm");
  EXPECT_TRUE(AllClose(obj::itm_loss(g.at("logits"), g.at("is_match")), g.at("loss").reshape({}), 1e-6, "itm loss"));
  EXPECT_TRUE(AllClose(obj::itm_loss(g.at("logits"), g.at("is_match").to(torch::kBool)), g.at("loss").reshape({}), 1e-6,
                       "itm loss (bool labels)"));
}

TEST(AlignmentObjectives, HardNegativeSamplingFollowsSoftmaxWithoutDiagonal) {
  auto g = fixture("itm");
  auto sim = g.at("sim"), probs = g.at("probs");
  const int64_t B = sim.size(0);
  const int draws = 20000;
  torch::manual_seed(12);
  auto counts = torch::zeros({B, B}, torch::kDouble);
  for (int d = 0; d < draws; ++d) {
    auto j = obj::sample_hard_negatives(sim);
    ASSERT_EQ(j.scalar_type(), torch::kLong);
    counts.view({-1}).index_add_(0, torch::arange(B) * B + j, torch::ones({B}, torch::kDouble));
  }
  EXPECT_EQ(counts.diagonal().sum().item<double>(), 0.0) << "the positive was sampled";
  auto freq = counts / draws;
  EXPECT_TRUE(AllClose(freq, probs, 0.012, "hard-negative frequencies vs softmax without the diagonal"));
  // Chi-square per row over the B − 1 off-diagonal cells (df = B − 2 = 3; 16.3 is the 0.999 quantile).
  for (int64_t i = 0; i < B; ++i) {
    double chi2 = 0;
    for (int64_t j = 0; j < B; ++j) {
      if (i == j) continue;
      const double e = draws * probs[i][j].item<double>(), o = counts[i][j].item<double>();
      chi2 += (o - e) * (o - e) / e;
    }
    std::cout << "[   stat   ] row " << i << " chi2 " << chi2 << "\n";
    EXPECT_LT(chi2, 16.3) << "row " << i;
  }
  // Text→image: sampling from simᵀ follows the columns.
  torch::manual_seed(13);
  auto colcounts = torch::zeros({B, B}, torch::kDouble);
  for (int d = 0; d < 4000; ++d)
    colcounts.view({-1}).index_add_(0, torch::arange(B) * B + obj::sample_hard_negatives(sim.t()),
                                    torch::ones({B}, torch::kDouble));
  auto colprobs = torch::softmax(sim.t().to(torch::kDouble).masked_fill(torch::eye(B, torch::kBool), -INFINITY), 1);
  EXPECT_TRUE(AllClose(colcounts / 4000, colprobs, 0.03, "text->image frequencies"));
}

TEST(AlignmentObjectives, WeightedSumWeightsAndLogs) {
  std::map<std::string, torch::Tensor> terms{{"clip", scalar_t(2.0)}, {"mlm", scalar_t(3.0)}, {"itm", scalar_t(0.5)}};
  std::map<std::string, double> logged;
  auto total = obj::weighted_sum(terms, {{"mlm", 0.5}, {"itm", 2.0}}, &logged);
  EXPECT_NEAR(total.item<double>(), 2.0 + 1.5 + 1.0, 1e-6);
  EXPECT_EQ(logged.size(), 3u);
  EXPECT_EQ(logged.at("mlm"), 3.0);
  ExpectInputError([&] { obj::weighted_sum(terms, {{"mlmm", 1.0}}); }, "weighted_sum", "mlmm");
  ExpectInputError([&] { obj::weighted_sum({}, {}); }, "weighted_sum", "no objective terms");
}

TEST(AlignmentObjectives, BadShapesGiveOneLineErrors) {
  auto u = torch::randn({8, 6}), v = torch::randn({8, 5}), t = scalar_t(1.0);
  ExpectInputError([&] { obj::clip_loss(u, v, t); }, "clip_loss", "[8, 5]");
  ExpectInputError([&] { obj::clip_loss(u, u, torch::zeros({2})); }, "clip_loss", "logit_scale");
  ExpectInputError([&] { obj::siglip_loss(u, torch::randn({7, 6}), t, t); }, "siglip_loss", "[7, 6]");
  ExpectInputError([&] { obj::info_nce(u, torch::randn({8}), 0.1); }, "info_nce", "[8]");
  ExpectInputError([&] { obj::linear_cca(u, torch::randn({9, 3}), 2); }, "linear_cca", "[9, 3]");
  ExpectInputError([&] { obj::linear_cca(u, torch::randn({8, 3}), 4); }, "linear_cca", "k");
  ExpectInputError([&] { obj::dcca_loss(u, torch::randn({9, 3})); }, "dcca_loss", "[8, 6]");
  ExpectInputError([&] { obj::devise_loss(torch::randn({4, 3}), torch::tensor({0, 1, 2})); }, "devise_loss", "[4, 3]");
  ExpectInputError([&] { obj::devise_loss(torch::randn({3, 3}), torch::tensor({0, 1, 3})); }, "devise_loss",
                   "labels");
  ExpectInputError([&] { obj::cycle_loss(u, v, v, u, u, u); }, "cycle_loss", "b2a2b");
  ExpectInputError([&] { obj::mask_tokens(torch::zeros({4}, torch::kLong), 3, 10); }, "mask_tokens", "[4]");
  ExpectInputError([&] { obj::mlm_loss(torch::randn({2, 3, 5}), torch::zeros({2, 4}, torch::kLong)); }, "mlm_loss",
                   "[2, 4]");
  ExpectInputError([&] { obj::mrfr_loss(torch::randn({2, 3, 4}), torch::randn({2, 3, 5}), torch::ones({2, 3})); },
                   "mrfr_loss", "[2, 3, 5]");
  ExpectInputError([&] { obj::mrc_loss(torch::randn({2, 3, 4}), torch::zeros({2, 3}, torch::kLong),
                                       torch::ones({2, 2}, torch::kBool)); },
                   "mrc_loss", "[2, 2]");
  ExpectInputError([&] { obj::sample_hard_negatives(torch::randn({3, 4})); }, "sample_hard_negatives", "[3, 4]");
  ExpectInputError([&] { obj::sample_hard_negatives(torch::full({3, 3}, NAN)); }, "sample_hard_negatives", "NaN");
  ExpectInputError([&] { obj::itm_loss(torch::randn({4, 3}), torch::zeros({4}, torch::kLong)); }, "itm_loss",
                   "[4, 3]");
}
