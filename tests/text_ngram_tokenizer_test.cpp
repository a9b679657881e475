// The hashed character n-gram tokenizer (data/tokenizers/ngram.cpp, a tokenizer.json whose model is
// HashedNgrams): hand-counted pieces, deterministic ids in range, n-grams shared by related words,
// UTF-8 characters never cut, errors naming the file and key, and the ids fed through text_bow.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "braid/core/batch.h"
#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/data/manifest.h"
#include "braid/data/preprocess.h"
#include "braid/data/tokenizer.h"
#include "braid/nn/encoder.h"
#include "test_util.h"

using braid::data::Tokenizer;

namespace {

std::string ngram_json(int min_n, int max_n, int buckets, int word_ngrams = 1, bool cjk = false) {
  return "{\"version\": \"1.0\", \"model\": {\"type\": \"HashedNgrams\", \"word_ngrams\": " +
         std::to_string(word_ngrams) + ", \"cjk\": " + (cjk ? "true" : "false") + ", \"min_n\": " + std::to_string(min_n) +
         ", \"max_n\": " + std::to_string(max_n) + ", \"buckets\": " + std::to_string(buckets) + "}}";
}

}  // namespace

// "Grin," = the word "<grin>" and its 3-, 4- and 5-grams with boundary marks (the whole word is not
// repeated as a 6-gram): 1 + 4 + 3 + 2 pieces, lower-cased, the comma dropped.
TEST(TextNgramTokenizer, PiecesAreTheWordAndItsCharacterNgrams) {
  braid::test::TempDir d("ngram_tok");
  const auto t = Tokenizer::load(d.file("tokenizer.json", ngram_json(3, 5, 1000)));
  EXPECT_EQ(t.kind(), "hashed-ngrams");
  EXPECT_EQ(t.vocab_size(), 4 + 1000);
  EXPECT_EQ(t.pad_id(), 0);
  const std::vector<std::string> want = {"<grin>", "<gr", "gri", "rin", "in>", "<gri", "grin", "rin>", "<grin", "grin>"};
  EXPECT_EQ(t.pieces("Grin,"), want);
  EXPECT_EQ(t.encode("Grin,").size(), want.size());
  // punctuation and spaces split words; "<a>" is 3 characters long, so its 3-gram would be the whole
  // word: one piece per word
  EXPECT_EQ(t.pieces("a, b").size(), 2u);
  // UTF-8: 4 characters with the marks, so one piece for the word and two 3-grams, none cut mid-character
  const std::vector<std::string> zh = {"<嘿嘿>", "<嘿嘿", "嘿嘿>"};
  EXPECT_EQ(t.pieces("嘿嘿"), zh);
  // truncation
  EXPECT_EQ(t.encode("grinning face", 5).size(), 5u);
}

// Ids are a function of the text alone: equal across loads, inside [4, vocab), and a word never seen
// shares n-grams with its relatives ("grinning" with "grin"), unlike an unrelated word.
TEST(TextNgramTokenizer, HashingIsDeterministicAndSharesNgrams) {
  braid::test::TempDir d("ngram_tok");
  const auto a = Tokenizer::load(d.file("a.json", ngram_json(3, 5, 5000)));
  const auto b = Tokenizer::load(d.file("b.json", ngram_json(3, 5, 5000)));
  const auto ids = a.encode("grinning face with smiling eyes");
  EXPECT_EQ(ids, b.encode("grinning face with smiling eyes"));
  for (int id : ids) {
    EXPECT_GE(id, 4);
    EXPECT_LT(id, a.vocab_size());
  }
  auto as_set = [&](const std::string& s) {
    auto v = a.encode(s);
    return std::set<int>(v.begin(), v.end());
  };
  auto common = [](const std::set<int>& x, const std::set<int>& y) {
    int n = 0;
    for (int i : x) n += static_cast<int>(y.count(i));
    return n;
  };
  EXPECT_GE(common(as_set("grinning"), as_set("grin")), 5);  // <gr gri rin <gri grin <grin
  EXPECT_LE(common(as_set("grinning"), as_set("flag")), 1);   // at most a hash collision
  // fewer buckets: the same pieces land in the smaller range
  const auto small = Tokenizer::load(d.file("s.json", ngram_json(3, 5, 7)));
  for (int id : small.encode("grinning face")) EXPECT_LT(id, 11);
}

// word_ngrams: after every word's pieces, each run of 2 .. word_ngrams consecutive words, joined by a
// space, punctuation between them ignored (fastText's -wordNgrams); 1, the default, adds none.
TEST(TextNgramTokenizer, WordNgramsFollowTheWordPieces) {
  braid::test::TempDir d("ngram_tok");
  const auto one = Tokenizer::load(d.file("w1.json", ngram_json(3, 5, 1000)));
  const auto three = Tokenizer::load(d.file("w3.json", ngram_json(3, 5, 1000, 3)));
  const std::vector<std::string> want = {"<a>", "<b>", "<c>", "a b", "b c", "a b c"};
  EXPECT_EQ(three.pieces("A, b: c"), want);
  EXPECT_EQ(one.pieces("A, b: c").size(), 3u);
  const auto two = Tokenizer::load(d.file("w2.json", ngram_json(3, 5, 1000, 2)));
  auto p = two.pieces("grin face");
  EXPECT_EQ(p.size(), one.pieces("grin face").size() + 1);
  EXPECT_EQ(p.back(), "grin face");
  EXPECT_EQ(two.encode("grin face").back(), two.piece_id("grin face"));
  EXPECT_EQ(two.pieces("grin").size(), one.pieces("grin").size());  // one word: no word n-gram
}

