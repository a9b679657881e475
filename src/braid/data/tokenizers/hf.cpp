// braid/data/tokenizers/hf.cpp — Hugging Face tokenizer.json and BERT vocab.txt backends.
//
// The pipeline of the `tokenizers` library (docs/tokenizers.md lists what is supported):
//   added tokens split out (raw, then in the normalized text) -> normalizer -> pre-tokenizer ->
//   model (BPE / WordPiece / WordLevel) -> post-processor (special tokens); decode: ids -> tokens ->
//   decoder. Ids match the reference id for id (tests/hf_tokenizer_test.cpp against fixtures made by
//   scripts/hf/make_tokenizer_fixtures.py).
#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/data/tokenizers/backend.h"
#include "braid/data/tokenizers/unicode.h"

namespace braid::data::tok {

namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------- helpers

// GPT-2's byte <-> printable character table: printable Latin-1 bytes stand for themselves, the
// others for 256, 257, ... in byte order.
struct ByteMap {
  std::string enc[256];
  std::unordered_map<char32_t, unsigned char> dec;
  ByteMap() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t c = keep ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      uni::append(enc[b], c);
      dec[c] = static_cast<unsigned char>(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  std::string out;
  size_t pos = 0;
  for (size_t i; (i = s.find(from, pos)) != std::string::npos; pos = i + from.size()) out.append(s, pos, i - pos) += to;
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

// A string or regex pattern ({"String": s} / {"Regex": r}).
struct Pattern {
  std::string literal;
  std::shared_ptr<uni::Regex> re;
  std::vector<std::pair<size_t, size_t>> find_all(const std::string& s) const {
    if (re) return re->find_all(s);
    std::vector<std::pair<size_t, size_t>> m;
    if (literal.empty()) return m;
    for (size_t i = s.find(literal); i != std::string::npos; i = s.find(literal, i + literal.size()))
      m.emplace_back(i, i + literal.size());
    return m;
  }
  std::string replace(const std::string& s, const std::string& with) const {
    std::string out;
    size_t prev = 0;
    for (auto [a, b] : find_all(s)) {
      out.append(s, prev, a - prev) += with;
      prev = b;
    }
    out.append(s, prev, std::string::npos);
    return out;
  }
};

// Each character for which `pred` holds is one match (the library's char-predicate pattern).
template <typename F>
std::vector<std::pair<size_t, size_t>> char_matches(const std::string& s, F pred) {
  std::vector<std::pair<size_t, size_t>> m;
  for (size_t i = 0; i < s.size();) {
    const size_t k = uni::seq_len(static_cast<unsigned char>(s[i]));
    if (pred(uni::decode(s.substr(i, k))[0])) m.emplace_back(i, i + k);
    i += k;
  }
  return m;
}

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// The pieces [start, end) of a string of length `n` split at `matches` with `behavior` (the
// library's NormalizedString::split); empty pieces are dropped.
std::vector<std::pair<size_t, size_t>> split_ranges(size_t n, const std::vector<std::pair<size_t, size_t>>& matches,
                                                     Behavior behavior, bool invert) {
  struct Part {
    size_t a, b;
    bool match;
  };
  std::vector<Part> parts;
  size_t prev = 0;
  for (auto [a, b] : matches) {
    if (a != prev) parts.push_back({prev, a, false});
    parts.push_back({a, b, true});
    prev = b;
  }
  if (prev != n) parts.push_back({prev, n, false});
  if (invert)
    for (auto& p : parts) p.match = !p.match;
  std::vector<Part> out;
  switch (behavior) {
    case Behavior::Removed:
      for (auto& p : parts)
        if (!p.match) out.push_back(p);
      break;
    case Behavior::Isolated:
      out = parts;
      break;
    case Behavior::Contiguous: {
      bool prev_match = false;
      for (auto& p : parts) {
        if (p.match == prev_match && !out.empty())
          out.back().b = p.b;
        else
          out.push_back(p);
        prev_match = p.match;
      }
      break;
    }
    case Behavior::MergedWithPrevious: {
      bool prev_match = false;
      for (auto& p : parts) {
        if (p.match && !prev_match && !out.empty())
          out.back().b = p.b;
        else
          out.push_back(p);
        prev_match = p.match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool prev_match = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->match && !prev_match && !out.empty())
          out.back().a = it->a;
        else
          out.push_back(*it);
        prev_match = it->match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
  }
  std::vector<std::pair<size_t, size_t>> r;
  for (auto& p : out)
    if (p.b > p.a) r.emplace_back(p.a, p.b);
  return r;
}

// ---------------------------------------------------------------- components

struct Ctx {
  std::string path;  // for messages
};

std::string type_of(const json& j, const std::string& path, const char* what) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    input_error("{}: {} has no \"type\" (expected an object with a string \"type\")", path, what);
  return j["type"].get<std::string>();
}

Pattern pattern_of(const json& j, const std::string& path, const char* what) {
  Pattern p;
  if (j.is_object() && j.contains("String")) {
    p.literal = j["String"].get<std::string>();
  } else if (j.is_object() && j.contains("Regex")) {
    p.re = std::make_shared<uni::Regex>(j["Regex"].get<std::string>(), path + ": " + what);
  } else {
    input_error("{}: {} pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}", path, what);
  }
  return p;
}

Behavior behavior_of(const json& j, const std::string& path) {
  const std::string b = j.get<std::string>();
  if (b == "Removed") return Behavior::Removed;
  if (b == "Isolated") return Behavior::Isolated;
  if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::MergedWithNext;
  if (b == "Contiguous") return Behavior::Contiguous;
  input_error("{}: unknown split behavior '{}' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or "
              "Contiguous)", path, b);
}

// ---- normalizers

struct Normalizer {
  virtual ~Normalizer() = default;
  virtual void apply(std::string& s) const = 0;
};
using NormalizerP = std::unique_ptr<Normalizer>;

struct FormNorm : Normalizer {
  uni::Form f;
  explicit FormNorm(uni::Form f) : f(f) {}
  void apply(std::string& s) const override { s = uni::normalize(s, f); }
};
struct LowercaseNorm : Normalizer {
  void apply(std::string& s) const override { s = uni::lowercase(s); }
};
// StripAccents drops every mark (Mn, Mc, Me: is_combining_mark); BertNormalizer only nonspacing
// ones (Mn), so it keeps e.g. the Devanagari vowel signs (Mc).
void strip_marks(std::string& s, bool nonspacing_only) {
  std::string out;
  for (char32_t c : uni::decode(s))
    if (!(nonspacing_only ? uni::is_nonspacing_mark(c) : uni::is_mark(c))) uni::append(out, c);
  s = std::move(out);
}
struct StripAccentsNorm : Normalizer {
  void apply(std::string& s) const override { strip_marks(s, false); }
};
struct ReplaceNorm : Normalizer {
  Pattern p;
  std::string content;
  void apply(std::string& s) const override { s = p.replace(s, content); }
};
struct PrependNorm : Normalizer {
  std::string prepend;
  void apply(std::string& s) const override {
    if (!s.empty()) s = prepend + s;
  }
};
struct StripNorm : Normalizer {
  bool left = true, right = true;
  void apply(std::string& s) const override {
    std::u32string u = uni::decode(s);
    size_t a = 0, b = u.size();
    if (left)
      while (a < b && uni::is_whitespace(u[a])) ++a;
    if (right)
      while (b > a && uni::is_whitespace(u[b - 1])) --b;
    s = uni::encode(u.substr(a, b - a));
  }
};
struct BertNorm : Normalizer {
  bool clean_text = true, chinese = true, strip_accents = true, lowercase = true;
  void apply(std::string& s) const override {
    std::string out;
    for (char32_t c : uni::decode(s)) {
      if (clean_text) {
        if (c == 0 || c == 0xFFFD || uni::is_bert_control(c)) continue;
        if (uni::is_whitespace(c)) c = ' ';
      }
      if (chinese && uni::is_cjk(c)) {
        out += ' ';
        uni::append(out, c);
        out += ' ';
      } else {
        uni::append(out, c);
      }
    }
    if (strip_accents) {
      out = uni::normalize(out, uni::Form::NFD);
      strip_marks(out, true);
    }
    if (lowercase) out = uni::lowercase(out);
    s = std::move(out);
  }
};
struct SeqNorm : Normalizer {
  std::vector<NormalizerP> parts;
  void apply(std::string& s) const override {
    for (auto& p : parts) p->apply(s);
  }
};

NormalizerP make_normalizer(const json& j, const std::string& path) {
  const std::string t = type_of(j, path, "normalizer");
  if (t == "NFC") return std::make_unique<FormNorm>(uni::Form::NFC);
  if (t == "NFD") return std::make_unique<FormNorm>(uni::Form::NFD);
  if (t == "NFKC") return std::make_unique<FormNorm>(uni::Form::NFKC);
  if (t == "NFKD") return std::make_unique<FormNorm>(uni::Form::NFKD);
  if (t == "Lowercase") return std::make_unique<LowercaseNorm>();
  if (t == "StripAccents") return std::make_unique<StripAccentsNorm>();
  if (t == "Replace") {
    auto n = std::make_unique<ReplaceNorm>();
    n->p = pattern_of(j.at("pattern"), path, "Replace normalizer");
    n->content = j.at("content").get<std::string>();
    return n;
  }
  if (t == "Prepend") {
    auto n = std::make_unique<PrependNorm>();
    n->prepend = j.at("prepend").get<std::string>();
    return n;
  }
  if (t == "Strip") {
    auto n = std::make_unique<StripNorm>();
    n->left = j.value("strip_left", true);
    n->right = j.value("strip_right", true);
    return n;
  }
  if (t == "BertNormalizer") {
    auto n = std::make_unique<BertNorm>();
    n->clean_text = j.value("clean_text", true);
    n->chinese = j.value("handle_chinese_chars", true);
    n->lowercase = j.value("lowercase", true);
    n->strip_accents = j.contains("strip_accents") && !j["strip_accents"].is_null() ? j["strip_accents"].get<bool>()
                                                                                     : n->lowercase;
    return n;
  }
  if (t == "Sequence") {
    auto n = std::make_unique<SeqNorm>();
    for (const auto& c : j.at("normalizers")) n->parts.push_back(make_normalizer(c, path));
    return n;
  }
  input_error("{}: unsupported normalizer type '{}' (supported: NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Replace, "
              "Prepend, Strip, BertNormalizer, Sequence)", path, t);
}

// ---- pre-tokenizers

struct Piece {
  std::string s;
  bool at_start;  // begins at offset 0 of the input text (Metaspace's "first" scheme)
};

struct PreTok {
  virtual ~PreTok() = default;
  virtual void apply(std::vector<Piece>& ps) const = 0;
};
using PreTokP = std::unique_ptr<PreTok>;

// Replace every piece by its sub-pieces at `ranges_of(piece)`.
template <typename F>
void split_each(std::vector<Piece>& ps, F ranges_of) {
  std::vector<Piece> out;
  for (auto& p : ps)
    for (auto [a, b] : ranges_of(p.s)) out.push_back({p.s.substr(a, b - a), p.at_start && a == 0});
  ps = std::move(out);
}

const char* kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct ByteLevelPre : PreTok {
  bool add_prefix_space = true, use_regex = true;
  std::shared_ptr<uni::Regex> re;
  void apply(std::vector<Piece>& ps) const override {
    std::vector<Piece> out;
    for (auto& p : ps) {
      std::string s = p.s;
      if (add_prefix_space && (s.empty() || s[0] != ' ')) s = " " + s;
      std::vector<std::pair<size_t, size_t>> r;
      if (use_regex)
        r = split_ranges(s.size(), re->find_all(s), Behavior::Isolated, false);
      else if (!s.empty())
        r.emplace_back(0, s.size());
      for (auto [a, b] : r) {
        std::string m;
        for (size_t i = a; i < b; ++i) m += byte_map().enc[static_cast<unsigned char>(s[i])];
        out.push_back({std::move(m), p.at_start && a == 0});
      }
    }
    ps = std::move(out);
  }
};
struct SplitPre : PreTok {
  Pattern p;
  Behavior behavior = Behavior::Isolated;
  bool invert = false;
  void apply(std::vector<Piece>& ps) const override {
    split_each(ps, [&](const std::string& s) { return split_ranges(s.size(), p.find_all(s), behavior, invert); });
  }
};
template <typename F>
struct CharSplitPre : PreTok {
  F pred;
  Behavior behavior;
  CharSplitPre(F f, Behavior b) : pred(f), behavior(b) {}
  void apply(std::vector<Piece>& ps) const override {
    split_each(ps, [&](const std::string& s) { return split_ranges(s.size(), char_matches(s, pred), behavior, false); });
  }
};
template <typename F>
PreTokP char_split(F f, Behavior b) {
  return std::make_unique<CharSplitPre<F>>(f, b);
}
struct MetaspacePre : PreTok {
  std::string rep = "\xE2\x96\x81";  // U+2581
  enum { Always, First, Never } scheme = Always;
  bool split = true;
  void apply(std::vector<Piece>& ps) const override {
    std::vector<Piece> out;
    for (auto& p : ps) {
      std::string s = p.s;
      replace_all(s, " ", rep);
      const bool starts = s.compare(0, rep.size(), rep) == 0;
      if (!starts && (scheme == Always || (scheme == First && p.at_start))) s = rep + s;
      if (!split) {
        if (!s.empty()) out.push_back({s, p.at_start});
        continue;
      }
      std::vector<std::pair<size_t, size_t>> m;
      for (size_t i = s.find(rep); i != std::string::npos; i = s.find(rep, i + rep.size())) m.emplace_back(i, i + rep.size());
      for (auto [a, b] : split_ranges(s.size(), m, Behavior::MergedWithNext, false))
        out.push_back({s.substr(a, b - a), p.at_start && a == 0});
    }
    ps = std::move(out);
  }
};
struct SeqPre : PreTok {
  std::vector<PreTokP> parts;
  void apply(std::vector<Piece>& ps) const override {
    for (auto& p : parts) p->apply(ps);
  }
};

PreTokP make_pretokenizer(const json& j, const std::string& path) {
  const std::string t = type_of(j, path, "pre_tokenizer");
  if (t == "ByteLevel") {
    auto p = std::make_unique<ByteLevelPre>();
    p->add_prefix_space = j.value("add_prefix_space", true);
    p->use_regex = j.value("use_regex", true);
    if (p->use_regex) p->re = std::make_shared<uni::Regex>(kGpt2Regex, path + ": ByteLevel");
    return p;
  }
  if (t == "Split") {
    auto p = std::make_unique<SplitPre>();
    p->p = pattern_of(j.at("pattern"), path, "Split pre-tokenizer");
    p->behavior = behavior_of(j.at("behavior"), path);
    p->invert = j.value("invert", false);
    return p;
  }
  if (t == "Digits") {
    const bool individual = j.value("individual_digits", false);
    return char_split(uni::is_numeric, individual ? Behavior::Isolated : Behavior::Contiguous);
  }
  if (t == "Whitespace") {
    // \w+|[^\w\s]+ (Rust regex's Unicode \w), keeping the matches
    auto p = std::make_unique<SplitPre>();
    const std::string w = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D})";
    p->p.re = std::make_shared<uni::Regex>("[" + w + "]+|[^" + w + R"(\s]+)", path + ": Whitespace");
    p->behavior = Behavior::Removed;
    p->invert = true;
    return p;
  }
  if (t == "WhitespaceSplit") return char_split(uni::is_whitespace, Behavior::Removed);
  if (t == "BertPreTokenizer") {
    auto p = std::make_unique<SeqPre>();
    p->parts.push_back(char_split(uni::is_whitespace, Behavior::Removed));
    p->parts.push_back(char_split(uni::is_punctuation, Behavior::Isolated));
    return p;
  }
  if (t == "Punctuation")
    return char_split(uni::is_punctuation, j.contains("behavior") ? behavior_of(j["behavior"], path) : Behavior::Isolated);
  if (t == "CharDelimiterSplit") {
    const std::u32string d = uni::decode(j.at("delimiter").get<std::string>());
    BRAID_INPUT_CHECK(d.size() == 1, "{}: CharDelimiterSplit delimiter must be one character", path);
    const char32_t c = d[0];
    return char_split([c](char32_t x) { return x == c; }, Behavior::Removed);
  }
  if (t == "Metaspace") {
    auto p = std::make_unique<MetaspacePre>();
    p->rep = j.value("replacement", std::string("\xE2\x96\x81"));
    BRAID_INPUT_CHECK(uni::decode(p->rep).size() == 1, "{}: Metaspace replacement must be one character", path);
    const std::string scheme = j.contains("prepend_scheme") ? j["prepend_scheme"].get<std::string>()
                               : j.value("add_prefix_space", true) ? "always"
                                                                   : "never";
    p->scheme = scheme == "first" ? MetaspacePre::First : scheme == "never" ? MetaspacePre::Never : MetaspacePre::Always;
    p->split = j.value("split", true);
    return p;
  }
  if (t == "Sequence") {
    auto p = std::make_unique<SeqPre>();
    for (const auto& c : j.at("pretokenizers")) p->parts.push_back(make_pretokenizer(c, path));
    return p;
  }
  input_error("{}: unsupported pre_tokenizer type '{}' (supported: ByteLevel, Split, Digits, Whitespace, WhitespaceSplit, "
              "BertPreTokenizer, Punctuation, CharDelimiterSplit, Metaspace, Sequence)", path, t);
}

// ---- models

struct Model {
  std::unordered_map<std::string, int> vocab;
  std::vector<std::string> id_to_token;  // "" for holes
  int unk = -1;
  virtual ~Model() = default;
  virtual void tokenize(const std::string& word, std::vector<int>& out) const = 0;
  virtual std::string kind() const = 0;
  void set_vocab(const json& v, const std::string& path) {
    BRAID_INPUT_CHECK(v.is_object(), "{}: model.vocab must be an object of token -> id", path);
    for (auto it = v.begin(); it != v.end(); ++it) {
      BRAID_INPUT_CHECK(it.value().is_number_integer() && it.value().get<int64_t>() >= 0 && it.value().get<int64_t>() < INT_MAX,
                        "{}: model.vocab['{}'] must be a non-negative integer id", path, it.key());
      add(it.key(), it.value().get<int>());
    }
  }
  void add(const std::string& tok, int id) {
    vocab[tok] = id;
    if (id >= static_cast<int>(id_to_token.size())) id_to_token.resize(id + 1);
    id_to_token[id] = tok;
  }
  int find(const std::string& s) const {
    auto it = vocab.find(s);
    return it == vocab.end() ? -1 : it->second;
  }
  void set_unk(const json& j, const std::string& path) {
    if (!j.contains("unk_token") || j["unk_token"].is_null()) return;
    const std::string u = j["unk_token"].get<std::string>();
    unk = find(u);
    BRAID_INPUT_CHECK(unk >= 0, "{}: model.unk_token '{}' is not in the vocabulary", path, u);
  }
};

struct BpeModel : Model {
  std::unordered_map<uint64_t, std::pair<int, int>> merges;  // (left id, right id) -> (rank, merged id)
  std::string prefix, suffix;
  bool byte_fallback = false, fuse_unk = false, ignore_merges = false;
  static uint64_t key(int a, int b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }

