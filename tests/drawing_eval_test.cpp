// The text -> image evaluation (eval/drawing.h): KID against closed forms and a loop reference, the CAS and
// input helpers on constructed tensors, and evaluate_drawing end to end on constructed runs with known answers.
//
// The end-to-end case uses the real manifest, preprocessing, tokenizer and evaluation code; only the three
// models are stand-ins whose outputs are known exactly. Every image is (nearly) one solid colour: red, green or
// blue = class c0, c1, c2. The drawer paints each prompt its colour, except "blue star", which it paints red;
// the classifier reads the brightest channel; the align run embeds an image as the one-hot of its brightest
// channel and a text as the one-hot of its colour word, except the green test names, which it places on red
// (so the nearest train name of a green prompt is a red emoji). Its image tokenizer keeps the colour.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/data/image.h"
#include "braid/data/loader.h"
#include "braid/data/manifest.h"
#include "braid/data/tokenizer.h"
#include "braid/eval/drawing.h"
#include "braid/models/model.h"
#include "braid/run/chat.h"
#include "braid/run/pipeline.h"
#include "braid/run/query.h"
#include "draw_fixture.h"
#include "test_util.h"

using namespace braid;
using namespace braid::test;

namespace {

// MMD^2 by plain loops over doubles (the definition, written independently of polynomial_mmd2).
double mmd2_loops(const torch::Tensor& x, const torch::Tensor& y) {
  auto a = x.to(torch::kDouble).contiguous(), b = y.to(torch::kDouble).contiguous();
  const int64_t n = a.size(0), m = b.size(0), d = a.size(1);
  auto A = a.accessor<double, 2>(), B = b.accessor<double, 2>();
  auto k = [&](auto& u, int64_t i, auto& v, int64_t j) {
    double dot = 0;
    for (int64_t t = 0; t < d; ++t) dot += u[i][t] * v[j][t];
    return std::pow(dot / d + 1.0, 3);
  };
  double xx = 0, yy = 0, xy = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      if (i != j) xx += k(A, i, A, j);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < m; ++j)
      if (i != j) yy += k(B, i, B, j);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) xy += k(A, i, B, j);
  return xx / (n * (n - 1.0)) + yy / (m * (m - 1.0)) - 2 * xy / (double(n) * m);
}

}  // namespace

TEST(DrawingKid, ConstantSetsGiveTheClosedForm) {
  // x: 5 copies of a = (1, 0), y: 7 copies of b = (0, 1), d = 2: every within pair has k = (1/2 + 1)^3 = 3.375,
  // every cross pair k = (0 + 1)^3 = 1, so MMD^2 = 3.375 + 3.375 - 2 = 4.75
  auto x = torch::tensor({1.0, 0.0}).repeat({5, 1}), y = torch::tensor({0.0, 1.0}).repeat({7, 1});
  EXPECT_NEAR(eval::polynomial_mmd2(x, y), 4.75, 1e-12);
  EXPECT_NEAR(eval::polynomial_mmd2(y, x), 4.75, 1e-12);
  // one dimension, x = {1, 2}, y = {1, 2}: within k(1, 2) = 27 on each side; cross (8 + 27 + 27 + 125) / 4 = 46.75
  auto s = torch::tensor({1.0, 2.0}).view({2, 1});
  EXPECT_NEAR(eval::polynomial_mmd2(s, s), 27 + 27 - 2 * 46.75, 1e-12);
  // the same set on both sides: the unbiased estimate leaves out only the diagonal within each side
  auto k = eval::kernel_inception_distance(x, x, 3, 1000, 0);
  EXPECT_NEAR(k.mean, 0.0, 1e-12);  // all rows equal: within and cross means coincide
  EXPECT_EQ(k.std, 0.0);
}

