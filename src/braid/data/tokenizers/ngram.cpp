// braid/data/tokenizers/ngram.cpp — the hashed character n-gram backend (fastText-style features):
// a text's ids are its words and the character n-grams of each word (and, with word_ngrams > 1, its
// runs of 2..word_ngrams consecutive words), every one hashed into a fixed number of buckets. Nothing
// is trained, so words never seen in training still share n-grams ("grinning" with "grin"). Selected
// by a tokenizer.json whose model is
//   {"type": "HashedNgrams", "min_n": 3, "max_n": 5, "buckets": 20000, "word_ngrams": 1, "cjk": false}
// (docs/tokenizers.md). Ids: 0 padding, 1 unknown, 2 begin, 3 end (braid's), 4.. the buckets.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "braid/core/error.h"
#include "braid/data/tokenizers/backend.h"
#include "braid/data/tokenizers/unicode.h"

namespace braid::data::tok {

namespace {

constexpr int kFirstBucket = 4;

// Words: maximal runs of characters that are neither ASCII space nor ASCII punctuation, ASCII
// letters lower-cased; any other byte (UTF-8 of other scripts) belongs to the word it is in. With
// `cjk`, as BERT's basic tokenizer: every CJK ideograph is a word of its own (Chinese has no spaces,
// and its characters carry the meaning), and Unicode spaces and punctuation split words too.
std::vector<std::string> words_of(const std::string& text, bool cjk) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(cur), cur.clear();
  };
  auto ascii_break = [](char32_t c) {
    return c < 0x80 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
  };
  if (!cjk) {
    for (char ch : text) {
      const auto c = static_cast<unsigned char>(ch);
      if (ascii_break(c)) flush();
      else cur += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : ch;
    }
  } else {
    for (char32_t c : uni::decode(uni::lossy(text))) {
      if (ascii_break(c) || (c >= 0x80 && (uni::is_whitespace(c) || uni::is_punctuation(c)))) {
        flush();
      } else if (uni::is_cjk(c)) {
        flush();
        uni::append(cur, c);
        flush();
      } else {
        uni::append(cur, (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
      }
    }
  }
  flush();
  return out;
}

// Code points of a UTF-8 string, each as its bytes, so n-grams never cut a character.
std::vector<std::string> chars_of(const std::string& s) {
  std::vector<std::string> out;
  for (char32_t c : uni::decode(s)) uni::append(out.emplace_back(), c);
  return out;
}

// 64-bit FNV-1a: the same ids on every platform and run.
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

class NgramBackend final : public Backend {
 public:
  NgramBackend(std::string path, int min_n, int max_n, int buckets, int word_ngrams, bool cjk)
      : path_(std::move(path)), min_n_(min_n), max_n_(max_n), buckets_(buckets), word_ngrams_(word_ngrams), cjk_(cjk) {
    pad = 0, unk = 1, bos = 2, eos = 3;
  }

  std::vector<int> encode(const std::string& text, int max_len, bool) const override {
    std::vector<int> ids;
    for (const auto& f : pieces(text)) ids.push_back(piece_id(f));
    if (max_len > 0 && static_cast<int>(ids.size()) > max_len) ids.resize(max_len);
    return ids;
  }

  // Per word: "<word>", then its n-grams of min_n..max_n characters (the boundary marks count; the
  // whole "<word>" is not repeated as an n-gram). Then fastText's word n-grams: each run of 2 ..
  // word_ngrams consecutive words, joined by a space (which no word holds).
  std::vector<std::string> pieces(const std::string& text) const override {
    std::vector<std::string> out;
    const std::vector<std::string> words = words_of(text, cjk_);
    for (const auto& w : words) {
      std::vector<std::string> ch = chars_of(w);
      ch.insert(ch.begin(), "<");
      ch.push_back(">");
      const int len = static_cast<int>(ch.size());
      out.push_back("<" + w + ">");
      for (int n = min_n_; n <= max_n_ && n < len; ++n)
        for (int i = 0; i + n <= len; ++i) {
          std::string g;
          for (int k = i; k < i + n; ++k) g += ch[k];
          out.push_back(g);
        }
    }
    for (int n = 2; n <= word_ngrams_; ++n)
      for (size_t i = 0; i + n <= words.size(); ++i) {
        std::string g = words[i];
        for (size_t k = i + 1; k < i + n; ++k) g += " " + words[k];
        out.push_back(g);
      }
    return out;
  }

  std::string decode(const std::vector<int>&, bool) const override {
    input_error("{}: a hashed n-gram tokenizer cannot turn ids back into text (its ids are hashes; use a "
                "sentencepiece or Hugging Face tokenizer where text is generated)", path_);
  }

  // Every string has a bucket.
  int piece_id(const std::string& piece) const override {
    return kFirstBucket + static_cast<int>(fnv1a(piece) % static_cast<uint64_t>(buckets_));
  }
  std::string piece(int id) const override {
    static const char* specials[] = {"<pad>", "<unk>", "<s>", "</s>"};
    if (id < 0 || id >= vocab_size()) return "";
    return id < kFirstBucket ? specials[id] : "#" + std::to_string(id - kFirstBucket);
  }
  int vocab_size() const override { return kFirstBucket + buckets_; }
  std::string kind() const override { return "hashed-ngrams"; }

 private:
  std::string path_;
  int min_n_, max_n_, buckets_, word_ngrams_;
  bool cjk_;
};

}  // namespace

std::unique_ptr<Backend> make_hashed_ngrams(const std::string& path, int min_n, int max_n, int buckets,
                                            int word_ngrams, bool cjk) {
  BRAID_INPUT_CHECK(min_n >= 1 && max_n >= min_n && max_n <= 16,
                    "{}: model.min_n and model.max_n must satisfy 1 <= min_n <= max_n <= 16, got {} and {}", path,
                    min_n, max_n);
  BRAID_INPUT_CHECK(buckets >= 1 && buckets <= (1 << 24), "{}: model.buckets must be in [1, 16777216], got {}", path,
                    buckets);
  BRAID_INPUT_CHECK(word_ngrams >= 1 && word_ngrams <= 8, "{}: model.word_ngrams must be in [1, 8] (1 = words "
                    "alone), got {}", path, word_ngrams);
  return std::make_unique<NgramBackend>(path, min_n, max_n, buckets, word_ngrams, cjk);
}

}  // namespace braid::data::tok
