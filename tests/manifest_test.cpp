#include <gtest/gtest.h>

#include "braid/core/error.h"
#include "braid/data/manifest.h"
#include "test_util.h"

using braid::data::Manifest;
using namespace braid::test;

namespace {

// Write `lines` as a manifest and return the InputError message of loading it ("" if it loads).
std::string load_error(const std::string& lines) {
  auto dir = temp_dir("manifest");
  write_file(dir + "/m.jsonl", lines);
  try {
    Manifest::load(dir + "/m.jsonl");
  } catch (const braid::InputError& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::string& lines, const std::vector<std::string>& parts) {
  auto msg = load_error(lines);
  ASSERT_FALSE(msg.empty()) << "expected an error for: " << lines;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "message must be one line: " << msg;
  for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

}  // namespace

TEST(Manifest, ParsesEveryKey) {
  auto dir = temp_dir("manifest");
  write_file(dir + "/m.jsonl",
             R"({"id":"a","split":"train","label":"cat","group":"g1","text":{"en":"a cat","zh":"猫"},"image":"i/a.png","audio":"w/a.wav"})"
             "\n\n"
             R"({"id":"b","split":"test","label":3,"target":[0.5,-1],"text":"plain","series":[[1,2],[3,4]]})"
             "\n"
             R"({"id":"c","split":"val","series":"s/c.csv","target":[1,2]})"
             "\n");
  auto m = Manifest::load(dir + "/m.jsonl");
  ASSERT_EQ(m.samples().size(), 3u);
  const auto& a = m.samples()[0];
  EXPECT_EQ(a.id, "a");
  EXPECT_EQ(*a.label, "cat");
  EXPECT_EQ(a.group, "g1");
  ASSERT_EQ(a.text.size(), 2u);
  EXPECT_EQ(a.text[1].first, "zh");
  EXPECT_EQ(a.image, dir + "/i/a.png");  // relative to the manifest
  EXPECT_TRUE(a.has("audio"));
  EXPECT_FALSE(a.has("series"));
  const auto& b = m.samples()[1];
  EXPECT_EQ(*b.label, "3");
  EXPECT_EQ(b.line, 3);
  EXPECT_EQ(b.target.size(), 2u);
  EXPECT_TRUE(b.has("series"));
  EXPECT_EQ(m.samples()[2].series_path, dir + "/s/c.csv");
  EXPECT_EQ(m.target_dim(), 2);
  EXPECT_EQ(m.split_indices("test"), std::vector<int64_t>{1});
  EXPECT_EQ(m.counts().at("train").at("image"), 1);
  EXPECT_EQ(m.text_views(), (std::vector<std::string>{"en", "zh", ""}));
}

TEST(Manifest, BrokenLinesAreNamed) {
  expect_error(R"({"id":"a","split":"train","text":"x"})" "\n" R"({"id":"b", "split": )" "\n",
               {"m.jsonl:2", "not valid JSON"});
  expect_error(R"(["not","an","object"])" "\n", {"m.jsonl:1", "expected a JSON object"});
  expect_error(R"({"id":"a","split":"train","text":"x","colour":"red"})" "\n", {"m.jsonl:1", "unknown key 'colour'"});
  expect_error(R"({"id":"a","split":"train","text":"x"})" "\n" R"({"id":"a","split":"val","text":"y"})" "\n",
               {"m.jsonl:2", "duplicate id 'a'", "line 1"});
  expect_error(R"({"id":"a","split":"dev","text":"x"})" "\n", {"m.jsonl:1", "split 'dev'"});
  expect_error(R"({"id":"a","text":"x"})" "\n", {"m.jsonl:1", "missing key 'split'"});
  expect_error(R"({"split":"train","text":"x"})" "\n", {"m.jsonl:1", "missing key 'id'"});
  expect_error(R"({"id":"a","split":"train"})" "\n", {"m.jsonl:1", "no modality"});
  expect_error(R"({"id":"a","split":"train","text":"x","label":1.5})" "\n", {"m.jsonl:1", "'label'"});
  expect_error(R"({"id":"a","split":"train","text":"x","target":["a"]})" "\n", {"m.jsonl:1", "'target'"});
  expect_error(R"({"id":"a","split":"train","text":"x","target":[1]})" "\n" R"({"id":"b","split":"train","text":"x","target":[1,2]})" "\n",
               {"m.jsonl:2", "2 values", "earlier lines have 1"});
  expect_error(R"({"id":"a","split":"train","image":7})" "\n", {"m.jsonl:1", "'image' must be a string"});
  expect_error(R"({"id":"a","split":"train","text":{"en":3}})" "\n", {"m.jsonl:1", "text view 'en'"});
  expect_error(R"({"id":"a","split":"train","text":"x","group":"g"})" "\n" R"({"id":"b","split":"test","text":"y","group":"g"})" "\n",
               {"m.jsonl:2", "group 'g'", "one split"});
  expect_error("", {"no samples"});
}

TEST(Manifest, MissingFileIsNamed) {
  try {
    Manifest::load("/nonexistent/m.jsonl");
    FAIL() << "no error";
  } catch (const braid::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/m.jsonl"), std::string::npos);
  }
}
