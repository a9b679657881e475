// Cross-modal generalization (eval::evaluate_cmg) on constructed cases with known answers.
//
// The pipeline is the real one (manifest, preprocessing, loader, class map, evaluate_cmg's heads and
// scoring); only the model is a stand-in whose embeddings are known exactly: each sample's image is
// a solid colour whose brightest channel is its class, its series is a one-hot of its class, and
// the model embeds both as the one-hot of the brightest channel. So a head trained on one modality
// meets exactly its training vectors on the other (score 1); with the series classes rotated by one
// it always predicts the wrong class (score 0); with a constant series embedding there is no shared
// signal and the score is the class share (1/3: the test split is balanced).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "braid/core/config.h"
#include "braid/data/image.h"
#include "braid/data/loader.h"
#include "braid/data/manifest.h"
#include "braid/eval/cmg.h"
#include "braid/models/model.h"
#include "braid/run/pipeline.h"
#include "test_util.h"

using namespace braid;
using namespace braid::test;

namespace {

enum class SeriesMode { Copy, Rotate, Constant };

// Embeds image and series as the one-hot of the class their data encodes (see above).
class OracleModel : public models::ModelImpl {
 public:
  explicit OracleModel(SeriesMode m) : mode_(m) {}
  torch::Tensor forward(const Batch& b) override { return torch::zeros({b.size(), 3}); }
  Capabilities capabilities() const override { return {{"image", "series"}, false, 0}; }
  torch::Tensor embed(const std::string& modality, const ModalityBatch& mb) override {
    if (modality == "image") return one_hot(mb.data.mean({2, 3}).argmax(1));    // [B, 3, H, W]
    if (modality != "series") return {};
    auto cls = mb.data.sum(1).argmax(1);                                        // [B, T, 3], zero padded
    if (mode_ == SeriesMode::Rotate) cls = (cls + 1) % 3;
    if (mode_ == SeriesMode::Constant) cls = torch::zeros_like(cls);
    return one_hot(cls);
  }

 private:
  static torch::Tensor one_hot(const torch::Tensor& c) { return torch::one_hot(c, 3).to(torch::kFloat); }
  SeriesMode mode_;
};

// 36 samples, class i % 3; every 4th (i % 4 == 3) is test: 9 test samples, 3 per class; 27 train, 9 per class.
std::string make_manifest(const std::string& dir) {
  std::string lines;
  for (int i = 0; i < 36; ++i) {
    const int c = i % 3;
    std::vector<uint8_t> px(4 * 4 * 3);
    for (size_t k = 0; k < px.size(); ++k) px[k] = static_cast<uint8_t>(k % 3 == size_t(c) ? 200 + i : 20 + 2 * i);
    const std::string id = "s" + std::to_string(i);
    data::write_png(dir + "/" + id + ".png", 4, 4, 3, px.data());
    nlohmann::json rows = nlohmann::json::array();
    for (int t = 0; t < 2 + i % 2; ++t) {
      std::vector<double> r = {0.1 * t, 0.05 * (i % 5), 0.02 * t};
      r[c] = 1.0 + 0.1 * t;
      rows.push_back(r);
    }
    lines += nlohmann::json({{"id", id}, {"split", i % 4 == 3 ? "test" : "train"}, {"label", "class" + std::to_string(c)},
                             {"image", id + ".png"}, {"series", rows}})
                 .dump() +
             "\n";
  }
  write_file(dir + "/manifest.jsonl", lines);
  return dir + "/manifest.jsonl";
}

struct CmgCase {
  TempDir dir{"cmg"};
  std::shared_ptr<const data::Manifest> manifest;
  run::Pipeline p;

  CmgCase() {
    manifest = std::make_shared<data::Manifest>(data::Manifest::load(make_manifest(dir.path.string())));
    p.recipe = Config::from_string(
        "seed: 0\ndata: {workers: 1, image: {size: 4}, series: {normalize: false}}\ntrain: {batch_size: 8}\n", "cmg");
    p.task = models::Task::Align;
    p.modalities = {"image", "series"};
    p.classes = std::make_shared<data::ClassMap>(data::ClassMap::from_manifest(*manifest, "train"));
    p.pre = std::make_shared<data::Preprocessor>(data::PreprocessOptions::from_config(p.recipe.at("data")),
                                                 p.modalities, nullptr);
  }
  nlohmann::json cmg(SeriesMode mode) {
    p.model = std::make_shared<OracleModel>(mode);
    eval::CmgOptions o;
    o.epochs = 200;
    return eval::evaluate_cmg(p, manifest, o);
  }
};

double acc(const nlohmann::json& r, const std::string& pair) { return r.at("pairs").at(pair).at("acc").get<double>(); }

}  // namespace

TEST(CmgKnownAnswer, CopiedModalityScoresOneRotatedZeroAndNoSignalChance) {
  CmgCase s;
  ASSERT_EQ(s.p.classes->names(), (std::vector<std::string>{"class0", "class1", "class2"}));

  // B is an exact copy of A: every head scores 1 on every modality; retrieval finds the pair at rank 1
  auto copy = s.cmg(SeriesMode::Copy);
  EXPECT_EQ(copy["classes"].get<int64_t>(), 3);
  EXPECT_NEAR(copy["chance"].get<double>(), 1.0 / 3, 1e-12);
  ASSERT_EQ(copy["pairs"].size(), 4u) << copy.dump();
  for (const char* pair : {"image->image", "image->series", "series->image", "series->series"}) {
    const auto& v = copy["pairs"][pair];
    EXPECT_EQ(v["acc"].get<double>(), 1.0) << pair;
    EXPECT_EQ(v["n_train"].get<int64_t>(), 27) << pair;
    EXPECT_EQ(v["n_test"].get<int64_t>(), 9) << pair;
    EXPECT_NEAR(v["majority"].get<double>(), 1.0 / 3, 1e-12) << pair;
  }
  EXPECT_EQ(copy["mean_cross"].get<double>(), 1.0);
  EXPECT_EQ(copy["mean_r1"].get<double>(), 1.0);

  // B's classes rotated by one: a head trained on A predicts the wrong class for every B sample
  auto rot = s.cmg(SeriesMode::Rotate);
  EXPECT_EQ(acc(rot, "image->image"), 1.0);
  EXPECT_EQ(acc(rot, "series->series"), 1.0);
  EXPECT_EQ(acc(rot, "image->series"), 0.0);
  EXPECT_EQ(acc(rot, "series->image"), 0.0);
  EXPECT_EQ(rot["mean_cross"].get<double>(), 0.0);
  EXPECT_EQ(rot["mean_r1"].get<double>(), 0.0);  // the paired item scores 0, three others 1

  // no shared signal (one constant series vector): whatever the head predicts for it, it predicts for
  // every series sample, so it scores that class's share of the balanced test split
  auto none = s.cmg(SeriesMode::Constant);
  EXPECT_EQ(acc(none, "image->image"), 1.0);
  EXPECT_NEAR(acc(none, "image->series"), 1.0 / 3, 1e-12);
  EXPECT_NEAR(acc(none, "series->series"), 1.0 / 3, 1e-12);
  EXPECT_NEAR(none["pairs"]["image->series"]["majority"].get<double>(), none["chance"].get<double>(), 1e-12);
  // (series->image is left out: a head fitted on one constant input leaves the weights of the other
  // inputs at their random initialisation, so its score on images is not determined)

  // the table names every pair with its score
  auto table = eval::format_cmg(rot);
  EXPECT_NE(table.find("image->series"), std::string::npos) << table;
  EXPECT_NE(table.find("0.0000"), std::string::npos) << table;
}
