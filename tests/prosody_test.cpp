// The "prosody" regression builder: manifest keys and order, targets recomputed from the generating
// parameters, sentence-level splits (test sentences unseen in train), audio that really carries
// the controlled loudness and rate, and byte-identical rebuilds with the same seed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "braid/data/build/build.h"
#include "braid/data/build/common.h"
#include "braid/core/fs.h"
#include "test_util.h"

namespace fs = std::filesystem;
using braid::data::BuildOptions;
using braid::data::BuildReport;
using braid::data::build_dataset;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

using braid::test::TempDir;

bool have_espeak() {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "");
  std::string dir;
  while (std::getline(ss, dir, ':'))
    if (!dir.empty() && ::access((fs::path(dir) / "espeak-ng").c_str(), X_OK) == 0) return true;
  return false;
}

BuildOptions options(const fs::path& out, int64_t limit, uint64_t seed = 7) {
  BuildOptions o;
  o.out_dir = out.string();
  o.limit = limit;
  o.seed = seed;
  o.threads = 2;
  return o;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> f;
  std::stringstream ss(line);
  std::string x;
  while (std::getline(ss, x, '\t')) f.push_back(x);
  return f;
}

// Rows of prosody_params.tsv keyed by id (column name -> value).
std::map<std::string, std::map<std::string, std::string>> read_params(const fs::path& p) {
  std::ifstream f(p);
  std::string line;
  std::getline(f, line);
  const auto header = split_tabs(line);
  std::map<std::string, std::map<std::string, std::string>> rows;
  while (std::getline(f, line)) {
    auto v = split_tabs(line);
    EXPECT_EQ(v.size(), header.size()) << line;
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < header.size() && i < v.size(); ++i) row[header[i]] = v[i];
    rows[row["id"]] = row;
  }
  return rows;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += x[i] / n, my += y[i] / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxy / std::sqrt(sxx * syy + 1e-300);
}

}  // namespace

