// Retrieval metrics: ranks by hand on a small gallery, group relevance, and queries without a match;
// ITM re-ranking by hand; concordance (CCC) and regression metrics against scripts/make_goldens.py.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "braid/data/npy.h"
#include "braid/eval/metrics.h"
#include "braid/eval/rerank.h"
#include "braid/objectives/supervised.h"
#include "test_util.h"

using braid::eval::retrieval_metrics;

TEST(Retrieval, RanksCountHigherScoringItems) {
  // gallery: 4 unit vectors; queries chosen so the paired item ranks 1, 2, 4
  auto g = torch::eye(4);
  auto q = torch::tensor({{1.0f, 0.0f, 0.0f, 0.0f},    // q0 -> g0 rank 1
                          {0.0f, 0.6f, 0.8f, 0.0f},    // q1 -> g1 rank 2 (g2 scores higher)
                          {0.1f, 0.3f, 0.2f, 0.05f}}); // q2 -> g2: g1 and g0? 0.1 < 0.2, so g1 only -> rank 2
  q = torch::nn::functional::normalize(q, torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto ids = torch::arange(4, torch::kLong);
  auto m = retrieval_metrics(q, g, ids.slice(0, 0, 3), ids);
  EXPECT_EQ(m["n"].get<int64_t>(), 3);
  EXPECT_NEAR(m["r1"].get<double>(), 1.0 / 3, 1e-9);
  EXPECT_NEAR(m["r5"].get<double>(), 1.0, 1e-9);
  EXPECT_NEAR(m["mean_rank"].get<double>(), (1 + 2 + 2) / 3.0, 1e-9);
  EXPECT_NEAR(m["median_rank"].get<double>(), 2.0, 1e-9);
}

TEST(Retrieval, AnyItemOfTheQueryGroupIsAHit) {
  auto g = torch::eye(3);
  auto q = torch::tensor({{0.0f, 1.0f, 0.0f}});
  // the query's group (7) owns gallery rows 0 and 1; row 1 scores highest -> rank 1
  auto m = retrieval_metrics(q, g, torch::tensor({7}, torch::kLong), torch::tensor({7, 7, 3}, torch::kLong));
  EXPECT_NEAR(m["r1"].get<double>(), 1.0, 1e-9);
  // a query whose group is not in the gallery is not counted
  auto none = retrieval_metrics(q, g, torch::tensor({9}, torch::kLong), torch::tensor({7, 7, 3}, torch::kLong));
  EXPECT_EQ(none["n"].get<int64_t>(), 0);
  EXPECT_FALSE(none.contains("r1"));
}

// ---------------------------------------------------------------- concordance (CCC)
// Against scripts/make_goldens.py (numpy population moments, closed-form gradient): columns that are
// close, rescaled + offset, identical (1), constant (0), anti-correlated, and shifted.

namespace {
torch::Tensor golden_npy(const std::string& name) { return braid::data::read_npy(braid::test::golden(name)); }
}  // namespace

TEST(ConcordanceGolden, ConcordanceAndCccLossMatchNumpy) {
  using braid::test::AllClose;
  auto pred = golden_npy("ccc_pred.npy"), target = golden_npy("ccc_target.npy");
  ASSERT_EQ(pred.scalar_type(), torch::kFloat);
  ASSERT_EQ(pred.sizes(), (std::vector<int64_t>{40, 6}));
  auto want = golden_npy("ccc_concordance.npy");
  // float64 inputs (as eval's regression metrics pass them) and float32 (as the training loss sees them)
  EXPECT_TRUE(AllClose(braid::objectives::concordance(pred.to(torch::kDouble), target.to(torch::kDouble)), want,
                       1e-10, "concordance fp64"));
  EXPECT_TRUE(AllClose(braid::objectives::concordance(pred, target), want, 2e-5, "concordance fp32"));
  // identical columns agree perfectly, a constant prediction not at all
  auto c64 = braid::objectives::concordance(pred.to(torch::kDouble), target.to(torch::kDouble));
  EXPECT_NEAR(c64[2].item<double>(), 1.0, 1e-10);  // (the 1e-12 guard in the denominator)
  EXPECT_EQ(c64[3].item<double>(), 0.0);

  auto x = pred.to(torch::kDouble).requires_grad_(true);
  auto loss = braid::objectives::ccc_loss(x, target.to(torch::kDouble));
  EXPECT_TRUE(AllClose(loss.reshape({1}), golden_npy("ccc_loss.npy"), 1e-10, "ccc_loss"));
  loss.backward();
  EXPECT_TRUE(AllClose(x.grad(), golden_npy("ccc_loss_grad.npy"), 1e-10, "d ccc_loss / d pred"));
  // the loss a recipe names `train.loss: ccc` is this one
  const auto& named = braid::objectives::supervised_loss("ccc", false, "train.loss");
  EXPECT_TRUE(AllClose(named.fn(pred, target, 0.0).reshape({1}), golden_npy("ccc_loss.npy"), 2e-6, "loss 'ccc'"));
}

TEST(ConcordanceGolden, RegressionMetricsReportTheGoldenCcc) {
  auto pred = golden_npy("ccc_pred.npy"), target = golden_npy("ccc_target.npy");
  auto want = golden_npy("ccc_concordance.npy");
  auto mse_mae = golden_npy("ccc_mse_mae.npy");
  auto m = braid::eval::regression_metrics(pred, target);  // float32, as eval passes model outputs
  EXPECT_EQ(m["n"].get<int64_t>(), 40);
  auto per = m["ccc_per_dim"].get<std::vector<double>>();
  ASSERT_EQ(per.size(), 6u);
  for (size_t j = 0; j < per.size(); ++j) EXPECT_NEAR(per[j], want[j].item<double>(), 1e-10) << "column " << j;
  EXPECT_NEAR(m["ccc"].get<double>(), want.mean().item<double>(), 1e-10);
  EXPECT_NEAR(m["mse"].get<double>(), mse_mae[0].item<double>(), 1e-10);
  EXPECT_NEAR(m["mae"].get<double>(), mse_mae[1].item<double>(), 1e-10);
}

// ---------------------------------------------------------------- ITM re-ranking
// eval::rerank_ranks on a hand-built case: 4 queries, a gallery of 5, the ITC top 3 re-ordered by
// matching scores. Rank = 1 + candidates whose re-rank score is strictly above the best relevant one;
// a query with no relevant item in the top k keeps its ITC rank, but never better than k + 1.

TEST(ItmRerank, ReRankingReordersTheTopKAsComputedByHand) {
  auto sim = torch::tensor({{0.90f, 0.80f, 0.10f, 0.00f, 0.50f},     // ITC order 0,1,4,2,3
                            {0.20f, 0.90f, 0.70f, 0.60f, 0.10f},     // ITC order 1,2,3,0,4
                            {0.90f, 0.80f, 0.70f, 0.60f, 0.10f},     // ITC order 0,1,2,3,4
                            {0.50f, 0.50f, 0.50f, 0.50f, 0.50f}});   // all tied
  auto top = std::get<1>(sim.topk(3, 1));
  // the top 3 as the evaluation computes them (ties: the stored order is whatever topk returns)
  ASSERT_TRUE(torch::equal(top.slice(0, 0, 3), torch::tensor({{0, 1, 4}, {1, 2, 3}, {0, 1, 2}}, torch::kLong)));
  auto rr = torch::tensor({{0.20f, 0.90f, 0.10f},    // q0: relevant 1 (ITC rank 2) moves to the top -> 1
                           {0.10f, 0.50f, 0.70f},    // q1: relevant 1 (ITC rank 1) drops below 2 and 3 -> 3
                           {0.30f, 0.90f, 0.80f},    // q2: relevant 4 is outside the top 3: its ITC rank 5 stays
                           {0.90f, 0.80f, 0.70f}});  // q3: relevant is outside the top 3, ITC rank 1 by ties -> k + 1
  auto relevant = torch::zeros({4, 5}, torch::kBool);
  relevant[0][1] = true;
  relevant[1][1] = true;
  relevant[2][4] = true;
  // q3: the one gallery item topk left out
  auto in_top = torch::zeros({5}, torch::kBool);
  in_top.index_fill_(0, top[3], true);
  const int64_t left_out = in_top.logical_not().nonzero()[0][0].item<int64_t>();
  relevant[3][left_out] = true;
  auto ranks = braid::eval::rerank_ranks(sim, top, rr, relevant);
  ASSERT_EQ(ranks.scalar_type(), torch::kDouble);
  EXPECT_TRUE(torch::equal(ranks, torch::tensor({1.0, 3.0, 5.0, 4.0}, torch::kDouble))) << ranks;

  // two relevant candidates: the better re-ranked one counts; an equal score does not rank above it
  relevant[1][3] = true;  // candidate 3 has the top re-rank score 0.7
  relevant[0][4] = true;  // candidate 4 scores 0.1 < 0.9 of candidate 1: q0 stays at 1
  auto rr2 = rr.clone();
  rr2[2] = torch::tensor({0.80f, 0.80f, 0.80f});  // q2: re-rank scores do not matter while no candidate is relevant
  auto ranks2 = braid::eval::rerank_ranks(sim, top, rr2, relevant);
  EXPECT_TRUE(torch::equal(ranks2, torch::tensor({1.0, 1.0, 5.0, 4.0}, torch::kDouble))) << ranks2;
  relevant[2][1] = true;   // q2: now candidate 1 (tied at 0.8 with the others) is relevant: nothing is strictly above
  auto ranks3 = braid::eval::rerank_ranks(sim, top, rr2, relevant);
  EXPECT_EQ(ranks3[2].item<double>(), 1.0);
  // the same query ranked by ITC alone would be at 2 (candidate 0 scores 0.9 > 0.8): re-ranking changed it
  EXPECT_EQ((sim[2] > sim[2][1]).sum().item<int64_t>() + 1, 2);
}
