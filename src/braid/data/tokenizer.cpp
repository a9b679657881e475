// braid/data/tokenizer.cpp — the facade: picks the backend by file name (tokenizers/backend.h).
#include "braid/data/tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/data/tokenizers/backend.h"

namespace braid::data {

void Tokenizer::train(const std::vector<std::string>& lines, int vocab, const std::string& model_path,
                      const std::vector<std::string>& specials) {
  tok::train_sentencepiece(lines, vocab, model_path, specials);
}

Tokenizer::Tokenizer(std::unique_ptr<tok::Backend> impl, std::string path) : impl_(std::move(impl)), path_(std::move(path)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& given) {
  std::string path = given;
  std::error_code ec;
  if (std::filesystem::is_directory(given, ec)) {  // a checkpoint folder: its tokenizer file
    path.clear();
    for (const char* name : {"tokenizer.json", "vocab.txt", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model"})
      if (file_exists(given + "/" + name)) {
        path = given + "/" + name;
        break;
      }
    BRAID_INPUT_CHECK(!path.empty(), "{}: the folder has no tokenizer.json, vocab.txt, tokenizer.model, spiece.model or "
                      "sentencepiece.bpe.model", given);
  }
  const std::filesystem::path p(path);
  const std::string ext = p.extension().string();
  BRAID_INPUT_CHECK(file_exists(path), "{}: no such tokenizer file", path);
  if (ext == ".json") return Tokenizer(tok::load_hf_json(path), path);
  if (ext == ".txt") return Tokenizer(tok::load_vocab_txt(path), path);
  return Tokenizer(tok::load_sentencepiece(path), path);  // *.model and any other name, as before
}

std::vector<int> Tokenizer::encode(const std::string& text, int max_len) const { return encode(text, max_len, true); }
std::vector<int> Tokenizer::encode(const std::string& text, int max_len, bool add_specials) const {
  return impl_->encode(text, max_len, add_specials);
}
std::vector<std::string> Tokenizer::pieces(const std::string& text) const { return impl_->pieces(text); }

std::string Tokenizer::decode(const std::vector<int>& ids, bool skip_specials) const {
  const int v = vocab_size();
  for (int id : ids)
    BRAID_INPUT_CHECK(id >= 0 && id < v, "{}: token id {} is outside the vocabulary (0..{})", path_, id, v - 1);
  return impl_->decode(ids, skip_specials);
}

int Tokenizer::piece_id(const std::string& piece) const { return impl_->piece_id(piece); }
std::string Tokenizer::piece(int id) const { return impl_->piece(id); }
int Tokenizer::vocab_size() const { return impl_->vocab_size(); }
int Tokenizer::pad_id() const { return impl_->pad; }
int Tokenizer::bos_id() const { return impl_->bos; }
int Tokenizer::eos_id() const { return impl_->eos; }
int Tokenizer::unk_id() const { return impl_->unk; }
std::string Tokenizer::kind() const { return impl_->kind(); }

}  // namespace braid::data
