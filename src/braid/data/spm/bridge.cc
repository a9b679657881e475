// The sentencepiece bridge module; see bridge.h for why it is separate. Built as its own
// shared module (not part of braid_data), so it is a .cc file outside the layer's glob.
#include "braid/data/spm/bridge.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

char* dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

class Lines : public sentencepiece::SentenceIterator {
 public:
  Lines(const char* const* l, size_t n) : l_(l), n_(n) { load(); }
  bool done() const override { return i_ >= n_; }
  void Next() override {
    ++i_;
    load();
  }
  const std::string& value() const override { return cur_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void load() {
    if (i_ < n_) cur_ = l_[i_];
  }
  const char* const* l_;
  size_t n_, i_ = 0;
  std::string cur_;
};

}  // namespace

extern "C" {

int braid_spm_train(const char* args, const char* const* lines, size_t n, char** proto, size_t* proto_len, char** err) {
  *proto = nullptr;
  *err = nullptr;
  try {
    Lines it(lines, n);
    std::string out;
    // the trainer logs its whole command line to stderr before it reads --minloglevel: hide it
    std::fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    if (saved >= 0 && null >= 0) dup2(null, 2);
    auto st = sentencepiece::SentencePieceTrainer::Train(args, &it, &out);
    std::fflush(stderr);
    if (saved >= 0) dup2(saved, 2), close(saved);
    if (null >= 0) close(null);
    if (!st.ok()) {
      *err = dup(st.ToString());
      return 1;
    }
    *proto = static_cast<char*>(std::malloc(out.size() ? out.size() : 1));
    std::memcpy(*proto, out.data(), out.size());
    *proto_len = out.size();
    return 0;
  } catch (const std::exception& e) {
    *err = dup(e.what());
    return 1;
  }
}

void* braid_spm_load(const char* proto, size_t len, char** err) {
  *err = nullptr;
  auto* sp = new sentencepiece::SentencePieceProcessor();
  auto st = sp->LoadFromSerializedProto(std::string(proto, len));
  if (!st.ok()) {
    *err = dup(st.ToString());
    delete sp;
    return nullptr;
  }
  return sp;
}

void braid_spm_unload(void* h) { delete static_cast<sentencepiece::SentencePieceProcessor*>(h); }

int braid_spm_vocab_size(void* h) { return static_cast<sentencepiece::SentencePieceProcessor*>(h)->GetPieceSize(); }

int braid_spm_encode(void* h, const char* text, size_t len, int* ids, int cap) {
  std::vector<int> v;
  if (!static_cast<sentencepiece::SentencePieceProcessor*>(h)->Encode(std::string(text, len), &v).ok()) return -1;
  for (int i = 0; i < static_cast<int>(v.size()) && i < cap; ++i) ids[i] = v[i];
  return static_cast<int>(v.size());
}

char* braid_spm_pieces(void* h, const char* text, size_t len) {
  std::vector<std::string> v;
  if (!static_cast<sentencepiece::SentencePieceProcessor*>(h)->Encode(std::string(text, len), &v).ok()) return nullptr;
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "\n" : "") + v[i];
  return dup(s);
}

char* braid_spm_decode(void* h, const int* ids, size_t n, size_t* out_len) {
  std::string text;
  if (!static_cast<sentencepiece::SentencePieceProcessor*>(h)->Decode(std::vector<int>(ids, ids + n), &text).ok())
    return nullptr;
  if (out_len) *out_len = text.size();  // the text may hold NUL characters
  return dup(text);
}

int braid_spm_piece_to_id(void* h, const char* piece, size_t len) {
  auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(h);
  const std::string p(piece, len);
  int id = sp->PieceToId(p);
  return sp->IdToPiece(id) == p ? id : -1;
}

char* braid_spm_id_to_piece(void* h, int id) {
  auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(h);
  if (id < 0 || id >= sp->GetPieceSize()) return nullptr;
  return dup(sp->IdToPiece(id));
}

void braid_spm_free(void* p) { std::free(p); }
}
