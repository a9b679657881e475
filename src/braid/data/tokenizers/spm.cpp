// braid/data/tokenizers/spm.cpp — the sentencepiece backend: training and loading through the
// separately loaded bridge module (spm/bridge.h).
#include "braid/data/tokenizers/backend.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/data/spm/bridge.h"

namespace braid::data::tok {

namespace {

// The bridge's functions, resolved once from the module.
struct Spm {
  decltype(&braid_spm_train) train;
  decltype(&braid_spm_load) load;
  decltype(&braid_spm_unload) unload;
  decltype(&braid_spm_vocab_size) vocab_size;
  decltype(&braid_spm_encode) encode;
  decltype(&braid_spm_pieces) pieces;
  decltype(&braid_spm_free) free;
  decltype(&braid_spm_decode) decode;
  decltype(&braid_spm_piece_to_id) piece_to_id;
  decltype(&braid_spm_id_to_piece) id_to_piece;
};

std::string exe_dir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : p.parent_path().string();
}

const Spm& spm() {
  static const Spm s = [] {
    const std::string name = "libbraid_spm.so";
    std::vector<std::string> tried = {exe_dir() + "/" + name, exe_dir() + "/../lib/" + name};
#ifdef BRAID_SPM_MODULE
    tried.push_back(BRAID_SPM_MODULE);
#endif
    void* h = nullptr;
    std::string err;
    for (const auto& p : tried) {
      if (!file_exists(p)) continue;
      // a fresh link-map namespace: the module gets its own libstdc++/protobuf view, nothing leaks either way
      h = dlmopen(LM_ID_NEWLM, p.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h) break;
      err = dlerror();
    }
    if (!h)
      throw std::runtime_error("cannot load the sentencepiece module " + name + " (looked beside the executable, in ../lib" +
                               std::string(" and the build tree") + (err.empty() ? "" : "; " + err) + ")");
    auto sym = [&](const char* n) {
      void* f = dlsym(h, n);
      if (!f) throw std::runtime_error(std::string("sentencepiece module lacks ") + n);
      return f;
    };
    Spm s;
    s.train = reinterpret_cast<decltype(s.train)>(sym("braid_spm_train"));
    s.load = reinterpret_cast<decltype(s.load)>(sym("braid_spm_load"));
    s.unload = reinterpret_cast<decltype(s.unload)>(sym("braid_spm_unload"));
    s.vocab_size = reinterpret_cast<decltype(s.vocab_size)>(sym("braid_spm_vocab_size"));
    s.encode = reinterpret_cast<decltype(s.encode)>(sym("braid_spm_encode"));
    s.pieces = reinterpret_cast<decltype(s.pieces)>(sym("braid_spm_pieces"));
    s.free = reinterpret_cast<decltype(s.free)>(sym("braid_spm_free"));
    s.decode = reinterpret_cast<decltype(s.decode)>(sym("braid_spm_decode"));
    s.piece_to_id = reinterpret_cast<decltype(s.piece_to_id)>(sym("braid_spm_piece_to_id"));
    s.id_to_piece = reinterpret_cast<decltype(s.id_to_piece)>(sym("braid_spm_id_to_piece"));
    return s;
  }();
  return s;
}

std::string take(char* p) {
  std::string s = p ? p : "";
  if (p) spm().free(p);
  return s;
}

bool try_train(const std::vector<const char*>& lines, const std::string& args, std::string& proto, std::string& err) {
  char *out = nullptr, *e = nullptr;
  size_t n = 0;
  int rc = spm().train(args.c_str(), lines.data(), lines.size(), &out, &n, &e);
  err = take(e);
  if (rc != 0) return false;
  proto.assign(out, n);
  spm().free(out);
  return true;
}

// Characters sentencepiece must keep as pieces: the most frequent ones covering 99.95% of all
// character occurrences (its character_coverage). A vocabulary smaller than that cannot train.
int required_chars(const std::vector<const char*>& lines) {
  std::map<uint32_t, int64_t> freq;
  int64_t total = 0;
  for (const char* l : lines)
    for (const unsigned char* p = reinterpret_cast<const unsigned char*>(l); *p;) {
      int n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : 4;
      uint32_t cp = *p++;
      for (int i = 1; i < n && *p; ++i) cp = (cp << 8) | *p++;
      if (cp != ' ') ++freq[cp], ++total;
    }
  std::vector<int64_t> counts;
  for (auto& kv : freq) counts.push_back(kv.second);
  std::sort(counts.rbegin(), counts.rend());
  int64_t acc = 0;
  int k = 0;
  while (k < static_cast<int>(counts.size()) && acc < 0.9995 * total) acc += counts[k++];
  return k;
}

}  // namespace

