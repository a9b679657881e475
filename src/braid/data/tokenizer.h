// braid/data/tokenizer.h — the one tokenizer interface of braid, a facade over backends:
//
//   *.model          sentencepiece (braid's own, trained on a corpus and stored beside the run:
//                    id 0 padding, 1 unknown, 2 begin, 3 end; or any sentencepiece model)
//   *.json           a Hugging Face tokenizer.json (BPE or WordPiece model with its normalizer,
//                    pre-tokenizer, post-processor and decoder; see docs/tokenizers.md)
//   vocab.txt/*.txt  a BERT WordPiece vocabulary (lower-casing and accent stripping from a sibling
//                    tokenizer_config.json when present, BERT uncased defaults otherwise)
//
// Ids are those of the reference implementation (sentencepiece / HF tokenizers) id for id.
// sentencepiece runs inside a separately loaded module (see spm/bridge.h); a missing module
// is an error that names where it was looked for. Malformed or unsupported files are an
// InputError naming the file and what was expected.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace braid::data {

namespace tok {
class Backend;  // tokenizers/backend.h
}

class Tokenizer {
 public:
  // The special ids of braid-trained (sentencepiece) tokenizers; other tokenizers: pad_id() etc.
  static constexpr int kPad = 0, kUnk = 1, kBos = 2, kEos = 3;

  // Train a unigram model of about `vocab` pieces on `lines` and write it to `model_path`
  // (atomically). Small corpora get a smaller vocabulary rather than an error. `specials` become
  // single pieces (ids 4, 5, ... in order) that text containing them encodes to (chat tokens).
  static void train(const std::vector<std::string>& lines, int vocab, const std::string& model_path,
                    const std::vector<std::string>& specials = {});
  // Load by file name (see the table above).
  static Tokenizer load(const std::string& path);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Ids of `text` (no padding), at most `max_len` (0 = all). With `add_specials` the tokenizer's
  // post-processor adds its special tokens (e.g. [CLS] ... [SEP]; HF `encode(text).ids`); braid's
  // sentencepiece tokenizers have none (callers add kBos/kEos). Truncation keeps the specials.
  std::vector<int> encode(const std::string& text, int max_len = 0) const;
  std::vector<int> encode(const std::string& text, int max_len, bool add_specials) const;
  // The pieces (token strings) of `text` without specials.
  std::vector<std::string> pieces(const std::string& text) const;
  // Text of `ids`; special tokens (padding, begin, end, ...) are dropped unless `skip_specials`
  // is false. Ids outside the vocabulary are an InputError.
  std::string decode(const std::vector<int>& ids, bool skip_specials = true) const;
  // The id of one piece, or -1 when the vocabulary lacks it.
  int piece_id(const std::string& piece) const;
  // The piece of one id ("" when out of range).
  std::string piece(int id) const;
  int vocab_size() const;
  // Special ids, -1 when the tokenizer has none.
  int pad_id() const;
  int bos_id() const;
  int eos_id() const;
  int unk_id() const;
  // "sentencepiece", "hf-bpe", "hf-wordpiece" or "wordpiece" (vocab.txt).
  std::string kind() const;
  const std::string& path() const { return path_; }

 private:
  Tokenizer(std::unique_ptr<tok::Backend> impl, std::string path);
  std::unique_ptr<tok::Backend> impl_;
  std::string path_;
};

}  // namespace braid::data
