// `braid bench lm`: a tiny model, every rate present and positive, the parameter count of the config
// (not a timed assertion), and a bad option refused.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_util.h"

using braid::test::run_braid;

TEST(BenchLM, TinyModelReportsPositiveRates) {
  auto r = run_braid("bench lm --dim 32 --layers 2 --heads 4 --kv-heads 2 --hidden 48 --vocab 64 --seq 8 --batch 2 "
                     "--prompt 4 --new-tokens 3 --steps 1 --warmup 1 --repeats 2 --threads 1 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = braid::test::last_json_line(r.out);
  for (const char* k : {"train_tokens_per_s", "gen_tokens_per_s_b1_cache", "gen_tokens_per_s_b1_nocache",
                        "gen_tokens_per_s_b8_cache", "gen_tokens_per_s_b8_nocache"}) {
    ASSERT_TRUE(j.contains(k)) << k << ": " << r.out;
    EXPECT_GT(j[k].get<double>(), 0.0) << k;
    ASSERT_EQ(j["runs"].size(), 2u);
    for (const auto& run : j["runs"]) EXPECT_GT(run[k].get<double>(), 0.0) << k;
  }
  // embeddings 64x32 + lm_head 32x64 + norm 32 + per layer: q 32x32, k/v 16x32 each, o 32x32, mlp 3x32x48, 2 norms
  const int64_t layer = 32 * 32 + 2 * 16 * 32 + 32 * 32 + 3 * 32 * 48 + 2 * 32;
  EXPECT_EQ(j["parameters"].get<int64_t>(), 64 * 32 * 2 + 32 + 2 * layer);
  EXPECT_EQ(j["threads"].get<int>(), 1);
  // cached and uncached greedy decoding make the same tokens
  EXPECT_EQ(j["token_sums"]["gen_tokens_per_s_b1_cache"], j["token_sums"]["gen_tokens_per_s_b1_nocache"]);
  EXPECT_EQ(j["token_sums"]["gen_tokens_per_s_b8_cache"], j["token_sums"]["gen_tokens_per_s_b8_nocache"]);
}

// `--cases forward` (inference logits, named only): rates at B = 1 and B = --batch, and nothing else;
// the default "all" does not run it.
TEST(BenchLM, ForwardCaseOnlyWhenNamed) {
  auto r = run_braid("bench lm --dim 32 --layers 2 --heads 4 --kv-heads 2 --hidden 48 --vocab 64 --seq 8 --batch 3 "
                     "--steps 1 --warmup 1 --repeats 2 --threads 1 --cases forward --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = braid::test::last_json_line(r.out);
  ASSERT_TRUE(j.contains("forward_tokens_per_s_b1")) << r.out;
  ASSERT_TRUE(j.contains("forward_tokens_per_s_b3")) << r.out;
  EXPECT_GT(j["forward_tokens_per_s_b1"].get<double>(), 0.0);
  EXPECT_GT(j["forward_tokens_per_s_b3"].get<double>(), 0.0);
  EXPECT_FALSE(j.contains("train_tokens_per_s"));
  EXPECT_FALSE(j.contains("gen_tokens_per_s_b1_cache"));
  auto all = run_braid("bench lm --dim 32 --layers 1 --heads 4 --kv-heads 2 --hidden 48 --vocab 64 --seq 8 --batch 2 "
                       "--prompt 4 --new-tokens 2 --steps 1 --warmup 0 --repeats 1 --threads 1 --json");
  ASSERT_EQ(all.code, 0) << all.err;
  EXPECT_FALSE(braid::test::last_json_line(all.out).contains("forward_tokens_per_s_b1"));
}

TEST(BenchLM, BadConfigIsAnInputError) {
  auto r = run_braid("bench lm --heads 3 --dim 32 --json");
  EXPECT_EQ(r.code, 2) << r.out << r.err;
}