// cjk: every CJK ideograph is a word of its own (so its character and, with word_ngrams 2, the pairs
// of neighbours are features), and non-ASCII punctuation splits words; without it "几内亚" is one word.
TEST(TextNgramTokenizer, CjkIdeographsAreWordsOfTheirOwn) {
  braid::test::TempDir d("ngram_tok");
  const auto cjk = Tokenizer::load(d.file("c.json", ngram_json(3, 5, 1000, 2, true)));
  const std::vector<std::string> want = {"<旗>", "<几>", "<内>", "<亚>", "旗 几", "几 内", "内 亚"};
  EXPECT_EQ(cjk.pieces("旗: 几内亚"), want);
  const std::vector<std::string> ma = {"<ma>", "<ma", "ma>", "<am>", "<am", "am>", "ma am"};
  EXPECT_EQ(cjk.pieces("Ma\u2019am"), ma);  // U+2019 splits, ASCII lower-cased as without cjk
  const auto plain = Tokenizer::load(d.file("p.json", ngram_json(3, 5, 1000, 2)));
  EXPECT_EQ(plain.pieces("旗: 几内亚").front(), "<旗>");
  EXPECT_EQ(plain.pieces("旗: 几内亚")[1], "<几内亚>");
}

// data.text.view "en+zh": the sample's en and zh texts, one line each, read as one text; a view the
// sample lacks is left out, and a sample with none of them has no text.
TEST(TextNgramTokenizer, JoinedViewsReadBothTexts) {
  braid::test::TempDir d("ngram_tok");
  const std::string m = d.file("m.jsonl", R"({"id":"a","split":"train","label":"x","text":{"en":"flag","zh":"旗"}})"
                                          "\n" R"({"id":"b","split":"train","label":"x","text":{"fr":"drapeau"}})" "\n");
  const auto man = braid::data::Manifest::load(m);
  auto tok = std::make_shared<Tokenizer>(Tokenizer::load(d.file("c.json", ngram_json(3, 5, 1000, 2, true))));
  auto ids = [&](const std::string& view, size_t i) {
    braid::data::PreprocessOptions po;
    po.text.view = view;
    po.text.max_tokens = 64;
    braid::data::Preprocessor pre(po, {"text"}, tok);
    auto out = pre.process(man.samples()[i], m).mods;
    return out.count("text") ? std::vector<int64_t>(out["text"].data_ptr<int64_t>(),
                                                    out["text"].data_ptr<int64_t>() + out["text"].numel())
                             : std::vector<int64_t>{};
  };
  auto want = tok->encode("flag\n旗");
  ASSERT_EQ(ids("en+zh", 0), std::vector<int64_t>(want.begin(), want.end()));
  EXPECT_EQ(ids("en+zh", 0).back(), tok->piece_id("flag 旗"));
  EXPECT_EQ(ids("en+de", 0), ids("en", 0));
  EXPECT_TRUE(ids("en+zh", 1).empty());
}

TEST(TextNgramTokenizer, BadOptionsAndDecodeAreOneLineErrors) {
  braid::test::TempDir d("ngram_tok");
  const std::string bad = d.file("bad.json", ngram_json(0, 5, 100));
  braid::test::ExpectInputError([&] { Tokenizer::load(bad); }, bad, "min_n");
  const std::string zero = d.file("zero.json", ngram_json(3, 5, 0));
  braid::test::ExpectInputError([&] { Tokenizer::load(zero); }, zero, "buckets");
  const std::string wn = d.file("wn.json", ngram_json(3, 5, 100, 0));
  braid::test::ExpectInputError([&] { Tokenizer::load(wn); }, wn, "word_ngrams");
  const std::string ok = d.file("ok.json", ngram_json(3, 5, 100));
  const auto t = Tokenizer::load(ok);
  braid::test::ExpectInputError([&] { t.decode(t.encode("face")); }, ok, "cannot turn ids back into text");
}

// The ids feed text_bow as any tokenizer's: [B, dim] features, deterministic in evaluation, and token
// dropout changes them only in training.
TEST(TextNgramTokenizer, FeedsTextBow) {
  braid::test::TempDir d("ngram_tok");
  const auto t = Tokenizer::load(d.file("tokenizer.json", ngram_json(3, 5, 500)));
  std::vector<std::vector<int>> rows = {t.encode("grinning face"), t.encode("flag: japan")};
  const int64_t L = static_cast<int64_t>(std::max(rows[0].size(), rows[1].size()));
  auto ids = torch::zeros({2, L}, torch::kLong);
  for (int64_t r = 0; r < 2; ++r)
    for (size_t i = 0; i < rows[r].size(); ++i) ids[r][static_cast<int64_t>(i)] = rows[r][i];
  braid::ModalityBatch mb{ids, torch::tensor({static_cast<int64_t>(rows[0].size()), static_cast<int64_t>(rows[1].size())}),
                          torch::ones({2}, torch::kBool)};
  braid::nn::EncoderContext c;
  c.modality = "text";
  c.vocab_size = t.vocab_size();
  torch::manual_seed(0);
  auto enc = braid::nn::encoder_registry().make(
      braid::Config::from_string("{name: text_bow, embed: 8, dim: 6, dropout: 0.0, token_dropout: 0.5}", "t.yaml"), c);
  enc->eval();
  auto e1 = enc->forward(mb);
  EXPECT_EQ(e1.sizes(), (std::vector<int64_t>{2, 6}));
  EXPECT_TRUE(torch::equal(e1, enc->forward(mb)));
  enc->train();
  EXPECT_GT((enc->forward(mb) - e1).abs().max().item<double>(), 1e-6);
}
