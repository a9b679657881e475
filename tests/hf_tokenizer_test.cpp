// The tokenizer facade's backends against the reference libraries, id for id: tokenizer.json files of
// the GPT-2 / SmolLM2 / Qwen2 / CLIP / BERT families (and variants covering the other components),
// the real all-MiniLM-L6-v2 vocab.txt, and a sentencepiece model. Fixtures and reference ids:
// scripts/hf/make_tokenizer_fixtures.py (run by hand; see docs/tokenizers.md).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <sstream>
#include <nlohmann/json.hpp>

#include "braid/core/error.h"
#include "braid/data/tokenizer.h"
#include "test_util.h"

namespace {

using braid::data::Tokenizer;
using json = nlohmann::json;

std::string fixture_dir() { return std::string(BRAID_FIXTURES) + "/hf/tokenizers"; }

const json& refs() {
  static const json r = json::parse(braid::test::read_file(fixture_dir() + "/refs.json"));
  return r;
}

std::string show(const std::string& s) { return nlohmann::json(s).dump(); }

// Every reference figure of tokenizer `file` (a key of refs.json) against `t`.
void check_against(const Tokenizer& t, const json& r, const std::string& file) {
  const auto& texts = refs()["texts"];
  const int trunc = refs()["trunc"].get<int>();
  EXPECT_EQ(t.vocab_size(), r["vocab_size"].get<int>()) << file;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i].get<std::string>();
    const auto want = r["ids"][i].get<std::vector<int>>();
    const auto ids = t.encode(text);
    EXPECT_EQ(ids, want) << file << " text " << i << " " << show(text);
    EXPECT_EQ(t.encode(text, 0, false), r["ids_plain"][i].get<std::vector<int>>()) << file << " (no specials) text " << i;
    EXPECT_EQ(t.encode(text, trunc), r["trunc"][i].get<std::vector<int>>()) << file << " (max_len " << trunc << ") text " << i;
    EXPECT_EQ(t.decode(want), r["decoded"][i].get<std::string>()) << file << " decode of text " << i << " " << show(text);
    const json& kept = r["decoded_specials"][i];  // null: the same as without specials
    EXPECT_EQ(t.decode(want, false), (kept.is_null() ? r["decoded"][i] : kept).get<std::string>())
        << file << " decode (specials kept) " << i;
  }
  const auto& sp = r["specials"];
  if (sp.contains("pad")) EXPECT_EQ(t.pad_id(), sp["pad"].get<int>()) << file;
  if (sp.contains("bos")) EXPECT_EQ(t.bos_id(), sp["bos"].get<int>()) << file;
  if (sp.contains("eos")) EXPECT_EQ(t.eos_id(), sp["eos"].get<int>()) << file;
  if (sp.contains("unk")) EXPECT_EQ(t.unk_id(), sp["unk"].get<int>()) << file;
}

void check(const std::string& file) {
  SCOPED_TRACE(file);
  ASSERT_TRUE(refs()["tokenizers"].contains(file)) << file;
  const Tokenizer t = Tokenizer::load(fixture_dir() + "/" + file);
  check_against(t, refs()["tokenizers"][file], file);
}

}  // namespace

// WordPiece: the real all-MiniLM-L6-v2 vocab.txt (+ tokenizer_config.json), [CLS] ... [SEP]
TEST(HfTokenizer, MiniLMVocabTxtMatchesReference) {
  check("minilm/vocab.txt");
  const Tokenizer t = Tokenizer::load(fixture_dir() + "/minilm/vocab.txt");
  EXPECT_EQ(t.kind(), "wordpiece");
  EXPECT_EQ(t.encode("Hello world"), (std::vector<int>{101, 7592, 2088, 102}));
  EXPECT_EQ(t.encode("Hello world", 3), (std::vector<int>{101, 7592, 102}));  // truncation keeps [CLS] / [SEP]
  EXPECT_EQ(t.pieces("Unbelievable!"), (std::vector<std::string>{"unbelievable", "!"}));
}
TEST(HfTokenizer, BertWordPieceJsonMatchesReference) { check("bert/tokenizer.json"); }
TEST(HfTokenizer, Gpt2MatchesReference) { check("gpt2/tokenizer.json"); }
TEST(HfTokenizer, SmolLM2MatchesReference) { check("smollm2/tokenizer.json"); }
TEST(HfTokenizer, Qwen2MatchesReference) { check("qwen2/tokenizer.json"); }
TEST(HfTokenizer, ClipMatchesReference) { check("clip/tokenizer.json"); }
TEST(HfTokenizer, RobertaPrefixSpaceMatchesReference) { check("roberta/tokenizer.json"); }
TEST(HfTokenizer, Llama3IgnoreMergesMatchesReference) { check("llama3/tokenizer.json"); }
TEST(HfTokenizer, LlamaByteFallbackBpeMatchesReference) { check("llama_bpe/tokenizer.json"); }
TEST(HfTokenizer, MetaspaceMatchesReference) { check("metaspace/tokenizer.json"); }
TEST(HfTokenizer, SplitBehaviorsMatchReference) { check("split_variants/tokenizer.json"); }
TEST(HfTokenizer, WhitespaceBpeDecoderMatchesReference) { check("whitespace_bpe/tokenizer.json"); }
TEST(HfTokenizer, SentencepieceMatchesReference) { check("spm.model"); }

