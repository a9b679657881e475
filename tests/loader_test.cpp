#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "braid/core/error.h"
#include "braid/data/loader.h"
#include "test_util.h"

using namespace braid::data;
using namespace braid::test;

namespace {

struct Fixture {
  std::shared_ptr<Manifest> manifest;
  std::shared_ptr<Tokenizer> tok;
  std::shared_ptr<Preprocessor> pre;
  std::shared_ptr<ClassMap> classes;
};

Fixture make(const std::string& dir, ToyOptions o = {}) {
  Fixture f;
  f.manifest = std::make_shared<Manifest>(Manifest::load(make_toy_dataset(dir, o)));
  std::vector<std::string> corpus;
  for (const auto& s : f.manifest->samples())
    for (const auto& t : s.text) corpus.push_back(t.second);
  Tokenizer::train(corpus, 40, dir + "/tok.model");
  f.tok = std::make_shared<Tokenizer>(Tokenizer::load(dir + "/tok.model"));
  PreprocessOptions po;
  po.image.size = 8;
  po.audio.n_mels = 16;
  f.pre = std::make_shared<Preprocessor>(po, std::vector<std::string>{"image", "audio", "text", "series"}, f.tok);
  f.classes = std::make_shared<ClassMap>(ClassMap::from_manifest(*f.manifest));
  return f;
}

std::vector<std::vector<int64_t>> drain(Loader& l, int64_t epoch, int64_t start = 0) {
  std::vector<std::vector<int64_t>> out;
  l.start_epoch(epoch, start);
  while (auto b = l.next()) out.push_back(b->index);
  return out;
}

}  // namespace

TEST(Loader, OrderIsAFunctionOfSeedAndEpoch) {
  auto f = make(temp_dir("loader"));
  auto idx = f.manifest->split_indices("train");
  LoaderOptions o;
  o.batch_size = 5;
  o.seed = 7;
  o.workers = 1;
  Loader a(f.manifest, idx, f.pre, o, Targets::Labels, f.classes);
  o.workers = 3;
  o.prefetch = 2;
  Loader b(f.manifest, idx, f.pre, o, Targets::Labels, f.classes);
  auto e0 = drain(a, 0);
  EXPECT_EQ(e0, drain(b, 0));             // same order with any worker count
  EXPECT_NE(e0, drain(a, 1));             // a new epoch reshuffles
  EXPECT_EQ(e0, drain(b, 0));             // and the same epoch repeats exactly
  auto tail = drain(a, 0, 2);             // resume in the middle of the epoch
  EXPECT_EQ(tail, std::vector<std::vector<int64_t>>(e0.begin() + 2, e0.end()));
  std::set<int64_t> seen;
  for (auto& batch : e0) seen.insert(batch.begin(), batch.end());
  EXPECT_EQ(seen.size(), idx.size());     // every sample exactly once
  EXPECT_EQ(static_cast<int64_t>(e0.size()), a.batches_per_epoch());
  o.seed = 8;
  Loader c(f.manifest, idx, f.pre, o, Targets::Labels, f.classes);
  EXPECT_NE(e0, drain(c, 0));
}