  void tokenize(const std::string& w, std::vector<int>& out) const override {
    if (ignore_merges) {
      int id = find(w);
      if (id >= 0) {
        out.push_back(id);
        return;
      }
    }
    std::vector<int> syms;
    int pending_unk = -1;  // a run of unknown characters (fused when fuse_unk)
    for (size_t i = 0; i < w.size();) {
      const size_t k = std::min<size_t>(uni::seq_len(static_cast<unsigned char>(w[i])), w.size() - i);
      std::string s = w.substr(i, k);
      if (i > 0) s = prefix + s;
      if (i + k == w.size()) s += suffix;
      i += k;
      int id = find(s);
      if (id >= 0) {
        if (pending_unk >= 0) syms.push_back(pending_unk), pending_unk = -1;
        syms.push_back(id);
        continue;
      }
      if (byte_fallback) {
        std::vector<int> bytes;
        for (unsigned char b : s) {
          char name[8];
          std::snprintf(name, sizeof name, "<0x%02X>", b);
          int bid = find(name);
          if (bid < 0) {
            bytes.clear();
            break;
          }
          bytes.push_back(bid);
        }
        if (!bytes.empty()) {
          if (pending_unk >= 0) syms.push_back(pending_unk), pending_unk = -1;  // as the library: flushed later
          syms.insert(syms.end(), bytes.begin(), bytes.end());
          continue;
        }
      }
      if (unk >= 0) {
        if (pending_unk >= 0 && !fuse_unk) syms.push_back(pending_unk);
        pending_unk = unk;
      }
    }
    if (pending_unk >= 0) syms.push_back(pending_unk);
    merge_all(syms);
    out.insert(out.end(), syms.begin(), syms.end());
  }
  std::string kind() const override { return "hf-bpe"; }