// The real MiniLM tokenizer.json (466 KB, not committed): BRAID_HF_MINILM_DIR names the folder
// holding it (docs/tokenizers.md); its ids are the vocab.txt references.
TEST(HfTokenizer, SlowRealMiniLMTokenizerJson) {
  const char* dir = std::getenv("BRAID_HF_MINILM_DIR");
  if (!dir) GTEST_SKIP() << "BRAID_HF_MINILM_DIR is not set";
  const Tokenizer t = Tokenizer::load(std::string(dir) + "/tokenizer.json");
  EXPECT_EQ(t.kind(), "hf-wordpiece");
  check_against(t, refs()["minilm_tokenizer_json"], "MiniLM tokenizer.json");
}

// The real CLIP BPE (49408 ids, 48894 merges; 2.2 MB, not committed): BRAID_HF_CLIP_DIR names the
// folder written by `make_tokenizer_fixtures.py --real-clip DIR` (tokenizer.json + its refs.json).
TEST(HfTokenizer, SlowRealClipTokenizerJson) {
  const char* dir = std::getenv("BRAID_HF_CLIP_DIR");
  if (!dir) GTEST_SKIP() << "BRAID_HF_CLIP_DIR is not set";
  const json r = json::parse(braid::test::read_file(std::string(dir) + "/refs.json"));
  ASSERT_EQ(r["texts"], refs()["texts"]) << "regenerate " << dir << " with make_tokenizer_fixtures.py --real-clip";
  const Tokenizer t = Tokenizer::load(std::string(dir) + "/tokenizer.json");
  EXPECT_EQ(t.kind(), "hf-bpe");
  check_against(t, r["tokenizers"]["tokenizer.json"], "real CLIP tokenizer.json");
  EXPECT_EQ(t.encode("a photo of a cat"), (std::vector<int>{49406, 320, 1125, 539, 320, 2368, 49407}));
}

// Throughput on the non-empty lines of docs/*.md (one encode per line, one thread; printed), and a long
// word of one repeated letter, which must not take quadratic time in the BPE merges.
TEST(HfTokenizer, SlowThroughput) {
  std::vector<std::string> lines;
  size_t bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(BRAID_FIXTURES) + "/../../docs")) {
    if (e.path().extension() != ".md") continue;
    std::istringstream in(braid::test::read_file(e.path().string()));
    for (std::string l; std::getline(in, l);)
      if (l.find_first_not_of(" \t") != std::string::npos) lines.push_back(l), bytes += l.size();
  }
  std::vector<std::string> files = {fixture_dir() + "/minilm/vocab.txt", fixture_dir() + "/qwen2/tokenizer.json",
                                    fixture_dir() + "/gpt2/tokenizer.json"};
  if (const char* d = std::getenv("BRAID_HF_CLIP_DIR")) files.push_back(std::string(d) + "/tokenizer.json");
  for (const auto& f : files) {
    const auto t0 = std::chrono::steady_clock::now();
    const Tokenizer t = Tokenizer::load(f);
    const auto t1 = std::chrono::steady_clock::now();
    size_t ids = 0;
    for (const auto& l : lines) ids += t.encode(l).size();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    std::printf("%s: load %.0f ms; %zu lines, %.0f KB -> %zu ids in %.3f s = %.2f MB/s\n", f.c_str(),
                std::chrono::duration<double, std::milli>(t1 - t0).count(), lines.size(), bytes / 1e3, ids, s, bytes / 1e6 / s);
    EXPECT_GT(ids, lines.size()) << f;
  }
  const Tokenizer gpt2 = Tokenizer::load(fixture_dir() + "/gpt2/tokenizer.json");
  const auto t0 = std::chrono::steady_clock::now();
  const auto ids = gpt2.encode(std::string(200000, 'a'));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("200000 x 'a' (GPT-2 fixture): %zu ids in %.3f s\n", ids.size(), s);
  EXPECT_LT(s, 2.0) << "a long word must not take quadratic time";
}