TEST(DrawingKid, MatchesTheLoopReferenceAndSeparatesDistributions) {
  torch::manual_seed(3);
  auto x = torch::randn({40, 6}), y = torch::randn({30, 6}) * 1.5 + 0.3;
  const double ref = mmd2_loops(x, y);
  EXPECT_NEAR(eval::polynomial_mmd2(x, y), ref, 1e-9 * std::max(1.0, std::abs(ref)));

  // subsets no larger than a side use it whole: every subset is the full MMD^2, std 0
  auto whole = eval::kernel_inception_distance(x, y, 10, 1000, 7);
  EXPECT_EQ(whole.x_size, 40);
  EXPECT_EQ(whole.y_size, 30);
  EXPECT_EQ(whole.subsets, 10);
  EXPECT_NEAR(whole.mean, ref, 1e-9 * std::max(1.0, std::abs(ref)));
  EXPECT_NEAR(whole.std, 0.0, 1e-12);

  // smaller subsets: sizes min(size, n) per side, a spread, the same numbers for the same seed only
  auto a = eval::kernel_inception_distance(x, y, 10, 20, 7), b = eval::kernel_inception_distance(x, y, 10, 20, 7);
  auto c = eval::kernel_inception_distance(x, y, 10, 20, 8);
  EXPECT_EQ(a.x_size, 20);
  EXPECT_EQ(a.y_size, 20);
  EXPECT_GT(a.std, 0.0);
  EXPECT_EQ(a.mean, b.mean);
  EXPECT_NE(a.mean, c.mean);
  // each subset's value is an MMD^2 of 20 + 20 rows: the first one recomputed from the same permutations
  auto gen = at::detail::createCPUGenerator(7);
  auto px = torch::randperm(40, gen, torch::kLong).slice(0, 0, 20);
  auto py = torch::randperm(30, gen, torch::kLong).slice(0, 0, 20);
  auto one = eval::kernel_inception_distance(x, y, 1, 20, 7);
  EXPECT_NEAR(one.mean, mmd2_loops(x.index_select(0, px), y.index_select(0, py)), 1e-9);

  // unbiased: two samples of one distribution score about 0, a shifted one clearly more
  torch::manual_seed(11);
  auto p = torch::randn({400, 8}), q = torch::randn({400, 8}), shifted = torch::randn({400, 8}) + 1.0;
  auto same = eval::kernel_inception_distance(p, q, 10, 200, 0);
  auto diff = eval::kernel_inception_distance(p, shifted, 10, 200, 0);
  EXPECT_LT(std::abs(same.mean), 0.1) << same.mean;
  EXPECT_GT(diff.mean, 1.0) << diff.mean;
  EXPECT_GT(diff.mean, 10 * std::abs(same.mean));
}

TEST(DrawingHelpers, LabelAccuracySkipsUnlabelledRows) {
  auto logits = torch::tensor({{2.0, 1.0, 0.0}, {0.0, 3.0, 1.0}, {0.0, 0.0, 5.0}, {1.0, 0.0, 0.0}, {0.0, 2.0, 0.0}});
  auto a = eval::label_accuracy(logits, torch::tensor({0, 1, 0, -1, 2}, torch::kLong));
  EXPECT_EQ(a.n, 4);
  EXPECT_DOUBLE_EQ(a.accuracy, 0.5);  // rows 0 and 1 right, 2 and 4 wrong, 3 unlabelled
  auto none = eval::label_accuracy(logits, torch::full({5}, -1, torch::kLong));
  EXPECT_EQ(none.n, 0);
  EXPECT_EQ(none.accuracy, 0.0);
  EXPECT_THROW(eval::label_accuracy(logits, torch::zeros({4}, torch::kLong)), c10::Error);
}

