// braid/data/tokenizers/unicode.h — the Unicode pieces the tokenizer backends need: UTF-8 coding,
// character classes with the meaning the Rust `tokenizers` library gives them, normalization forms
// and lower-casing (utf8proc), and regular expressions (PCRE2 in UTF + UCP mode).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace braid::data::tok::uni {

// Code points of valid UTF-8 `s` (see lossy()), and back.
std::u32string decode(const std::string& s);
void append(std::string& out, char32_t c);
std::string encode(const std::u32string& s);
// Byte length of the UTF-8 sequence starting with byte `b` (1 for invalid lead bytes).
int seq_len(unsigned char b);
// `bytes` with every invalid UTF-8 sequence replaced by U+FFFD, as Rust's String::from_utf8_lossy
// (one replacement per maximal invalid subpart).
std::string lossy(const std::string& bytes);

// Character classes (Rust char methods / tokenizers' helpers).
bool is_whitespace(char32_t c);       // White_Space
bool is_alphanumeric(char32_t c);     // letters, marks of letters, numbers
bool is_numeric(char32_t c);          // Nd, Nl, No
bool is_punctuation(char32_t c);      // ASCII punctuation or P*
bool is_bert_control(char32_t c);     // C* except \t \n \r
bool is_mark(char32_t c);             // Mn, Mc, Me
bool is_nonspacing_mark(char32_t c);  // Mn
bool is_cjk(char32_t c);              // BERT's CJK ideograph blocks

enum class Form { NFC, NFD, NFKC, NFKD };
std::string normalize(const std::string& s, Form f);
// Full lower-case mapping per character (Rust char::to_lowercase).
std::string lowercase(const std::string& s);

// A compiled PCRE2 pattern (UTF + UCP). Bad patterns throw InputError naming `where`.
class Regex {
 public:
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Every non-overlapping match [start, end) of `s`, left to right (empty matches included).
  std::vector<std::pair<size_t, size_t>> find_all(const std::string& s) const;

 private:
  void* code_ = nullptr;
};

}  // namespace braid::data::tok::uni