TEST(HfTokenizer, MalformedFilesAreOneLineErrorsNamingTheFile) {
  braid::test::TempDir d("hftok");
  const std::string gpt2 = braid::test::read_file(fixture_dir() + "/gpt2/tokenizer.json");
  auto variant = [&](const std::string& name, const std::function<void(json&)>& edit) {
    json j = json::parse(gpt2);
    edit(j);
    return d.file(name, j.dump());
  };
  const std::string no_model = variant("no_model.json", [](json& j) { j.erase("model"); });
  braid::test::ExpectInputError([&] { Tokenizer::load(no_model); }, no_model, "no \"model\"");
  const std::string bad_merge = variant("bad_merge.json", [](json& j) { j["model"]["merges"][2] = "abc"; });
  braid::test::ExpectInputError([&] { Tokenizer::load(bad_merge); }, bad_merge, "bad merges line 3 'abc'");
  const std::string oov_merge = variant("oov_merge.json", [](json& j) { j["model"]["merges"][0] = "zzq qzz"; });
  braid::test::ExpectInputError([&] { Tokenizer::load(oov_merge); }, oov_merge, "token 'zzq' is not in the vocabulary");
  const std::string bad_norm = variant("bad_norm.json", [](json& j) { j["normalizer"] = {{"type", "Precompiled"}}; });
  braid::test::ExpectInputError([&] { Tokenizer::load(bad_norm); }, bad_norm, "unsupported normalizer type 'Precompiled'");
  const std::string bad_pre = variant("bad_pre.json", [](json& j) { j["pre_tokenizer"] = {{"type", "UnicodeScripts"}}; });
  braid::test::ExpectInputError([&] { Tokenizer::load(bad_pre); }, bad_pre, "unsupported pre_tokenizer type 'UnicodeScripts'");
  const std::string bad_dec = variant("bad_dec.json", [](json& j) { j["decoder"] = {{"type", "CTC"}}; });
  braid::test::ExpectInputError([&] { Tokenizer::load(bad_dec); }, bad_dec, "unsupported decoder type 'CTC'");
  const std::string unigram = variant("unigram.json", [](json& j) { j["model"] = {{"type", "Unigram"}, {"vocab", json::array()}}; });
  braid::test::ExpectInputError([&] { Tokenizer::load(unigram); }, unigram, "unsupported model type 'Unigram'");
  const std::string bad_re = variant("bad_re.json", [](json& j) {
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(["}}}, {"behavior", "Isolated"}, {"invert", false}};
  });
  braid::test::ExpectInputError([&] { Tokenizer::load(bad_re); }, bad_re, "bad regular expression");
  const std::string wrong_type = variant("wrong_type.json", [](json& j) { j["model"]["vocab"] = 7; });
  braid::test::ExpectInputError([&] { Tokenizer::load(wrong_type); }, wrong_type, "model.vocab");
  const std::string not_json = d.file("not.json", "{\"model\": ");
  braid::test::ExpectInputError([&] { Tokenizer::load(not_json); }, not_json, "not valid JSON");

  auto in_dir = [&](const std::string& sub, const std::string& text) {
    std::filesystem::create_directories(d.path / sub);
    const std::string f = (d.path / sub / "vocab.txt").string();
    braid::test::write_file(f, text);
    return f;
  };
  const std::string empty_vocab = in_dir("empty", "");
  braid::test::ExpectInputError([&] { Tokenizer::load(empty_vocab); }, empty_vocab, "empty vocabulary");
  const std::string no_unk = in_dir("nounk", "[PAD]\n[CLS]\n[SEP]\nhello\n");
  braid::test::ExpectInputError([&] { Tokenizer::load(no_unk); }, no_unk, "'[UNK]' is not in the vocabulary");
  const std::string blank = in_dir("blank", "[UNK]\nhello\n\nworld\n");
  braid::test::ExpectInputError([&] { Tokenizer::load(blank); }, blank, ":3: empty line");
  const std::string missing = (d.path / "missing" / "tokenizer.json").string();
  braid::test::ExpectInputError([&] { Tokenizer::load(missing); }, missing, "no such tokenizer file");
}

TEST(HfTokenizer, AFolderLoadsItsTokenizerFile) {
  const Tokenizer bert = Tokenizer::load(fixture_dir() + "/minilm");
  EXPECT_EQ(bert.kind(), "wordpiece");
  EXPECT_EQ(bert.path(), fixture_dir() + "/minilm/vocab.txt");
  EXPECT_EQ(Tokenizer::load(fixture_dir() + "/qwen2").kind(), "hf-bpe");
  braid::test::TempDir d("hftok_dir");
  braid::test::ExpectInputError([&] { Tokenizer::load(d.path.string()); }, d.path.string(), "has no tokenizer.json");
}

// tokenizers >= 0.20 writes merges as ["a", "b"] pairs instead of "a b" strings: the same tokenizer.
TEST(HfTokenizer, MergesAsPairsLoadTheSame) {
  json j = json::parse(braid::test::read_file(fixture_dir() + "/gpt2/tokenizer.json"));
  json pairs = json::array();
  for (const auto& m : j["model"]["merges"]) {
    const std::string line = m.get<std::string>();
    pairs.push_back({line.substr(0, line.find(' ')), line.substr(line.find(' ') + 1)});
  }
  j["model"]["merges"] = pairs;
  braid::test::TempDir d("hftok_pairs");
  const Tokenizer t = Tokenizer::load(d.file("tokenizer.json", j.dump()));
  const auto& r = refs()["tokenizers"]["gpt2/tokenizer.json"];
  for (size_t i = 0; i < refs()["texts"].size(); ++i)
    EXPECT_EQ(t.encode(refs()["texts"][i].get<std::string>()), r["ids"][i].get<std::vector<int>>()) << "text " << i;
}

TEST(HfTokenizer, DecodeRejectsIdsOutsideTheVocabulary) {
  const Tokenizer t = Tokenizer::load(fixture_dir() + "/gpt2/tokenizer.json");
  braid::test::ExpectInputError([&] { t.decode({1, t.vocab_size()}); }, "gpt2/tokenizer.json", "outside the vocabulary");
  braid::test::ExpectInputError([&] { t.decode({-1}); }, "gpt2/tokenizer.json", "outside the vocabulary");
}

TEST(HfTokenizer, InvalidUtf8IsReplacedNotACrash) {
  const Tokenizer t = Tokenizer::load(fixture_dir() + "/qwen2/tokenizer.json");
  // U+FFFD for each maximal invalid subpart, as the Rust reference's from_utf8_lossy
  EXPECT_EQ(t.encode("a\xFF" "b\xE2\x82"), t.encode("a\xEF\xBF\xBD" "b\xEF\xBF\xBD"));
  EXPECT_EQ(t.decode(t.encode("caf\xC3\xA9 \xF0\x9F\x91\x8D")), "caf\xC3\xA9 \xF0\x9F\x91\x8D");
}

TEST(HfTokenizer, BraidSentencepieceKeepsItsSpecialIds) {
  braid::test::TempDir d("hftok_spm");
  std::vector<std::string> corpus;
  for (int i = 0; i < 20; ++i) corpus.push_back("red heart blue heart green apple " + std::to_string(i));
  const std::string model = (d.path / "tok.model").string();
  Tokenizer::train(corpus, 40, model);
  const Tokenizer t = Tokenizer::load(model);
  EXPECT_EQ(t.kind(), "sentencepiece");
  EXPECT_EQ(t.pad_id(), Tokenizer::kPad);
  EXPECT_EQ(t.unk_id(), Tokenizer::kUnk);
  EXPECT_EQ(t.bos_id(), Tokenizer::kBos);
  EXPECT_EQ(t.eos_id(), Tokenizer::kEos);
  EXPECT_EQ(t.encode("red heart"), t.encode("red heart", 0, false));  // braid's models add no specials
}
