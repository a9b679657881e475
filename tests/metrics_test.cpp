// Retrieval metrics: ranks by hand on a small gallery, group relevance, and queries without a match.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "braid/eval/metrics.h"

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