  // Merge the lowest-ranked adjacent pair (leftmost on ties) until none is left: a min-heap of
  // candidate pairs over a linked list of symbols, O(n log n) (a long word of one letter repeated
  // must not take quadratic time). A popped pair whose symbols changed since it was pushed is
  // skipped unless it still merges into the same id (the reference's Word::merge_all rule).
  void merge_all(std::vector<int>& syms) const {
    const int n = static_cast<int>(syms.size());
    if (n < 2) return;
    std::vector<int> prev(n), next(n);
    std::vector<char> alive(n, 1);
    for (int i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
    struct Cand {
      int rank, pos, merged;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto push = [&](int pos) {
      if (pos < 0 || next[pos] < 0) return;
      auto it = merges.find(key(syms[pos], syms[next[pos]]));
      if (it != merges.end()) heap.push({it->second.first, pos, it->second.second});
    };
    for (int i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      const Cand c = heap.top();
      heap.pop();
      if (!alive[c.pos] || next[c.pos] < 0) continue;
      const int r = next[c.pos];
      auto it = merges.find(key(syms[c.pos], syms[r]));
      if (it == merges.end() || it->second.second != c.merged) continue;  // stale
      syms[c.pos] = c.merged;
      alive[r] = 0;
      next[c.pos] = next[r];
      if (next[r] >= 0) prev[next[r]] = c.pos;
      push(prev[c.pos]);
      push(c.pos);
    }
    std::vector<int> out;
    for (int i = 0; i >= 0; i = next[i]) out.push_back(syms[i]);
    syms = std::move(out);
  }
};

struct WordPieceModel : Model {
  std::string prefix = "##";
  size_t max_chars = 100;
  void tokenize(const std::string& w, std::vector<int>& out) const override {
    if (uni::decode(w).size() > max_chars) {
      out.push_back(unk);
      return;
    }
    std::vector<int> sub;
    size_t start = 0;
    while (start < w.size()) {
      size_t end = w.size();
      int found = -1;
      while (start < end) {
        std::string s = w.substr(start, end - start);
        if (start > 0) s = prefix + s;
        found = find(s);
        if (found >= 0) break;
        do --end;  // drop the last character
        while (end > start && (static_cast<unsigned char>(w[end]) & 0xC0) == 0x80);
      }
      if (found < 0) {
        out.push_back(unk);
        return;
      }
      sub.push_back(found);
      start = end;
    }
    out.insert(out.end(), sub.begin(), sub.end());
  }
  std::string kind() const override { return "hf-wordpiece"; }
};

struct WordLevelModel : Model {
  void tokenize(const std::string& w, std::vector<int>& out) const override {
    const int id = find(w);
    out.push_back(id >= 0 ? id : unk);
  }
  std::string kind() const override { return "hf-wordlevel"; }
};

std::unique_ptr<Model> make_model(const json& j, const std::string& path) {
  const std::string t = j.is_object() && !j.contains("type") && j.contains("merges") ? "BPE" : type_of(j, path, "model");
  if (t == "BPE") {
    auto m = std::make_unique<BpeModel>();
    BRAID_INPUT_CHECK(j.contains("vocab"), "{}: model (BPE) has no vocab", path);
    m->set_vocab(j["vocab"], path);
    if (j.contains("dropout") && !j["dropout"].is_null())
      BRAID_INPUT_CHECK(j["dropout"].get<double>() == 0.0, "{}: BPE dropout is not supported (expected null)", path);
    auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
    m->prefix = str("continuing_subword_prefix");
    m->suffix = str("end_of_word_suffix");
    m->byte_fallback = j.value("byte_fallback", false);
    m->fuse_unk = j.value("fuse_unk", false);
    m->ignore_merges = j.value("ignore_merges", false);
    m->set_unk(j, path);
    BRAID_INPUT_CHECK(j.contains("merges") && j["merges"].is_array(), "{}: model (BPE) has no merges array", path);
    const auto& merges = j["merges"];
    for (size_t r = 0; r < merges.size(); ++r) {
      std::string a, b;
      if (merges[r].is_string()) {  // "a b"
        const std::string line = merges[r].get<std::string>();
        const size_t sp = line.find(' ');
        BRAID_INPUT_CHECK(sp != std::string::npos && line.find(' ', sp + 1) == std::string::npos,
                          "{}: bad merges line {} '{}' (expected two tokens separated by one space)", path, r + 1, line);
        a = line.substr(0, sp), b = line.substr(sp + 1);
      } else {
        BRAID_INPUT_CHECK(merges[r].is_array() && merges[r].size() == 2 && merges[r][0].is_string() && merges[r][1].is_string(),
                          "{}: bad merges line {} (expected \"a b\" or [\"a\", \"b\"])", path, r + 1);
        a = merges[r][0].get<std::string>(), b = merges[r][1].get<std::string>();
      }
      const int ia = m->find(a), ib = m->find(b);
      BRAID_INPUT_CHECK(ia >= 0 && ib >= 0, "{}: bad merges line {} '{} {}': token '{}' is not in the vocabulary", path, r + 1,
                        a, b, ia < 0 ? a : b);
      BRAID_INPUT_CHECK(b.size() >= m->prefix.size(), "{}: bad merges line {} '{} {}'", path, r + 1, a, b);
      const std::string merged = a + b.substr(m->prefix.size());
      const int im = m->find(merged);
      BRAID_INPUT_CHECK(im >= 0, "{}: bad merges line {} '{} {}': the merged token '{}' is not in the vocabulary", path, r + 1,
                        a, b, merged);
      m->merges.emplace(BpeModel::key(ia, ib), std::make_pair(static_cast<int>(r), im));
    }
    return m;
  }
  if (t == "WordPiece") {
    auto m = std::make_unique<WordPieceModel>();
    BRAID_INPUT_CHECK(j.contains("vocab"), "{}: model (WordPiece) has no vocab", path);
    m->set_vocab(j["vocab"], path);
    m->prefix = j.value("continuing_subword_prefix", std::string("##"));
    m->max_chars = j.value("max_input_chars_per_word", 100);
    m->set_unk(j, path);
    BRAID_INPUT_CHECK(m->unk >= 0, "{}: model (WordPiece) needs an unk_token", path);
    return m;
  }
  if (t == "WordLevel") {
    auto m = std::make_unique<WordLevelModel>();
    BRAID_INPUT_CHECK(j.contains("vocab"), "{}: model (WordLevel) has no vocab", path);
    m->set_vocab(j["vocab"], path);
    m->set_unk(j, path);
    BRAID_INPUT_CHECK(m->unk >= 0, "{}: model (WordLevel) needs an unk_token", path);
    return m;
  }
  if (t == "Unigram")
    input_error("{}: unsupported model type 'Unigram' (load the checkpoint's sentencepiece .model instead)", path);
  input_error("{}: unsupported model type '{}' (supported: BPE, WordPiece, WordLevel)", path, t);
}

// ---- post-processors

struct Processor {
  virtual ~Processor() = default;
  virtual void apply(std::vector<int>& ids) const = 0;
  virtual int added() const = 0;  // ids it adds to a single sequence
  int first_special = -1, last_special = -1;  // candidates for bos / eos
};
using ProcessorP = std::unique_ptr<Processor>;

struct WrapProc : Processor {  // BertProcessing, RobertaProcessing, TemplateProcessing (single)
  std::vector<int> before, after;
  void apply(std::vector<int>& ids) const override {
    ids.insert(ids.begin(), before.begin(), before.end());
    ids.insert(ids.end(), after.begin(), after.end());
  }
  int added() const override { return static_cast<int>(before.size() + after.size()); }
};
struct NoProc : Processor {  // ByteLevel: offsets only
  void apply(std::vector<int>&) const override {}
  int added() const override { return 0; }
};
struct SeqProc : Processor {
  std::vector<ProcessorP> parts;
  void apply(std::vector<int>& ids) const override {
    for (auto& p : parts) p->apply(ids);
  }
  int added() const override {
    int n = 0;
    for (auto& p : parts) n += p->added();
    return n;
  }
};

int special_pair_id(const json& j, const std::string& path, const char* key) {
  BRAID_INPUT_CHECK(j.contains(key) && j[key].is_array() && j[key].size() == 2 && j[key][1].is_number_integer(),
                    "{}: post_processor.{} must be [token, id]", path, key);
  return j[key][1].get<int>();
}

ProcessorP make_processor(const json& j, const std::string& path) {
  const std::string t = type_of(j, path, "post_processor");
  if (t == "ByteLevel") return std::make_unique<NoProc>();
  if (t == "BertProcessing" || t == "RobertaProcessing") {
    auto p = std::make_unique<WrapProc>();
    p->before = {special_pair_id(j, path, "cls")};
    p->after = {special_pair_id(j, path, "sep")};
    p->first_special = p->before[0], p->last_special = p->after[0];
    return p;
  }
  if (t == "TemplateProcessing") {
    auto p = std::make_unique<WrapProc>();
    BRAID_INPUT_CHECK(j.contains("single") && j["single"].is_array(), "{}: TemplateProcessing has no single template", path);
    const json specials = j.value("special_tokens", json::object());
    bool seen_a = false;
    for (const auto& piece : j["single"]) {
      if (piece.contains("Sequence")) {
        BRAID_INPUT_CHECK(!seen_a, "{}: TemplateProcessing single template uses $A twice", path);
        seen_a = true;
        continue;
      }
      BRAID_INPUT_CHECK(piece.contains("SpecialToken"), "{}: TemplateProcessing piece must be SpecialToken or Sequence", path);
      const std::string name = piece["SpecialToken"].at("id").get<std::string>();
      BRAID_INPUT_CHECK(specials.contains(name), "{}: TemplateProcessing special token '{}' is not in special_tokens", path, name);
      auto ids = specials[name].at("ids").get<std::vector<int>>();
      auto& dst = seen_a ? p->after : p->before;
      dst.insert(dst.end(), ids.begin(), ids.end());
    }
    if (!p->before.empty()) p->first_special = p->before.front();
    if (!p->after.empty()) p->last_special = p->after.back();
    return p;
  }
  if (t == "Sequence") {
    auto p = std::make_unique<SeqProc>();
    for (const auto& c : j.at("processors")) {
      p->parts.push_back(make_processor(c, path));
      if (p->parts.back()->first_special >= 0) p->first_special = p->parts.back()->first_special;
      if (p->parts.back()->last_special >= 0) p->last_special = p->parts.back()->last_special;
    }
    return p;
  }
  input_error("{}: unsupported post_processor type '{}' (supported: TemplateProcessing, BertProcessing, RobertaProcessing, "
              "ByteLevel, Sequence)", path, t);
}

// ---- decoders

struct Decoder {
  virtual ~Decoder() = default;
  virtual void apply(std::vector<std::string>& toks) const = 0;
};
using DecoderP = std::unique_ptr<Decoder>;

struct ByteLevelDec : Decoder {
  void apply(std::vector<std::string>& toks) const override {
    std::string bytes;
    for (const auto& t : toks) {
      std::string b;
      bool ok = true;
      for (char32_t c : uni::decode(t)) {
        auto it = byte_map().dec.find(c);
        if (it == byte_map().dec.end()) {
          ok = false;
          break;
        }
        b.push_back(static_cast<char>(it->second));
      }
      bytes += ok ? b : t;
    }
    toks = {uni::lossy(bytes)};
  }
};
struct WordPieceDec : Decoder {
  std::string prefix = "##";
  bool cleanup = true;
  void apply(std::vector<std::string>& toks) const override {
    for (size_t i = 0; i < toks.size(); ++i) {
      auto& t = toks[i];
      if (i != 0) {
        if (t.compare(0, prefix.size(), prefix) == 0)
          t = t.substr(prefix.size());
        else
          t = " " + t;
      }
      if (cleanup)
        for (auto [a, b] : std::initializer_list<std::pair<const char*, const char*>>{
                 {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"}, {" 'm", "'m"},
                 {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}})
          replace_all(t, a, b);
    }
  }
};
struct MetaspaceDec : Decoder {
  std::string rep = "\xE2\x96\x81";
  bool prepend = true;
  void apply(std::vector<std::string>& toks) const override {
    for (size_t i = 0; i < toks.size(); ++i) {
      std::string out;
      const std::string& t = toks[i];
      for (size_t k = 0; k < t.size();) {
        if (t.compare(k, rep.size(), rep) == 0) {
          if (!(i == 0 && prepend)) out += ' ';
          k += rep.size();
        } else {
          out += t[k++];
        }
      }
      toks[i] = std::move(out);
    }
  }
};
struct BpeDec : Decoder {
  std::string suffix = "</w>";
  void apply(std::vector<std::string>& toks) const override {
    for (size_t i = 0; i < toks.size(); ++i) replace_all(toks[i], suffix, i + 1 == toks.size() ? "" : " ");
  }
};
struct ReplaceDec : Decoder {
  Pattern p;
  std::string content;
  void apply(std::vector<std::string>& toks) const override {
    for (auto& t : toks) t = p.replace(t, content);
  }
};
struct StripDec : Decoder {
  char32_t content = ' ';
  size_t start = 0, stop = 0;
  void apply(std::vector<std::string>& toks) const override {
    for (auto& t : toks) {
      std::u32string u = uni::decode(t);
      size_t a = 0, b = u.size();
      while (a < start && a < u.size() && u[a] == content) ++a;
      for (size_t i = 0; i < stop && b > a && u[b - 1] == content; ++i) --b;
      t = uni::encode(u.substr(a, b - a));
    }
  }
};
struct ByteFallbackDec : Decoder {
  void apply(std::vector<std::string>& toks) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (uni::lossy(pending) == pending)
        out.push_back(pending);
      else
        for (size_t i = 0; i < pending.size(); ++i) out.push_back("\xEF\xBF\xBD");
      pending.clear();
    };
    for (auto& t : toks) {
      auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex(t[3]) && hex(t[4])) {
        pending.push_back(static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
      } else {
        flush();
        out.push_back(t);
      }
    }
    flush();
    toks = std::move(out);
  }
};
struct FuseDec : Decoder {
  void apply(std::vector<std::string>& toks) const override {
    std::string all;
    for (auto& t : toks) all += t;
    toks = {all};
  }
};
struct SeqDec : Decoder {
  std::vector<DecoderP> parts;
  void apply(std::vector<std::string>& toks) const override {
    for (auto& p : parts) p->apply(toks);
  }
};

DecoderP make_decoder(const json& j, const std::string& path) {
  const std::string t = type_of(j, path, "decoder");
  if (t == "ByteLevel") return std::make_unique<ByteLevelDec>();
  if (t == "WordPiece") {
    auto d = std::make_unique<WordPieceDec>();
    d->prefix = j.value("prefix", std::string("##"));
    d->cleanup = j.value("cleanup", true);
    return d;
  }
  if (t == "Metaspace") {
    auto d = std::make_unique<MetaspaceDec>();
    d->rep = j.value("replacement", std::string("\xE2\x96\x81"));
    d->prepend = j.contains("prepend_scheme") ? j["prepend_scheme"].get<std::string>() != "never" : j.value("add_prefix_space", true);
    return d;
  }
  if (t == "BPEDecoder") {
    auto d = std::make_unique<BpeDec>();
    d->suffix = j.value("suffix", std::string("</w>"));
    return d;
  }
  if (t == "Replace") {
    auto d = std::make_unique<ReplaceDec>();
    d->p = pattern_of(j.at("pattern"), path, "Replace decoder");
    d->content = j.at("content").get<std::string>();
    return d;
  }
  if (t == "Strip") {
    auto d = std::make_unique<StripDec>();
    const std::u32string c = uni::decode(j.at("content").get<std::string>());
    BRAID_INPUT_CHECK(c.size() == 1, "{}: Strip decoder content must be one character", path);
    d->content = c[0];
    d->start = j.value("start", 0);
    d->stop = j.value("stop", 0);
    return d;
  }
  if (t == "ByteFallback") return std::make_unique<ByteFallbackDec>();
  if (t == "Fuse") return std::make_unique<FuseDec>();
  if (t == "Sequence") {
    auto d = std::make_unique<SeqDec>();
    for (const auto& c : j.at("decoders")) d->parts.push_back(make_decoder(c, path));
    return d;
  }
  input_error("{}: unsupported decoder type '{}' (supported: ByteLevel, WordPiece, Metaspace, BPEDecoder, Replace, Strip, "
              "ByteFallback, Fuse, Sequence)", path, t);
}

// ---------------------------------------------------------------- the pipeline

struct AddedToken {
  std::string content;  // as written in the file
  std::string pattern;  // what is matched: content, or its normalized form
  int id = -1;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

class HfBackend final : public Backend {
 public:
  std::string path, kind_;
  NormalizerP normalizer;
  PreTokP pre;
  std::unique_ptr<Model> model;
  ProcessorP post;
  DecoderP decoder;
  std::vector<AddedToken> added;
  std::unordered_map<int, size_t> added_by_id;
  std::unordered_map<std::string, int> added_by_content;
  int size = 0;