void train_sentencepiece(const std::vector<std::string>& lines, int vocab, const std::string& model_path,
                         const std::vector<std::string>& specials) {
  std::vector<const char*> clean;
  for (const auto& l : lines)
    if (!l.empty()) clean.push_back(l.c_str());
  BRAID_INPUT_CHECK(!clean.empty(), "tokenizer: the training corpus has no text");
  BRAID_INPUT_CHECK(vocab >= 8, "tokenizer: vocabulary size {} is too small (expected >= 8)", vocab);
  // every kept character needs a piece (plus 4 meta pieces): grow small vocabularies for large scripts (CJK)
  vocab = std::max(vocab, required_chars(clean) + 4 + static_cast<int>(specials.size()) + vocab / 4);
  std::string user_defined;
  for (const auto& sp : specials) {
    BRAID_INPUT_CHECK(!sp.empty() && sp.find_first_of(", \t\n") == std::string::npos,
                      "tokenizer: special token '{}' must be non-empty without commas or spaces", sp);
    user_defined += (user_defined.empty() ? "" : ",") + sp;
  }
  if (!user_defined.empty()) user_defined = " --user_defined_symbols=" + user_defined;
  auto args = [&](int v) {
    return "--model_type=unigram --vocab_size=" + std::to_string(v) +
           " --hard_vocab_limit=false --character_coverage=0.9995 --pad_id=0 --unk_id=1 --bos_id=2 --eos_id=3"
           " --num_threads=1 --minloglevel=2 --input_sentence_size=2000000 --shuffle_input_sentence=false" +
           user_defined;
  };
  std::string proto, err;
  bool ok = try_train(clean, args(vocab), proto, err);
  // tiny corpora cannot fill a large unigram vocabulary even with a soft limit: shrink it
  for (int v = vocab / 2; !ok && v >= 16; v /= 2) ok = try_train(clean, args(v), proto, err);
  BRAID_INPUT_CHECK(ok, "tokenizer: training failed: {}", err);
  atomic_write(model_path, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    f.write(proto.data(), static_cast<std::streamsize>(proto.size()));
    f.close();  // flushes: a full disk fails here, before the rename
    if (!f) throw std::runtime_error(tmp + ": write failed");
  });
}

namespace {

class SpmBackend final : public Backend {
 public:
  SpmBackend(void* h, std::string path) : h_(h), path_(std::move(path)) {
    // braid's own models keep 0/1/2/3 (pad/unk/bos/eos); others (unk 0, bos 1, eos 2 by default, or
    // set at training): the control pieces among the first ids
    const int v = vocab_size();
    for (int id = 0; id < std::min(v, 8); ++id) {
      const std::string p = piece(id);
      int* slot = p == "<pad>" ? &pad : p == "<unk>" ? &unk : p == "<s>" ? &bos : p == "</s>" ? &eos : nullptr;
      if (slot && *slot < 0) *slot = id;
    }
  }
  ~SpmBackend() override {
    if (h_) spm().unload(h_);
  }

  std::vector<int> encode(const std::string& text, int max_len, bool) const override {
    std::vector<int> ids(std::max<size_t>(16, text.size() + 4));
    int n = spm().encode(h_, text.data(), text.size(), ids.data(), static_cast<int>(ids.size()));
    if (n < 0) return {};
    if (n > static_cast<int>(ids.size())) {
      ids.resize(n);
      n = spm().encode(h_, text.data(), text.size(), ids.data(), n);
    }
    ids.resize(n);
    if (max_len > 0 && static_cast<int>(ids.size()) > max_len) ids.resize(max_len);
    return ids;
  }

  std::vector<std::string> pieces(const std::string& text) const override {
    std::string s = take(spm().pieces(h_, text.data(), text.size()));
    std::vector<std::string> out;
    size_t start = 0;
    while (!s.empty() && start <= s.size()) {
      size_t nl = s.find('\n', start);
      out.push_back(s.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
    return out;
  }

  std::string decode(const std::vector<int>& ids, bool skip_specials) const override {
    std::vector<int> keep;
    for (int id : ids)
      if (!skip_specials || (id != pad && id != bos && id != eos)) keep.push_back(id);
    size_t len = 0;
    char* p = spm().decode(h_, keep.data(), keep.size(), &len);
    BRAID_INPUT_CHECK(p != nullptr, "{}: cannot decode {} ids", path_, keep.size());
    std::string text(p, len);
    spm().free(p);
    return text;
  }

  int piece_id(const std::string& p) const override { return spm().piece_to_id(h_, p.data(), p.size()); }
  std::string piece(int id) const override { return take(spm().id_to_piece(h_, id)); }
  int vocab_size() const override { return spm().vocab_size(h_); }
  std::string kind() const override { return "sentencepiece"; }

 private:
  void* h_;
  std::string path_;
};

}  // namespace

std::unique_ptr<Backend> load_sentencepiece(const std::string& path) {
  std::string bytes = read_text_file(path);
  char* e = nullptr;
  void* h = spm().load(bytes.data(), bytes.size(), &e);
  std::string err = take(e);
  BRAID_INPUT_CHECK(h != nullptr, "{}: not a sentencepiece model ({})", path, err);
  return std::make_unique<SpmBackend>(h, path);
}

}  // namespace braid::data::tok
