// braid/data/tokenizers/backend.h — what a tokenizer backend implements behind data::Tokenizer
// (tokenizer.h, the only header the rest of braid includes). One backend per file format.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace braid::data::tok {

class Backend {
 public:
  virtual ~Backend() = default;
  // Ids of `text`; with `add_specials` the post-processor's special tokens. `max_len` > 0 truncates
  // the content so that the result, specials included, has at most `max_len` ids.
  virtual std::vector<int> encode(const std::string& text, int max_len, bool add_specials) const = 0;
  virtual std::vector<std::string> pieces(const std::string& text) const = 0;
  // Ids are checked against vocab_size() by the caller.
  virtual std::string decode(const std::vector<int>& ids, bool skip_specials) const = 0;
  virtual int piece_id(const std::string& piece) const = 0;
  virtual std::string piece(int id) const = 0;
  virtual int vocab_size() const = 0;
  virtual std::string kind() const = 0;
  int pad = -1, bos = -1, eos = -1, unk = -1;
};

// sentencepiece .model (spm.cpp).
std::unique_ptr<Backend> load_sentencepiece(const std::string& path);
void train_sentencepiece(const std::vector<std::string>& lines, int vocab, const std::string& model_path,
                         const std::vector<std::string>& specials);
// Hugging Face tokenizer.json (hf.cpp).
std::unique_ptr<Backend> load_hf_json(const std::string& path);
// Hashed words, character n-grams and word n-grams (ngram.cpp): a tokenizer.json whose model type is
// HashedNgrams; `cjk`: every CJK ideograph a word of its own.
std::unique_ptr<Backend> make_hashed_ngrams(const std::string& path, int min_n, int max_n, int buckets,
                                            int word_ngrams, bool cjk);
// BERT vocab.txt, with an optional sibling tokenizer_config.json (hf.cpp).
std::unique_ptr<Backend> load_vocab_txt(const std::string& path);

}  // namespace braid::data::tok