TEST(Loader, BatchesCarryPaddingLengthsAndPresence) {
  auto dir = temp_dir("loader");
  ToyOptions t;
  t.series = true;
  auto f = make(dir, t);
  // one sample without audio: presence must say so
  std::string m = read_file(dir + "/manifest.jsonl");
  auto first_nl = m.find('\n');
  auto j = nlohmann::json::parse(m.substr(0, first_nl));
  j.erase("audio");
  write_file(dir + "/m2.jsonl", j.dump() + m.substr(first_nl));
  auto man = std::make_shared<Manifest>(Manifest::load(dir + "/m2.jsonl"));
  LoaderOptions o;
  o.batch_size = 8;
  o.shuffle = false;
  Loader l(man, man->split_indices(""), f.pre, o, Targets::Labels, f.classes);
  l.start_epoch(0);
  auto b = l.next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->size(), 8);
  const auto& img = b->mods.at("image");
  EXPECT_EQ(img.data.sizes(), (std::vector<int64_t>{8, 3, 8, 8}));
  const auto& au = b->mods.at("audio");
  EXPECT_FALSE(au.present[0].item<bool>());
  EXPECT_TRUE(au.present[1].item<bool>());
  EXPECT_EQ(au.lengths[0].item<int64_t>(), 0);
  EXPECT_EQ(au.data.size(2), au.lengths.max().item<int64_t>());           // padded to the longest
  EXPECT_TRUE(au.data[0].abs().sum().item<float>() == 0.0f);              // absent rows are zeros
  const auto& tx = b->mods.at("text");
  EXPECT_EQ(tx.data.size(1), tx.lengths.max().item<int64_t>());
  EXPECT_EQ(tx.data.scalar_type(), torch::kLong);
  const auto& se = b->mods.at("series");
  EXPECT_EQ(se.data.size(2), 2);
  EXPECT_EQ(b->labels.sizes(), (std::vector<int64_t>{8}));
  EXPECT_EQ(b->labels[0].item<int64_t>(), f.classes->id("class0", "t"));
}

TEST(Loader, BrokenFileIsNamedWithManifestLine) {
  auto dir = temp_dir("loader");
  auto f = make(dir);
  // corrupt the image of the third sample
  write_file(dir + "/img/s2.png", "this is not a png");
  LoaderOptions o;
  o.batch_size = 4;
  o.shuffle = false;
  Loader l(f.manifest, f.manifest->split_indices(""), f.pre, o, Targets::Labels, f.classes);
  l.start_epoch(0);
  try {
    while (l.next()) {
    }
    FAIL() << "no error";
  } catch (const braid::InputError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("manifest.jsonl:3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("s2.png"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(Loader, LabelsOutsideTheClassMapAreNamed) {
  auto dir = temp_dir("loader");
  auto f = make(dir);
  write_file(dir + "/extra.jsonl", read_file(dir + "/manifest.jsonl") +
                                       R"({"id":"new","split":"test","label":"zebra","text":"x"})" "\n");
  auto man = std::make_shared<Manifest>(Manifest::load(dir + "/extra.jsonl"));
  try {
    Loader l(man, man->split_indices("test"), f.pre, LoaderOptions{}, Targets::Labels, f.classes);
    FAIL() << "no error";
  } catch (const braid::InputError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("extra.jsonl:65"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'zebra'"), std::string::npos) << msg;
  }
}

TEST(ClassMap, IntegerLabelsSortNumericallyAndRoundTrip) {
  auto dir = temp_dir("classmap");
  std::string m;
  for (int i : {10, 2, 1, 2})
    m += nlohmann::json({{"id", "s" + std::to_string(m.size())}, {"split", "train"}, {"label", i}, {"text", "x"}}).dump() + "\n";
  write_file(dir + "/m.jsonl", m);
  auto c = ClassMap::from_manifest(Manifest::load(dir + "/m.jsonl"));
  EXPECT_EQ(c.names(), (std::vector<std::string>{"1", "2", "10"}));
  c.save(dir + "/classes.json");
  EXPECT_EQ(ClassMap::load(dir + "/classes.json").names(), c.names());
}

TEST(Tokenizer, TrainsOnChineseAndEnglishAndEncodes) {
  auto dir = temp_dir("tok");
  std::vector<std::string> corpus = {"red heart", "smiling face with open mouth", "红色的心", "笑脸", "a red apple"};
  Tokenizer::train(corpus, 30, dir + "/t.model");
  auto t = Tokenizer::load(dir + "/t.model");
  EXPECT_GT(t.vocab_size(), 8);
  auto ids = t.encode("red heart");
  EXPECT_FALSE(ids.empty());
  for (int id : ids) EXPECT_GT(id, 0);  // 0 is padding
  EXPECT_EQ(t.encode("red heart red heart red heart", 3).size(), 3u);
  EXPECT_FALSE(t.encode("红色").empty());
  EXPECT_THROW(Tokenizer::load(dir + "/missing.model"), braid::InputError);
  write_file(dir + "/bad.model", "garbage");
  EXPECT_THROW(Tokenizer::load(dir + "/bad.model"), braid::InputError);
}