TEST(BuildProsody, ManifestTargetsSplitsAudioAndDeterminism) {
  if (!have_espeak()) GTEST_SKIP() << "espeak-ng is not on PATH (`bash scripts/setup.sh` installs it)";
  TempDir tmp("main");
  BuildReport a = build_dataset("prosody", options(tmp.path / "a", 30));
  ASSERT_EQ(a.manifest, (tmp.path / "a" / "manifest.jsonl").string());

  // Keys, in order; two targets in [-1, 1]; a WAV per sample.
  std::ifstream f(a.manifest);
  std::string line;
  std::vector<nlohmann::ordered_json> recs;
  while (std::getline(f, line)) recs.push_back(nlohmann::ordered_json::parse(line));
  ASSERT_EQ(recs.size(), 30u);
  EXPECT_EQ(a.samples, 30);
  const std::vector<std::string> keys = {"id", "split", "target", "text", "audio"};
  std::set<std::string> ids;
  for (const auto& j : recs) {
    std::vector<std::string> got;
    for (auto it = j.begin(); it != j.end(); ++it) got.push_back(it.key());
    EXPECT_EQ(got, keys) << j.dump();
    EXPECT_TRUE(ids.insert(j["id"].get<std::string>()).second) << "duplicate id " << j["id"];
    ASSERT_TRUE(j["target"].is_array() && j["target"].size() == 2) << j.dump();
    for (const auto& t : j["target"]) {
      ASSERT_TRUE(t.is_number());
      EXPECT_GE(t.get<double>(), -1.0);
      EXPECT_LE(t.get<double>(), 1.0);
    }
    ASSERT_TRUE(j["text"].is_string());
    const fs::path wav = tmp.path / "a" / j["audio"].get<std::string>();
    ASSERT_TRUE(fs::is_regular_file(wav)) << wav;
    const std::string head = slurp(wav).substr(0, 12);
    EXPECT_TRUE(head.substr(0, 4) == "RIFF" && head.substr(8, 4) == "WAVE") << wav;
  }

  // Splits: 15 sentences, exactly 11 / 2 / 2, two utterances each; a sentence never spans splits,
  // so no test (or val) sentence is heard or read in training.
  EXPECT_EQ(a.per_split["train"], 22);
  EXPECT_EQ(a.per_split["val"], 4);
  EXPECT_EQ(a.per_split["test"], 4);
  std::map<std::string, std::set<std::string>> splits_of_text;
  std::map<std::string, int> count_of_text;
  for (const auto& j : recs) {
    splits_of_text[j["text"]].insert(j["split"].get<std::string>());
    count_of_text[j["text"]]++;
  }
  EXPECT_EQ(splits_of_text.size(), 15u);
  for (const auto& [text, s] : splits_of_text) {
    EXPECT_EQ(s.size(), 1u) << "'" << text << "' is in several splits";
    EXPECT_EQ(count_of_text[text], 2) << text;
  }

  // Targets recomputed from the generating parameters (docs/datasets.md):
  // arousal = 2 (0.6 rate01 + 0.4 amp01) - 1; valence = score + 0.05 N(0, 1), clamped.
  auto params = read_params(tmp.path / "a" / "prosody_params.tsv");
  ASSERT_EQ(params.size(), 30u);
  std::vector<double> amp, rms, speed, rate;
  std::set<std::string> voices;
  for (const auto& j : recs) {
    const auto& p = params.at(j["id"].get<std::string>());
    const double s = std::stod(p.at("speed")), am = std::stod(p.at("amplitude")), pitch = std::stod(p.at("pitch"));
    EXPECT_TRUE(s >= 100 && s <= 260 && am >= 60 && am <= 180 && pitch >= 20 && pitch <= 80) << j.dump();
    const double arousal = 2 * (0.6 * (s - 100) / 160 + 0.4 * (am - 60) / 120) - 1;
    EXPECT_NEAR(j["target"][0].get<double>(), arousal, 6e-5) << j.dump();
    EXPECT_NEAR(j["target"][1].get<double>(), std::stod(p.at("score")), 0.25) << j.dump();
    EXPECT_EQ(p.at("text"), j["text"].get<std::string>());
    EXPECT_NE((" " + p.at("text") + " ").find(" " + p.at("word") + " "), std::string::npos) << p.at("text");
    voices.insert(p.at("voice"));

    // The audio: RMS over frames above 2 % of the peak, and frames of speech per character.
    int64_t rate_hz = 0;
    auto x = braid::data::build::read_wav_mono((tmp.path / "a" / j["audio"].get<std::string>()).string(), &rate_hz);
    float peak = 0;
    for (float v : x) peak = std::max(peak, std::fabs(v));
    ASSERT_GT(peak, 1e-3f) << j["audio"];
    size_t first = 0, last = 0;
    double e = 0;
    int64_t loud = 0;
    for (size_t i = 0; i < x.size(); ++i)
      if (std::fabs(x[i]) > 0.02f * peak) {
        if (loud == 0) first = i;
        last = i;
        e += static_cast<double>(x[i]) * x[i];
        loud++;
      }
    amp.push_back(am);
    rms.push_back(std::sqrt(e / static_cast<double>(loud)));
    speed.push_back(s);
    rate.push_back(static_cast<double>(p.at("text").size()) / (static_cast<double>(last - first + 1) / rate_hz));
  }
  EXPECT_GE(voices.size(), 10u) << "voices are drawn per sample";
  // Voices differ in loudness, so amplitude explains only part of it (r = 0.84 with seed 7; ~0 if -a were ignored).
  EXPECT_GT(pearson(amp, rms), 0.6) << "espeak-ng's -a should set the loudness";
  EXPECT_GT(pearson(speed, rate), 0.8) << "espeak-ng's -s should set the characters spoken per second";  // r = 0.95

  // Same seed -> identical manifest, parameters and audio; another seed -> other sentences.
  BuildReport b = build_dataset("prosody", options(tmp.path / "b", 30));
  EXPECT_EQ(slurp(a.manifest), slurp(b.manifest));
  EXPECT_EQ(slurp(tmp.path / "a" / "prosody_params.tsv"), slurp(tmp.path / "b" / "prosody_params.tsv"));
  const std::string wav = recs[3]["audio"];
  EXPECT_EQ(slurp(tmp.path / "a" / wav), slurp(tmp.path / "b" / wav)) << wav;
  BuildReport c = build_dataset("prosody", options(tmp.path / "c", 30, 8));
  EXPECT_NE(slurp(a.manifest), slurp(c.manifest));
}

TEST(BuildProsody, OddLimitAndRebuildOverOldFolder) {
  if (!have_espeak()) GTEST_SKIP() << "espeak-ng is not on PATH (`bash scripts/setup.sh` installs it)";
  TempDir tmp("odd");
  // 5 samples = 3 sentences (one val, one test), the last spoken once.
  BuildReport r = build_dataset("prosody", options(tmp.path, 5));
  EXPECT_EQ(r.samples, 5);
  EXPECT_EQ(r.per_split["train"] + r.per_split["val"] + r.per_split["test"], 5);
  EXPECT_GE(r.per_split["val"], 1);
  EXPECT_GE(r.per_split["test"], 1);
  // A smaller rebuild into the same folder replaces the manifest.
  BuildReport s = build_dataset("prosody", options(tmp.path, 4));
  std::ifstream f(s.manifest);
  int lines = 0;
  for (std::string l; std::getline(f, l);) ++lines;
  EXPECT_EQ(lines, 4);
}