TEST(DrawingHelpers, ImageInputNormalizesAndResizes) {
  data::ImageOptions opt;
  opt.size = 4;
  opt.mean = {0.5, 0.25, 0.0};
  opt.std = {0.5, 0.25, 2.0};
  auto img = torch::zeros({2, 3, 4, 4});
  img.select(1, 0).fill_(1.0);
  img.select(1, 1).fill_(0.5);
  img.select(1, 2).fill_(0.2);
  auto mb = eval::image_input(img, opt);
  ASSERT_EQ(mb.data.sizes(), (std::vector<int64_t>{2, 3, 4, 4}));
  EXPECT_TRUE(AllClose(mb.data.select(1, 0), torch::full({2, 4, 4}, 1.0), 1e-6, "red"));
  EXPECT_TRUE(AllClose(mb.data.select(1, 1), torch::full({2, 4, 4}, 1.0), 1e-6, "green"));
  EXPECT_TRUE(AllClose(mb.data.select(1, 2), torch::full({2, 4, 4}, 0.1), 1e-6, "blue"));
  EXPECT_TRUE(mb.present.all().item<bool>());
  EXPECT_EQ(mb.lengths.sum().item<int64_t>(), 2);
  // another side: resized (a solid colour stays that colour), then normalized
  opt.size = 2;
  auto small = eval::image_input(img, opt);
  ASSERT_EQ(small.data.sizes(), (std::vector<int64_t>{2, 3, 2, 2}));
  EXPECT_TRUE(AllClose(small.data.select(1, 2), torch::full({2, 2, 2}, 0.1), 1e-6, "resized blue"));
  // antialiased: 8 columns -> 2 widens the triangle filter to +-4 input pixels, so the left output pixel
  // (centre 2.0) weighs input columns 0..6 by 5/8, 7/8, 7/8, 5/8, 3/8, 1/8, 0: a bright left half gives 6/7
  // there and 1/7 on the right (plain bilinear would give 1 and 0)
  auto half = torch::zeros({1, 3, 8, 8});
  half.slice(3, 0, 4).fill_(1.0);
  opt.mean = {0, 0, 0};
  opt.std = {1, 1, 1};
  auto h = eval::image_input(half, opt).data;
  EXPECT_NEAR(h[0][0][0][0].item<float>(), 6.0 / 7, 1e-6);
  EXPECT_NEAR(h[0][0][0][1].item<float>(), 1.0 / 7, 1e-6);
  // and the same pixels as the loaders' resize of 8-bit images (data::resize_image)
  data::RawImage raw;
  raw.width = 9;
  raw.height = 7;
  for (int i = 0; i < 9 * 7 * 3; ++i) raw.rgb.push_back(static_cast<uint8_t>((i * 37 + i / 5) % 256));
  auto chw = torch::from_blob(raw.rgb.data(), {7, 9, 3}, torch::kUInt8).permute({2, 0, 1}).to(torch::kFloat) / 255;
  opt.size = 3;
  EXPECT_TRUE(AllClose(eval::image_input(chw.unsqueeze(0), opt).data[0], data::resize_image(raw, 3, 3), 1e-5,
                       "image_input vs data::resize_image"));
}

