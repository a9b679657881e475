// fuzz/entries.cpp — see entries.h. One function per target; each feeds the bytes to the parser the way
// braid reads that kind of input (a file path or a memory buffer) and exercises what a caller does next
// (resize a decoded image, cut and resample a waveform, read every recipe key).
#include "entries.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>

#include <torch/types.h>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/safetensors.h"
#include "braid/data/audio.h"
#include "braid/data/image.h"
#include "braid/data/manifest.h"
#include "braid/data/npy.h"
#include "braid/data/series.h"
#include "braid/data/tokenizer.h"
#include "braid/nn/lm/chat.h"

namespace braid::fuzz {
namespace {

// A private folder for the files the path-based readers need (removed at exit).
const std::string& scratch() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/braid-fuzz-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("fuzz: mkdtemp failed");
    std::string d = tmpl;
    static struct Cleanup {
      std::string d;
      ~Cleanup() { remove_tree(d); }
    } cleanup{d};
    return d;
  }();
  return dir;
}

std::string put_file(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch() + "/" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  f.close();
  if (!f) throw std::runtime_error("fuzz: cannot write " + path);
  return path;
}

void check(bool ok, const std::string& what) {
  if (!ok) throw Finding(what);
}

// An InputError the entry expects and goes on after: still held to the one-line contract.
void one_line(const InputError& e) {
  check(std::strchr(e.what(), '\n') == nullptr, std::string("InputError of more than one line: ") + e.what());
}

void manifest(const uint8_t* d, size_t n) {
  auto m = data::Manifest::load(put_file("manifest.jsonl", d, n));
  // What the loader does next with each record (inline series become tensors; text views are looked up).
  for (const auto& s : m.samples()) {
    if (!s.series_inline.is_null()) {
      auto t = data::series_from_json(s.series_inline, s.where(m.path()));
      check(t.dim() == 2 && t.size(0) > 0, "series_from_json returned a tensor that is not [T>0, C]");
    }
    for (const auto& v : m.text_views()) (void)s.text_view(v);
  }
  (void)m.counts();
  (void)m.split_indices("train");
}

void image(const uint8_t* d, size_t n) {
  auto img = data::decode_image_memory(d, n, "fuzz.img");
  check(img.width > 0 && img.height > 0 && img.rgb.size() == size_t(img.width * img.height * 3),
        "decoded image size does not match its pixels");
  auto t = data::resize_image(img, 8, 8);
  check(t.dim() == 3 && t.size(0) == 3 && t.size(1) == 8 && t.size(2) == 8, "resize_image shape");
}

void audio(const uint8_t* d, size_t n) {
  auto w = data::decode_audio_memory(d, n, "fuzz.audio");
  check(!w.samples.empty() && w.sample_rate > 0, "decoded audio has no samples or no rate");
  data::AudioOptions opt;
  opt.max_seconds = 0.05;  // what the server does: cut before resampling, so the work stays bounded
  auto x = data::prepare_waveform(w, opt, "fuzz.audio");
  check(x.size() <= size_t(opt.sample_rate * opt.max_seconds) + 1, "prepare_waveform kept more than max_seconds");
}

void series_csv(const uint8_t* d, size_t n) {
  auto t = data::load_series_file(put_file("series.csv", d, n));
  check(t.dim() == 2 && t.size(0) > 0 && t.size(1) > 0, "CSV series is not [T>0, C>0]");
}

void npy(const uint8_t* d, size_t n) {
  const std::string path = put_file("series.npy", d, n);
  auto t = data::read_npy(path);
  check(uint64_t(t.numel()) * t.element_size() <= n, "read_npy returned more data than the file holds");
  try {
    auto s = data::load_series_file(path);
    check(s.dim() == 2, ".npy series is not 2-D");
  } catch (const InputError& e) {
    one_line(e);
  }
}

void recipe(const uint8_t* d, size_t n) {
  auto c = Config::from_string(std::string(reinterpret_cast<const char*>(d), n), "fuzz.yaml");
  // Read every key the ways recipes are read (16 levels deep); then the unknown-key check and dump.
  auto read_all = [](const Config& cfg, auto& self, int depth) -> void {
    for (const auto& k : cfg.keys()) {
      try { (void)cfg.get<int64_t>(k, 0); } catch (const InputError& e) { one_line(e); }
      try { (void)cfg.get<double>(k, 0.0); } catch (const InputError& e) { one_line(e); }
      try { (void)cfg.get<bool>(k, false); } catch (const InputError& e) { one_line(e); }
      try { (void)cfg.get<std::string>(k, ""); } catch (const InputError& e) { one_line(e); }
      try { (void)cfg.get<std::vector<std::string>>(k, {}); } catch (const InputError& e) { one_line(e); }
      try { (void)cfg.get<std::vector<double>>(k, {}); } catch (const InputError& e) { one_line(e); }
      if (depth < 16) {
        try {
          self(cfg.at(k), self, depth + 1);
        } catch (const InputError& e) {
          one_line(e);
        }
      }
    }
  };
  read_all(c, read_all, 0);
  (void)c.dump();
  c.check_all_used();
  c.set_path("fuzz.key", "[1, 2]");
}

void safetensors(const uint8_t* d, size_t n) {
  auto m = read_safetensors(put_file("t.safetensors", d, n));
  uint64_t total = 0;
  for (const auto& [name, t] : m) total += uint64_t(t.numel()) * t.element_size();
  check(total <= n, "read_safetensors returned more data than the file holds");
}

