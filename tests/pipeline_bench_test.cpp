// `braid bench pipeline`: runs on a toy dataset for both modalities, reports a rate, rejects bad input.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "test_util.h"
#include "braid/core/fs.h"

using braid::test::q;
using braid::test::run_braid;

TEST(BenchPipeline, ImageAndAudioReportRatesAndDump) {
  const auto dir = braid::test::temp_dir("bench_pipeline");
  braid::test::ToyOptions opt;
  opt.n = 12;
  opt.text = false;
  const auto manifest = braid::test::make_toy_dataset(dir, opt);
  for (const std::string m : {"image", "audio"}) {
    const auto dump = dir + "/" + m + ".npy";
    auto r = run_braid("bench pipeline --data " + q(manifest) + " --modality " + m +
                       " --limit 5 --repeats 2 --workers 2 --json --dump " + q(dump));
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["samples"].get<int>(), 5);
    EXPECT_EQ(j["runs"].size(), 2u);
    EXPECT_GT(j["samples_per_s"].get<double>(), 0.0);
    EXPECT_TRUE(std::filesystem::exists(dump));
  }
  auto bad = run_braid("bench pipeline --data " + q(manifest) + " --modality video");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--modality must be image or audio"), std::string::npos) << bad.err;
  braid::remove_tree(dir);
}