namespace {

// colour c in {0: red, 1: green, 2: blue} as a [3, H, W] image in [0, 1]
torch::Tensor solid(int64_t c, int64_t side) {
  auto x = torch::zeros({3, side, side});
  x[c].fill_(1.0);
  return x;
}

std::vector<int64_t> ids_of(const torch::Tensor& row) {
  auto r = row.contiguous().to(torch::kLong);
  return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

class StandInDrawer : public models::ModelImpl {
 public:
  std::map<std::vector<int64_t>, int64_t> colour_of_prompt;
  std::vector<DrawRequest> calls;
  torch::Tensor forward(const Batch& b) override { return torch::zeros({b.size(), 1}); }
  Capabilities capabilities() const override {
    Capabilities c;
    c.draws = true;
    c.codes = 3;
    return c;
  }
  torch::Tensor draw(const DrawRequest& r) override {
    calls.push_back(r);
    std::vector<torch::Tensor> out;
    for (const auto& p : r.prompts) {
      auto it = colour_of_prompt.find(p);
      if (it == colour_of_prompt.end()) throw InputError("stand-in drawer: unknown prompt");
      for (int64_t k = 0; k < r.per_prompt; ++k) out.push_back(solid(it->second, 8) * (0.9 + 0.05 * k));
    }
    return torch::stack(out);
  }
  // one code per image: its brightest channel; decoded back to that pure colour
  torch::Tensor codes(const std::string&, const ModalityBatch& mb) override {
    return mb.data.mean({2, 3}).argmax(1).view({-1, 1});
  }
  torch::Tensor decode_codes(const std::string&, const torch::Tensor& codes) override {
    std::vector<torch::Tensor> out;
    for (int64_t i = 0; i < codes.size(0); ++i) out.push_back(solid(codes[i][0].item<int64_t>(), 8));
    return torch::stack(out);
  }
};

class StandInClassifier : public models::ModelImpl {
 public:
  torch::Tensor forward(const Batch& b) override { return b.mods.at("image").data.mean({2, 3}); }  // [B, 3]
};

class StandInClip : public models::ModelImpl {
 public:
  std::map<std::vector<int64_t>, int64_t> colour_of_text;
  torch::Tensor forward(const Batch& b) override { return torch::zeros({b.size(), 1}); }
  Capabilities capabilities() const override {
    Capabilities c;
    c.embeds = {"image", "text"};
    return c;
  }
  torch::Tensor embed(const std::string& modality, const ModalityBatch& mb) override {
    if (modality == "image") return torch::one_hot(mb.data.mean({2, 3}).argmax(1), 3).to(torch::kFloat);
    std::vector<int64_t> c;
    for (int64_t i = 0; i < mb.data.size(0); ++i) {
      auto ids = ids_of(mb.data[i].slice(0, 0, mb.lengths[i].item<int64_t>()));
      auto it = colour_of_text.find(ids);
      if (it == colour_of_text.end()) throw InputError("stand-in clip: unknown text");
      c.push_back(it->second);
    }
    return torch::one_hot(torch::tensor(c, torch::kLong), 3).to(torch::kFloat);
  }
};

struct Named {
  std::string text;
  int64_t colour;
};

// test: 6 emoji (3 red, 2 green, 1 blue), two styles each; train: 2 emoji per colour, two styles each
const std::vector<Named> kTest = {{"red star", 0},   {"red moon", 0},   {"red sun", 0},
                                  {"green star", 1}, {"green moon", 1}, {"blue star", 2}};
const std::vector<Named> kTrain = {{"red ball", 0},  {"red box", 0},  {"green ball", 1},
                                   {"green box", 1}, {"blue ball", 2}, {"blue box", 2}};

struct DrawCase {
  TempDir dir{"drawing"};
  std::shared_ptr<const data::Manifest> manifest;
  run::Pipeline drawer, classifier, clip;
  std::shared_ptr<StandInDrawer> drawer_model = std::make_shared<StandInDrawer>();
  std::shared_ptr<StandInClip> clip_model = std::make_shared<StandInClip>();

  DrawCase() {
    std::string lines;
    int row = 0;
    auto add = [&](const std::vector<Named>& set, const std::string& split, const std::string& prefix) {
      for (size_t g = 0; g < set.size(); ++g)
        for (const char* style : {"a", "b"}) {
          const std::string id = prefix + std::to_string(g) + "-" + style;
          std::vector<uint8_t> px(8 * 8 * 3);
          for (size_t k = 0; k < px.size(); ++k)
            px[k] = static_cast<uint8_t>(int64_t(k % 3) == set[g].colour ? 200 + row : 30 + row);
          data::write_png(dir.path.string() + "/" + id + ".png", 8, 8, 3, px.data());
          lines += nlohmann::json({{"id", id}, {"split", split}, {"label", "c" + std::to_string(set[g].colour)},
                                   {"group", prefix + std::to_string(g)}, {"text", {{"en", set[g].text}}},
                                   {"image", id + ".png"}})
                       .dump() +
                   "\n";
          ++row;
        }
    };
    add(kTrain, "train", "tr");
    add(kTest, "test", "te");
    write_file(dir.file("manifest.jsonl"), lines);
    manifest = std::make_shared<data::Manifest>(data::Manifest::load(dir.file("manifest.jsonl")));

    std::vector<std::string> corpus;
    for (const auto& n : kTest) corpus.push_back(n.text);
    for (const auto& n : kTrain) corpus.push_back(n.text);
    data::Tokenizer::train(corpus, 40, dir.file("tok.model"));
    auto tok = std::make_shared<data::Tokenizer>(data::Tokenizer::load(dir.file("tok.model")));

    auto setup = [&](run::Pipeline& p, const std::string& recipe, models::Task task, std::vector<std::string> mods,
                     bool text) {
      p.recipe = Config::from_string(recipe, "drawing-test");
      p.task = task;
      p.modalities = mods;
      if (text) p.tokenizer = tok;
      p.pre = std::make_shared<data::Preprocessor>(data::PreprocessOptions::from_config(p.recipe.at("data")),
                                                   p.modalities, text ? tok : nullptr);
    };
    setup(drawer, "data: {image: {size: 8}, text: {view: en, max_tokens: 8}}\n", models::Task::Generate,
          {"image", "text"}, true);
    setup(classifier, "task: classify\ndata: {image: {size: 4}}\n", models::Task::Classify, {"image"}, false);
    setup(clip, "data: {image: {size: 8}, text: {view: random, max_tokens: 8}}\n", models::Task::Align,
          {"image", "text"}, true);
    classifier.classes = std::make_shared<data::ClassMap>(data::ClassMap::from_manifest(*manifest, "train"));
    classifier.model = std::make_shared<StandInClassifier>();

    for (const auto& n : kTest)  // the drawer paints "blue star" red
      drawer_model->colour_of_prompt[run::prompt_ids(*tok, n.text)] = n.text == "blue star" ? 0 : n.colour;
    drawer.model = drawer_model;
    auto text_ids = [&](const std::string& t) {
      auto mb = run::text_batch(*clip.pre, {t});
      return ids_of(mb.data[0].slice(0, 0, mb.lengths[0].item<int64_t>()));
    };
    for (const auto& n : kTest)  // the text tower places the green test names on red
      clip_model->colour_of_text[text_ids(n.text)] = n.colour == 1 ? 0 : n.colour;
    for (const auto& n : kTrain) clip_model->colour_of_text[text_ids(n.text)] = n.colour;
    clip.model = clip_model;
  }
};

// MMD^2 of two sets of one-hot colours x sqrt(3) (k = 8 for equal colours, 1 otherwise) from colour counts.
double mmd2_counts(const std::vector<double>& a, const std::vector<double>& b) {
  auto within = [](const std::vector<double>& c) {
    double n = 0, same = 0;
    for (double v : c) n += v, same += v * (v - 1);
    return (8 * same + (n * (n - 1) - same)) / (n * (n - 1));
  };
  double n = 0, m = 0, same = 0;
  for (size_t i = 0; i < a.size(); ++i) n += a[i], m += b[i], same += a[i] * b[i];
  return within(a) + within(b) - 2 * (8 * same + (n * m - same)) / (n * m);
}

}  // namespace

TEST(DrawingEval, KnownAnswersOnStandInRuns) {
  DrawCase s;
  ASSERT_EQ(s.classifier.classes->names(), (std::vector<std::string>{"c0", "c1", "c2"}));
  eval::DrawEvalOptions o;
  o.per_prompt = 2;
  o.guidance = 2.5;
  o.prompts_per_call = 5;
  o.seed = 4;
  o.out_dir = (s.dir.path / "out").string();
  auto r = eval::evaluate_drawing(s.drawer, s.classifier, s.clip, s.manifest, o);

  // 12 test rows in calls of 5, 5, 2 prompts, guidance and images per prompt passed through, one seed per call
  ASSERT_EQ(s.drawer_model->calls.size(), 3u);
  EXPECT_EQ(s.drawer_model->calls[0].prompts.size(), 5u);
  EXPECT_EQ(s.drawer_model->calls[2].prompts.size(), 2u);
  for (const auto& c : s.drawer_model->calls) {
    EXPECT_EQ(c.per_prompt, 2);
    EXPECT_EQ(c.guidance, 2.5);
  }
  EXPECT_NE(s.drawer_model->calls[0].seed, s.drawer_model->calls[1].seed);
  EXPECT_EQ(r["rows"].get<int64_t>(), 12);

  // generated: 24 images; the 4 of "blue star" are red: the wrong class, and 6 red real images rank above
  // the blue ones (rank 7: not in the top 1, in the top 10)
  const auto& g = r["generated"];
  EXPECT_EQ(g["n"].get<int64_t>(), 24);
  EXPECT_NEAR(g["cas"].get<double>(), 20.0 / 24, 1e-12);
  EXPECT_NEAR(g["r1"].get<double>(), 20.0 / 24, 1e-12);
  EXPECT_NEAR(g["r10"].get<double>(), 1.0, 1e-12);
  // KID in the tower's space: generated colours red 16, green 8; real red 6, green 4, blue 2 (whole sets)
  EXPECT_NEAR(g["kid"].get<double>(), mmd2_counts({16, 8, 0}, {6, 4, 2}), 1e-5);
  EXPECT_NEAR(g["kid_std"].get<double>(), 0.0, 1e-12);

  // nearest train name: the green prompts' nearest names are red emoji (4 rows wrong of 12)
  const auto& nn = r["nearest_name"];
  EXPECT_EQ(nn["n"].get<int64_t>(), 12);
  EXPECT_NEAR(nn["cas"].get<double>(), 8.0 / 12, 1e-12);
  EXPECT_NEAR(nn["r1"].get<double>(), 8.0 / 12, 1e-12);
  EXPECT_NEAR(nn["r10"].get<double>(), 1.0, 1e-12);
  EXPECT_NEAR(nn["kid"].get<double>(), mmd2_counts({10, 0, 2}, {6, 4, 2}), 1e-5);
  EXPECT_EQ(nn["examples"][8]["prompt"], "green moon");
  EXPECT_EQ(nn["examples"][8]["nearest"].get<std::string>().rfind("red ", 0), 0u) << nn["examples"].dump();

  // the image tokenizer keeps every colour; the classifier is right on every real image
  const auto& vq = r["vq_ceiling"];
  EXPECT_EQ(vq["n"].get<int64_t>(), 12);
  EXPECT_EQ(vq["cas"].get<double>(), 1.0);
  EXPECT_EQ(vq["r1"].get<double>(), 1.0);
  EXPECT_NEAR(vq["kid"].get<double>(), mmd2_counts({6, 4, 2}, {6, 4, 2}), 1e-5);
  EXPECT_EQ(r["real"]["cas"].get<double>(), 1.0);
  EXPECT_EQ(r["real"]["cas_n"].get<int64_t>(), 12);

  // --out: every image, a grid of the 6 emoji (cells of 8 px scaled to 64, gaps 16) and their prompts
  for (size_t gi = 0; gi < kTest.size(); ++gi)
    for (const char* style : {"a", "b"})
      for (int k = 0; k < 2; ++k)
        EXPECT_TRUE(std::filesystem::exists(s.dir.path / "out" / ("te" + std::to_string(gi) + "-" + style + "-" +
                                                                   std::to_string(k) + ".png")));
  auto grid = data::decode_image_file((s.dir.path / "out" / "grid.png").string());
  EXPECT_EQ(grid.width, 6 * 64 + 5 * 16);
  EXPECT_EQ(grid.height, 64);
  auto px = [&](int64_t x, int64_t y, int c) { return grid.rgb[(y * grid.width + x) * 3 + c]; };
  EXPECT_GT(px(3 * 80 + 32, 32, 1), 200);  // cell 3: "green star", green
  EXPECT_LT(px(3 * 80 + 32, 32, 0), 30);
  EXPECT_GT(px(5 * 80 + 32, 32, 0), 200);  // cell 5: "blue star", drawn red
  EXPECT_LT(px(5 * 80 + 32, 32, 2), 30);
  for (const char* f : {"grid_real.png", "grid_nearest.png", "grid_vq.png"})
    EXPECT_TRUE(std::filesystem::exists(s.dir.path / "out" / f)) << f;
  auto prompts = read_file((s.dir.path / "out" / "prompts.txt").string());
  EXPECT_EQ(prompts.rfind("0\tte0-a\tred star\n", 0), 0u) << prompts;
  EXPECT_NE(prompts.find("5\tte5-a\tblue star\n"), std::string::npos) << prompts;

  // the table names each source
  auto table = eval::format_drawing(r);
  for (const char* w : {"generated", "nearest_name", "vq_ceiling", "real", "0.8333", "0.6667"})
    EXPECT_NE(table.find(w), std::string::npos) << w << "\n" << table;
}

TEST(DrawingEval, SameSeedSameCallsAndRolesAreChecked) {
  DrawCase s;
  eval::DrawEvalOptions o;
  o.per_prompt = 1;
  auto a = eval::evaluate_drawing(s.drawer, s.classifier, s.clip, s.manifest, o);
  auto b = eval::evaluate_drawing(s.drawer, s.classifier, s.clip, s.manifest, o);
  ASSERT_EQ(s.drawer_model->calls.size(), 2u);  // 12 rows in one call of 32, twice
  EXPECT_EQ(s.drawer_model->calls[0].seed, s.drawer_model->calls[1].seed);
  EXPECT_EQ(a["generated"]["kid"], b["generated"]["kid"]);
  EXPECT_EQ(a.count("out_dir"), 0u);

  auto message = [&](auto&& f) {
    try {
      f();
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // a classifier that reads more than images
  s.classifier.modalities = {"image", "text"};
  auto m = message([&] { eval::evaluate_drawing(s.drawer, s.classifier, s.clip, s.manifest, o); });
  EXPECT_NE(m.find("--classifier"), std::string::npos) << m;
  s.classifier.modalities = {"image"};
  // an align run that does not embed text; a run that does not draw (the classifier in its place)
  s.clip.task = models::Task::Classify;
  m = message([&] { eval::evaluate_drawing(s.drawer, s.classifier, s.clip, s.manifest, o); });
  EXPECT_NE(m.find("--clip"), std::string::npos) << m;
  s.clip.task = models::Task::Align;
  m = message([&] { eval::evaluate_drawing(s.classifier, s.classifier, s.clip, s.manifest, o); });
  EXPECT_NE(m.find("does not draw"), std::string::npos) << m;
  // a split with no rows
  o.split = "val";
  m = message([&] { eval::evaluate_drawing(s.drawer, s.classifier, s.clip, s.manifest, o); });
  EXPECT_NE(m.find("manifest.jsonl"), std::string::npos) << m;
  EXPECT_NE(m.find("'val'"), std::string::npos) << m;
  o.split = "test";
  o.per_prompt = 0;
  m = message([&] { eval::evaluate_drawing(s.drawer, s.classifier, s.clip, s.manifest, o); });
  EXPECT_NE(m.find("--per-prompt"), std::string::npos) << m;
}

namespace {

// Tiny runs on the toy data for `braid eval --task draw` through the CLI: a vq_image tokenizer (16x16 -> 4x4
// codes) and an early_fusion drawer from it (draw_fixture.h), an image-only classifier at the drawer's size and
// an align run at half its size (the resize path).
const char* kTinyClassifier = R"(
task: classify
threads: 1
data: {image: {size: 16}}
model:
  name: fusion_classifier
  modalities: [image]
  encoders: {image: {name: image_cnn, channels: [4], dim: 8}}
train: {epochs: 3, batch_size: 8, lr: 0.01}
)";
const char* kTinyClip = R"(
task: align
threads: 1
data: {image: {size: 8}, text: {vocab: 60, view: en, max_tokens: 8}}
model:
  name: dual_tower
  modalities: [image, text]
  encoders:
    image: {name: image_vit, patch: 4, dim: 16, depth: 1, heads: 2}
    text: {name: text_transformer, dim: 16, layers: 1, heads: 2, max_len: 8}
  embed_dim: 8
train: {epochs: 1, batch_size: 8}
)";

}  // namespace

TEST(DrawingEvalCli, TinyRunsEndToEnd) {
  TempDir dir("drawing_cli");
  const std::string d = dir.path.string();
  const std::string manifest = make_toy_dataset(d + "/data", ToyOptions{48, 2, true, false, true});
  auto train = [&](const std::string& name, const std::string& recipe) {
    write_file(d + "/" + name + ".yaml", recipe);
    auto r = run_braid("train " + q(d + "/" + name + ".yaml") + " --data " + q(manifest) + " --out " + q(d + "/" + name));
    ASSERT_EQ(r.code, 0) << name << ": " << r.err;
  };
  train("vq", kTinyVQRecipe);
  train("t2i", tiny_t2i_recipe(d + "/vq"));
  train("clf", kTinyClassifier);
  train("clip", kTinyClip);
  const auto m = data::Manifest::load(manifest);
  const int64_t rows = static_cast<int64_t>(m.split_indices("test").size());
  ASSERT_GE(rows, 2);

  const std::string base = "eval " + q(d + "/t2i") + " --data " + q(manifest) + " --task draw --threads 1";
  auto r = run_braid(base + " --classifier " + q(d + "/clf") + " --clip " + q(d + "/clip") +
                     " --per-prompt 2 --guidance 1.5 --seed 3 --out " + q(d + "/out") + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = last_json_line(r.out);
  EXPECT_EQ(j["task"], "draw");
  EXPECT_EQ(j["rows"].get<int64_t>(), rows);
  EXPECT_EQ(j["per_prompt"].get<int64_t>(), 2);
  EXPECT_EQ(j["guidance"].get<double>(), 1.5);
  EXPECT_EQ(j["generated"]["n"].get<int64_t>(), 2 * rows);
  for (const char* src : {"generated", "nearest_name", "vq_ceiling"}) {
    const auto& s = j[src];
    ASSERT_TRUE(s.contains("cas") && s.contains("r1") && s.contains("r10") && s.contains("kid")) << src << j.dump();
    EXPECT_GE(s["cas"].get<double>(), 0.0);
    EXPECT_LE(s["cas"].get<double>(), 1.0);
    EXPECT_LE(s["r1"].get<double>(), s["r10"].get<double>()) << src;
    EXPECT_TRUE(std::isfinite(s["kid"].get<double>())) << src;
  }
  // the real images at the drawer's size are what the classifier's own loader gives it: the same accuracy
  const auto recount = recount_accuracy(d + "/clf", manifest, "test");
  EXPECT_EQ(j["real"]["cas_n"].get<int64_t>(), recount.n);
  EXPECT_NEAR(j["real"]["cas"].get<double>(), recount.accuracy(), 1e-12);
  // the table and the files
  EXPECT_NE(r.out.find("nearest_name"), std::string::npos) << r.out;
  for (int64_t i : m.split_indices("test"))
    for (int k = 0; k < 2; ++k)
      EXPECT_TRUE(std::filesystem::exists(d + "/out/" + m.samples()[i].id + "-" + std::to_string(k) + ".png"))
          << m.samples()[i].id;
  auto grid = data::decode_image_file(d + "/out/grid.png");
  EXPECT_EQ(grid.height, 64);  // one row of 16-pixel cells scaled to 64
  auto prompts = read_file(d + "/out/prompts.txt");
  EXPECT_EQ(std::count(prompts.begin(), prompts.end(), '\n'), rows) << prompts;  // toy rows have no group: one cell each

  // the same seed draws the same images
  auto again = run_braid(base + " --classifier " + q(d + "/clf") + " --clip " + q(d + "/clip") +
                         " --per-prompt 2 --guidance 1.5 --seed 3 --json");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(last_json_line(again.out)["generated"], j["generated"]);

  // one-line errors, exit 2: no judges; judges in the wrong roles
  for (const auto& [args, want] : std::vector<std::pair<std::string, std::string>>{
           {base, "--classifier RUN"},
           {base + " --classifier " + q(d + "/clip") + " --clip " + q(d + "/clip"), "--classifier"},
           {base + " --classifier " + q(d + "/clf") + " --clip " + q(d + "/clf"), "--clip"},
           {"eval " + q(d + "/clf") + " --data " + q(manifest) + " --task draw --classifier " + q(d + "/clf") +
                " --clip " + q(d + "/clip"),
            "does not draw"}}) {
    auto e = run_braid(args);
    EXPECT_EQ(e.code, 2) << args << "\n" << e.err;
    const auto line = e.err.substr(0, e.err.find('\n'));
    EXPECT_NE(line.find(want), std::string::npos) << "expected '" << want << "' in: " << e.err;
  }
}