  void add_token(AddedToken t) {
    t.pattern = t.content;
    if (t.normalized && normalizer) normalizer->apply(t.pattern);
    added_by_id[t.id] = added.size();
    added_by_content[t.content] = t.id;
    size = std::max(size, t.id + 1);
    added.push_back(std::move(t));
  }

  void finish() {
    size = std::max(size, static_cast<int>(model->id_to_token.size()));
    unk = model->unk;
  }

  struct Seg {
    std::string text;
    int id;  // an added token, or -1 for text
    bool at_start;
  };

  // Split `segs`' text at the added tokens whose `normalized` flag is `norm_pass` (the library's
  // leftmost-longest matching with the single_word / lstrip / rstrip rules).
  void split_added(std::vector<Seg>& segs, bool norm_pass) const {
    std::vector<const AddedToken*> pats;
    bool first_byte[256] = {};
    for (const auto& t : added)
      if (t.normalized == norm_pass && !t.pattern.empty()) {
        pats.push_back(&t);
        first_byte[static_cast<unsigned char>(t.pattern[0])] = true;
      }
    std::vector<Seg> out;
    for (auto& sg : segs) {
      if (sg.id >= 0) {
        out.push_back(std::move(sg));
        continue;
      }
      if (norm_pass && normalizer) normalizer->apply(sg.text);
      const std::string& s = sg.text;
      size_t from = 0;  // start of the text not yet emitted
      size_t pos = 0;
      while (pos < s.size() && !pats.empty()) {
        if (!first_byte[static_cast<unsigned char>(s[pos])]) {
          ++pos;
          continue;
        }
        const AddedToken* best = nullptr;
        for (const auto* t : pats)
          if (s.compare(pos, t->pattern.size(), t->pattern) == 0 && (!best || t->pattern.size() > best->pattern.size())) best = t;
        if (!best) {
          ++pos;
          continue;
        }
        size_t a = pos, b = pos + best->pattern.size();
        pos = b;
        if (best->single_word) {
          auto before = a == 0 ? std::u32string() : uni::decode(s.substr(0, a));
          auto after = uni::decode(s.substr(b, 8));
          const bool ok_l = before.empty() || !uni::is_alphanumeric(before.back());
          const bool ok_r = b == s.size() || after.empty() || !uni::is_alphanumeric(after[0]);
          if (!ok_l || !ok_r) continue;
        }
        if (best->lstrip) {
          auto u = uni::decode(s.substr(0, a));
          size_t k = u.size();
          while (k > 0 && uni::is_whitespace(u[k - 1])) --k;
          a = std::max(uni::encode(u.substr(0, k)).size(), from);
        }
        if (best->rstrip) {
          auto u = uni::decode(s.substr(b));
          size_t k = 0;
          while (k < u.size() && uni::is_whitespace(u[k])) ++k;
          b += uni::encode(u.substr(0, k)).size();
          pos = b;
        }
        if (from < a) out.push_back({s.substr(from, a - from), -1, sg.at_start && from == 0});
        out.push_back({"", best->id, false});
        from = b;
      }
      if (from < s.size() || (from == 0 && s.empty())) out.push_back({s.substr(from), -1, sg.at_start && from == 0});
    }
    segs = std::move(out);
  }

