// braid/data/tokenizer.h — sub-word tokenizer (sentencepiece unigram), trained on a corpus and
// stored as a .model file beside the run. Id 0 is padding, 1 unknown, 2 begin, 3 end.
//
// sentencepiece runs inside a separately loaded module (see spm/bridge.h); a missing module
// is an error that names where it was looked for.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace braid::data {

class Tokenizer {
 public:
  static constexpr int kPad = 0, kUnk = 1, kBos = 2, kEos = 3;

  // Train a unigram model of about `vocab` pieces on `lines` and write it to `model_path`
  // (atomically). Small corpora get a smaller vocabulary rather than an error. `specials` become
  // single pieces (ids 4, 5, ... in order) that text containing them encodes to (chat tokens).
  static void train(const std::vector<std::string>& lines, int vocab, const std::string& model_path,
                    const std::vector<std::string>& specials = {});
  static Tokenizer load(const std::string& model_path);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Ids of `text` (no padding), at most `max_len` (0 = all).
  std::vector<int> encode(const std::string& text, int max_len = 0) const;
  std::vector<std::string> pieces(const std::string& text) const;
  // Text of `ids` (padding, begin and end dropped; unknown ids are an InputError).
  std::string decode(const std::vector<int>& ids) const;
  // The id of one piece, or -1 when the vocabulary lacks it.
  int piece_id(const std::string& piece) const;
  // The piece of one id ("" when out of range).
  std::string piece(int id) const;
  int vocab_size() const;
  const std::string& path() const { return path_; }

 private:
  Tokenizer() = default;
  void* handle_ = nullptr;
  std::string path_;
};

}  // namespace braid::data