// One tiny sentencepiece model with the chat pieces, trained once per process.
const data::Tokenizer& tokenizer() {
  static const std::unique_ptr<data::Tokenizer> tok = [] {
    std::vector<std::string> lines;
    const char* base[] = {"a red heart on a white background", "the quick brown fox jumps over the lazy dog",
                          "caf\xc3\xa9 na\xc3\xafve \xe2\x9d\xa4 \xf0\x9f\x98\x80 smile", "what is in the picture",
                          "a cat, a dog; and 3 birds!", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e text"};
    for (int r = 0; r < 20; ++r)
      for (const char* b : base) lines.push_back(std::string(b) + " " + std::to_string(r));
    const std::string path = scratch() + "/tok.model";
    data::Tokenizer::train(lines, 96, path, nn::lm::chat_pieces());
    return std::make_unique<data::Tokenizer>(data::Tokenizer::load(path));
  }();
  return *tok;
}

void tokenizer_entry(const uint8_t* d, size_t n) {
  const auto& tok = tokenizer();
  const std::string text(reinterpret_cast<const char*>(d), n);
  const int max_len = n ? d[0] % 8 : 0;
  auto ids = tok.encode(text, max_len);
  check(max_len == 0 || int(ids.size()) <= max_len, "encode returned more than max_len ids");
  for (int id : ids) check(id >= 0 && id < tok.vocab_size(), "encode returned an id outside the vocabulary");
  (void)tok.decode(ids);
  (void)tok.pieces(text);
  // The bytes as ids (little-endian int16): unknown ids must be an InputError, never a crash.
  std::vector<int> raw;
  for (size_t i = 0; i + 1 < n && raw.size() < 64; i += 2) raw.push_back(int(int16_t(d[i] | (d[i + 1] << 8))));
  try {
    (void)tok.decode(raw);
  } catch (const InputError& e) {
    one_line(e);
  }
  for (int id : raw) (void)tok.piece(id);
}

void chat(const uint8_t* d, size_t n) {
  const auto& tok = tokenizer();
  nn::lm::ChatSpec spec;
  spec.user = tok.piece_id("<|user|>");
  spec.assistant = tok.piece_id("<|assistant|>");
  spec.slots["image"] = tok.piece_id("<image>");
  spec.slots["audio"] = tok.piece_id("<audio>");
  check(spec.defined(), "the fuzz tokenizer lacks the chat pieces");
  // Byte 0: modality and slot count; then prompt and answer text split at the first NUL.
  const uint8_t b = n ? d[0] : 0;
  const char* mods[] = {"", "image", "audio", "text"};
  const std::string modality = mods[b & 3];
  const int64_t slots = (b >> 2) & 7;
  const std::string rest(reinterpret_cast<const char*>(d) + (n ? 1 : 0), n ? n - 1 : 0);
  const size_t cut = rest.find('\0');
  const std::string prompt_text = rest.substr(0, cut);
  const std::string answer_text = cut == std::string::npos ? "" : rest.substr(cut + 1);
  auto widen = [](const std::vector<int>& v) { return std::vector<int64_t>(v.begin(), v.end()); };
  const auto prompt = widen(tok.encode(prompt_text));
  const auto answer = widen(tok.encode(answer_text, 32));
  const bool with_answer = (b & 0x80) != 0;
  auto e = nn::lm::render_chat(spec, modality, slots, prompt, with_answer ? &answer : nullptr);
  // The invariants the MLLM loss relies on.
  check(e.ids.size() == e.target.size(), "chat ids and targets differ in length");
  size_t targets = 0;
  for (auto t : e.target) targets += t;
  check(targets == (with_answer ? answer.size() + 1 : 0), "chat targets are not exactly the answer and <eos>");
  check(e.slot_start >= 0 && e.slot_start + e.slot_count <= int64_t(e.ids.size()), "chat slots out of range");
  for (int64_t i = e.slot_start; i < e.slot_start + e.slot_count; ++i)
    check(e.ids[size_t(i)] == spec.slots.at(modality), "chat slot position holds another id");
  std::vector<int> back;
  for (auto id : e.ids) {
    check(id >= 0 && id < tok.vocab_size(), "chat id outside the vocabulary");
    back.push_back(int(id));
  }
  (void)tok.decode(back);
}

using Fn = void (*)(const uint8_t*, size_t);
const std::map<std::string, Fn>& table() {
  static const std::map<std::string, Fn> t{
      {"manifest", manifest}, {"image", image},       {"audio", audio},
      {"series_csv", series_csv}, {"npy", npy},       {"recipe", recipe},
      {"safetensors", safetensors}, {"tokenizer", tokenizer_entry}, {"chat", chat}};
  return t;
}

}  // namespace

const std::vector<std::string>& target_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& [k, f] : table()) v.push_back(k);
    return v;
  }();
  return names;
}

bool run_entry(const std::string& target, const uint8_t* data, size_t size) {
  auto it = table().find(target);
  if (it == table().end()) throw std::invalid_argument("unknown fuzz target '" + target + "'");
  try {
    it->second(data, size);
    return true;
  } catch (const InputError& e) {
    one_line(e);  // the contract: one line
    return false;
  }
}

}  // namespace braid::fuzz