  std::vector<int> content_ids(const std::string& raw, std::vector<std::string>* pieces) const {
    std::vector<Seg> segs{{uni::lossy(raw), -1, true}};
    split_added(segs, false);
    split_added(segs, true);
    std::vector<int> ids;
    for (auto& sg : segs) {
      if (sg.id >= 0) {
        ids.push_back(sg.id);
        continue;
      }
      if (sg.text.empty()) continue;
      std::vector<Piece> ps{{sg.text, sg.at_start}};
      if (pre) pre->apply(ps);
      for (auto& p : ps)
        if (!p.s.empty()) model->tokenize(p.s, ids);
    }
    if (pieces)
      for (int id : ids) pieces->push_back(piece(id));
    return ids;
  }

  std::vector<int> encode(const std::string& text, int max_len, bool add_specials) const override {
    std::vector<int> ids = content_ids(text, nullptr);
    const bool wrap = add_specials && post;
    if (max_len > 0) {
      const int room = std::max(0, max_len - (wrap ? post->added() : 0));
      if (static_cast<int>(ids.size()) > room) ids.resize(room);
    }
    if (wrap) post->apply(ids);
    if (max_len > 0 && static_cast<int>(ids.size()) > max_len) ids.resize(max_len);
    return ids;
  }

  std::vector<std::string> pieces(const std::string& text) const override {
    std::vector<std::string> out;
    content_ids(text, &out);
    return out;
  }

  std::string decode(const std::vector<int>& ids, bool skip_specials) const override {
    std::vector<std::string> toks;
    for (int id : ids) {
      auto it = added_by_id.find(id);
      if (it != added_by_id.end()) {
        if (skip_specials && added[it->second].special) continue;
        toks.push_back(added[it->second].content);
        continue;
      }
      if (id >= 0 && id < static_cast<int>(model->id_to_token.size()) && !model->id_to_token[id].empty())
        toks.push_back(model->id_to_token[id]);
    }
    if (!decoder) {
      std::string s;
      for (size_t i = 0; i < toks.size(); ++i) s += (i ? " " : "") + toks[i];
      return s;
    }
    decoder->apply(toks);
    std::string s;
    for (auto& t : toks) s += t;
    return s;
  }

  int piece_id(const std::string& p) const override {
    auto it = added_by_content.find(p);
    if (it != added_by_content.end()) return it->second;
    return model->find(p);
  }
  std::string piece(int id) const override {
    auto it = added_by_id.find(id);
    if (it != added_by_id.end()) return added[it->second].content;
    return id >= 0 && id < static_cast<int>(model->id_to_token.size()) ? model->id_to_token[id] : std::string();
  }
  int vocab_size() const override { return size; }
  std::string kind() const override { return kind_; }

  // Special ids: a sibling tokenizer_config.json's bos/eos/pad/unk tokens (or cls/sep) where it
  // names them, else the post-processor's first/last special and conventional names.
  void set_specials(const std::string& dir) {
    json cfg;
    const std::string cfg_path = dir + "/tokenizer_config.json";
    if (file_exists(cfg_path)) {
      try {
        cfg = json::parse(read_text_file(cfg_path));
      } catch (const json::exception& e) {
        input_error("{}: not valid JSON ({})", cfg_path, e.what());
      }
    }
    auto named = [&](std::initializer_list<const char*> keys, int& slot) {
      for (const char* k : keys) {
        if (!cfg.is_object() || !cfg.contains(k)) continue;
        const json& v = cfg[k];
        std::string name = v.is_string() ? v.get<std::string>() : v.is_object() ? v.value("content", std::string()) : "";
        slot = name.empty() ? -1 : piece_id(name);
        return true;
      }
      return false;
    };
    auto by_names = [&](std::initializer_list<const char*> names) {
      for (const char* n : names) {
        const int id = piece_id(n);
        if (id >= 0) return id;
      }
      return -1;
    };
    if (!named({"bos_token", "cls_token"}, bos))
      bos = post && post->first_special >= 0 ? post->first_special : by_names({"<s>", "<|startoftext|>", "<|begin_of_text|>", "<bos>", "[CLS]"});
    if (!named({"eos_token", "sep_token"}, eos))
      eos = post && post->last_special >= 0 ? post->last_special : by_names({"</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "[SEP]"});
    if (!named({"pad_token"}, pad)) pad = by_names({"<pad>", "[PAD]", "<|pad|>", "<|padding|>"});
    if (!named({"unk_token"}, unk) && unk < 0) unk = by_names({"<unk>", "[UNK]"});
  }
};

std::string dir_of(const std::string& path) {
  auto d = std::filesystem::path(path).parent_path().string();
  return d.empty() ? "." : d;
}

std::unique_ptr<Backend> build_hf_json(const std::string& path, const json& j) {
  BRAID_INPUT_CHECK(j.is_object(), "{}: a tokenizer.json must be a JSON object", path);
  BRAID_INPUT_CHECK(j.contains("model") && j["model"].is_object(), "{}: no \"model\" (expected a Hugging Face tokenizer.json)",
                    path);
  auto b = std::make_unique<HfBackend>();
  b->path = path;
  auto present = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  if (present("normalizer")) b->normalizer = make_normalizer(j["normalizer"], path);
  if (present("pre_tokenizer")) b->pre = make_pretokenizer(j["pre_tokenizer"], path);
  b->model = make_model(j["model"], path);
  b->kind_ = b->model->kind();
  if (present("post_processor")) b->post = make_processor(j["post_processor"], path);
  if (present("decoder")) b->decoder = make_decoder(j["decoder"], path);
  if (present("added_tokens")) {
    BRAID_INPUT_CHECK(j["added_tokens"].is_array(), "{}: added_tokens must be an array", path);
    for (const auto& a : j["added_tokens"]) {
      BRAID_INPUT_CHECK(a.is_object() && a.contains("id") && a.contains("content") && a["id"].is_number_integer() &&
                            a["id"].get<int64_t>() >= 0 && a["id"].get<int64_t>() < INT_MAX && a["content"].is_string(),
                        "{}: added_tokens entries need an integer \"id\" and a string \"content\"", path);
      AddedToken t;
      t.id = a["id"].get<int>();
      t.content = a["content"].get<std::string>();
      t.special = a.value("special", false);
      t.lstrip = a.value("lstrip", false);
      t.rstrip = a.value("rstrip", false);
      t.single_word = a.value("single_word", false);
      t.normalized = a.value("normalized", !t.special);
      b->add_token(std::move(t));
    }
  }
  b->finish();
  b->set_specials(dir_of(path));
  return b;
}

}  // namespace

std::unique_ptr<Backend> load_hf_json(const std::string& path) {
  json j;
  try {
    j = json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    input_error("{}: not valid JSON ({})", path, e.what());
  }
  try {
    if (j.is_object() && j.contains("model") && j["model"].is_object() && j["model"].value("type", "") == "HashedNgrams") {
      const json& m = j["model"];
      return make_hashed_ngrams(path, m.value("min_n", 3), m.value("max_n", 5), m.value("buckets", 20000),
                                m.value("word_ngrams", 1), m.value("cjk", false));
    }
    return build_hf_json(path, j);
  } catch (const json::exception& e) {  // a wrongly typed field
    input_error("{}: malformed tokenizer.json ({})", path, e.what());
  }
}

std::unique_ptr<Backend> load_vocab_txt(const std::string& path) {
  const std::string text = read_text_file(path);
  BRAID_INPUT_CHECK(!text.empty(), "{}: empty vocabulary (expected one WordPiece token per line)", path);
  BRAID_INPUT_CHECK(uni::lossy(text) == text, "{}: not UTF-8 text", path);
  json vocab = json::object();
  size_t start = 0, line = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    const std::string tok = text.substr(start, nl - start);
    BRAID_INPUT_CHECK(!tok.empty(), "{}:{}: empty line (expected one WordPiece token per line)", path, line + 1);
    vocab[tok] = static_cast<int>(line);  // a repeated token keeps its last id, as transformers' load_vocab
    ++line;
    start = nl + 1;
  }
  // transformers' BertTokenizer options from a sibling tokenizer_config.json (BERT uncased defaults)
  json cfg = json::object();
  const std::string cfg_path = dir_of(path) + "/tokenizer_config.json";
  if (file_exists(cfg_path)) {
    try {
      cfg = json::parse(read_text_file(cfg_path));
    } catch (const json::exception& e) {
      input_error("{}: not valid JSON ({})", cfg_path, e.what());
    }
  }
  auto name = [&](const char* key, const char* def) {
    const json v = cfg.is_object() && cfg.contains(key) ? cfg[key] : json(def);
    return v.is_string() ? v.get<std::string>() : v.is_object() ? v.value("content", std::string(def)) : std::string(def);
  };
  const bool lower = cfg.value("do_lower_case", true);
  const std::string unk = name("unk_token", "[UNK]"), cls = name("cls_token", "[CLS]"), sep = name("sep_token", "[SEP]"),
                    pad = name("pad_token", "[PAD]"), mask = name("mask_token", "[MASK]");
  BRAID_INPUT_CHECK(vocab.contains(unk), "{}: the unknown token '{}' is not in the vocabulary", path, unk);
  json j = {
      {"normalizer",
       {{"type", "BertNormalizer"},
        {"clean_text", true},
        {"handle_chinese_chars", cfg.value("tokenize_chinese_chars", true)},
        {"strip_accents", cfg.contains("strip_accents") ? cfg["strip_accents"] : json(nullptr)},
        {"lowercase", lower}}},
      {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
      {"model", {{"type", "WordPiece"}, {"vocab", vocab}, {"unk_token", unk}, {"continuing_subword_prefix", "##"}, {"max_input_chars_per_word", 100}}},
      {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
      {"added_tokens", json::array()},
  };
  for (const auto& s : {pad, unk, cls, sep, mask})
    if (vocab.contains(s))
      j["added_tokens"].push_back({{"id", vocab[s]}, {"content", s}, {"special", true}, {"normalized", false}});
  if (vocab.contains(cls) && vocab.contains(sep))
    j["post_processor"] = {{"type", "BertProcessing"}, {"cls", {cls, vocab[cls]}}, {"sep", {sep, vocab[sep]}}};
  auto b = build_hf_json(path, j);
  static_cast<HfBackend*>(b.get())->kind_ = "wordpiece";
  return b;
}

}  // namespace braid::data::tok
