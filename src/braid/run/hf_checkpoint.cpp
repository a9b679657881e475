#include "braid/run/hf_checkpoint.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <set>

#include "braid/core/error.h"
#include "braid/core/strings.h"
#include "braid/core/fs.h"

namespace braid::run {

namespace fs = std::filesystem;

namespace {

// Integer `*position_ids` buffers (arange rows that transformers saves with some models): not weights.
bool is_index_buffer(const std::string& name, const torch::Tensor& v) {
  return (v.scalar_type() == torch::kInt64 || v.scalar_type() == torch::kInt32) && ends_with(name, "position_ids");
}

// Every tensor of one safetensors file as fp32; other dtypes are refused naming the tensor.
void add_file(const std::string& file, TensorMap& out, std::map<std::string, std::string>& origin,
              std::vector<std::string>& skipped) {
  TensorMap t = read_safetensors(file);
  for (auto& [name, v] : t) {
    const auto st = v.scalar_type();
    if (is_index_buffer(name, v)) {  // HF's integer position-id buffers: recomputed, not weights
      skipped.push_back(name);
      continue;
    }
    BRAID_INPUT_CHECK(st == torch::kFloat32 || st == torch::kFloat16 || st == torch::kBFloat16,
                      "{}: tensor '{}' is {}; braid imports F32, F16 or BF16 weights only (quantized or "
                      "double-precision checkpoints are not supported)",
                      file, name, c10::toString(st));
    auto it = origin.find(name);
    BRAID_INPUT_CHECK(it == origin.end(), "{}: tensor '{}' is also in {}; a tensor must be in one file only", file, name,
                      it == origin.end() ? "" : it->second);
    origin[name] = file;
    out[name] = v.to(torch::kFloat32).contiguous();
  }
}

std::vector<std::string> files_with(const std::string& dir, const std::vector<std::string>& suffixes) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    const std::string n = e.path().filename().string();
    for (const auto& s : suffixes)
      if (ends_with(n, s)) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string shape_str(at::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

}  // namespace

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    input_error("{}: not valid JSON ({})", path, e.what());
  }
  return j;
}

nlohmann::json read_hf_config(const std::string& dir) {
  const std::string p = (fs::path(dir) / "config.json").string();
  BRAID_INPUT_CHECK(file_exists(p), "{}: no config.json in the checkpoint folder", dir);
  auto j = read_json_file(p);
  BRAID_INPUT_CHECK(j.is_object(), "{}: expected a JSON object", p);
  return j;
}

HfCheckpoint open_hf_checkpoint(const std::string& path) {
  HfCheckpoint ck;
  std::error_code ec;
  BRAID_INPUT_CHECK(fs::exists(path, ec), "{}: no such checkpoint folder or file", path);
  std::vector<std::string> files;
  std::map<std::string, std::string> origin;
  if (fs::is_directory(path, ec)) {
    ck.dir = path;
    ck.source = path;
    const std::string index = (fs::path(path) / "model.safetensors.index.json").string();
    const std::string single = (fs::path(path) / "model.safetensors").string();
    if (file_exists(index)) {
      auto j = read_json_file(index);
      BRAID_INPUT_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
                        "{}: expected a JSON object with a \"weight_map\" object (tensor -> shard file)", index);
      std::map<std::string, std::set<std::string>> by_shard;  // shard -> tensors it must hold
      for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
        BRAID_INPUT_CHECK(it.value().is_string(), "{}: weight_map['{}'] must be a file name", index, it.key());
        const std::string shard = it.value().get<std::string>();
        BRAID_INPUT_CHECK(!shard.empty() && shard.find('/') == std::string::npos && shard.find('\\') == std::string::npos &&
                              shard != "." && shard != "..",
                          "{}: weight_map['{}'] = '{}' must be a file name in the same folder", index, it.key(), shard);
        by_shard[shard].insert(it.key());
      }
      BRAID_INPUT_CHECK(!by_shard.empty(), "{}: weight_map is empty", index);
      for (const auto& [shard, names] : by_shard) {
        const std::string sp = (fs::path(path) / shard).string();
        BRAID_INPUT_CHECK(file_exists(sp), "{}: shard '{}' (holding e.g. '{}') is missing", index, shard, *names.begin());
      }
      for (const auto& [shard, names] : by_shard) {
        const std::string sp = (fs::path(path) / shard).string();
        TensorMap part;
        add_file(sp, part, origin, ck.skipped);
        for (const auto& n : names)
          BRAID_INPUT_CHECK(part.count(n), "{}: tensor '{}' is mapped to this shard by {} but is not in it", sp, n,
                            index);
        for (auto& [n, t] : part) {
          BRAID_INPUT_CHECK(names.count(n), "{}: tensor '{}' is in this shard but {} does not map it here", sp, n, index);
          ck.tensors[n] = std::move(t);
        }
        files.push_back(sp);
      }
    } else if (file_exists(single)) {
      add_file(single, ck.tensors, origin, ck.skipped);
      files.push_back(single);
    } else {
      auto st = files_with(path, {".safetensors"});
      if (st.size() == 1) {
        const std::string p = (fs::path(path) / st[0]).string();
        add_file(p, ck.tensors, origin, ck.skipped);
        files.push_back(p);
      } else if (st.size() > 1) {
        input_error("{}: {} .safetensors files ({}, ...) but no model.safetensors.index.json saying which tensor is where",
                    path, st.size(), st[0]);
      } else {
        auto pickles = files_with(path, {".bin", ".pt", ".pth", ".ckpt"});
        BRAID_INPUT_CHECK(pickles.empty(),
                          "{}: only {} (a pickle file, which braid does not read); convert it to model.safetensors "
                          "first (e.g. save_pretrained(..., safe_serialization=True))",
                          path, pickles.front());
        input_error("{}: no model.safetensors, model.safetensors.index.json or *.safetensors in the folder", path);
      }
    }
  } else {
    BRAID_INPUT_CHECK(ends_with(path, ".safetensors"),
                      "{}: expected a checkpoint folder or a .safetensors file (pickle .bin/.pt files are not read)",
                      path);
    ck.dir = fs::path(path).parent_path().string();
    if (ck.dir.empty()) ck.dir = ".";
    ck.source = path;
    add_file(path, ck.tensors, origin, ck.skipped);
    files.push_back(path);
  }
  const std::string cfg = (fs::path(ck.dir) / "config.json").string();
  if (file_exists(cfg)) {
    ck.config = read_json_file(cfg);
    BRAID_INPUT_CHECK(ck.config.is_object(), "{}: expected a JSON object", cfg);
    ck.config_path = cfg;
  } else {
    ck.config = nlohmann::json::object();
  }
  ck.weight_files = files;
  return ck;
}

void expect_tensors(const TensorMap& tensors, const ShapeTable& expected, const std::string& source,
                    const std::vector<std::string>& ignore) {
  for (const auto& [name, shape] : expected)
    BRAID_INPUT_CHECK(tensors.count(name), "{}: tensor '{}' (shape {}) is missing", source, name, shape_str(shape));
  const std::set<std::string> ign(ignore.begin(), ignore.end());
  for (const auto& [name, t] : tensors)
    BRAID_INPUT_CHECK(expected.count(name) || ign.count(name),
                      "{}: unexpected tensor '{}' (shape {}); this architecture has no such weight", source, name,
                      shape_str(t.sizes()));
  for (const auto& [name, shape] : expected) {
    const auto& t = tensors.at(name);
    BRAID_INPUT_CHECK(t.sizes() == at::IntArrayRef(shape), "{}: tensor '{}' has shape {}, expected {}", source, name,
                      shape_str(t.sizes()), shape_str(shape));
  }
}

TensorMap strip_prefix(const TensorMap& tensors, const std::string& prefix, bool keep_others) {
  TensorMap out;
  for (const auto& [n, t] : tensors) {
    if (n.rfind(prefix, 0) == 0)
      out[n.substr(prefix.size())] = t;
    else if (keep_others)
      out[n] = t;
  }
  return out;
}

int64_t json_int(const nlohmann::json& j, const std::string& key, const std::string& where) {
  BRAID_INPUT_CHECK(j.is_object() && j.contains(key), "{}: key \"{}\" is missing (expected an integer)", where, key);
  const auto& v = j[key];
  BRAID_INPUT_CHECK(v.is_number_integer(), "{}: key \"{}\" must be an integer, got {}", where, key, v.dump());
  return v.get<int64_t>();
}
int64_t json_int(const nlohmann::json& j, const std::string& key, int64_t fallback, const std::string& where) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  return json_int(j, key, where);
}
double json_float(const nlohmann::json& j, const std::string& key, double fallback, const std::string& where) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  const auto& v = j[key];
  BRAID_INPUT_CHECK(v.is_number(), "{}: key \"{}\" must be a number, got {}", where, key, v.dump());
  return v.get<double>();
}
std::string json_string(const nlohmann::json& j, const std::string& key, const std::string& fallback,
                        const std::string& where) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  const auto& v = j[key];
  BRAID_INPUT_CHECK(v.is_string(), "{}: key \"{}\" must be a string, got {}", where, key, v.dump());
  return v.get<std::string>();
}

static std::string cfg_where(const HfCheckpoint& ck) {
  return ck.config_path.empty() ? ck.source + " (no config.json)" : ck.config_path;
}
int64_t hf_int(const HfCheckpoint& ck, const std::string& key) { return json_int(ck.config, key, cfg_where(ck)); }
int64_t hf_int(const HfCheckpoint& ck, const std::string& key, int64_t fallback) {
  return json_int(ck.config, key, fallback, cfg_where(ck));
}
double hf_float(const HfCheckpoint& ck, const std::string& key, double fallback) {
  return json_float(ck.config, key, fallback, cfg_where(ck));
}
std::string hf_string(const HfCheckpoint& ck, const std::string& key, const std::string& fallback) {
  return json_string(ck.config, key, fallback, cfg_where(ck));
}

// SHA-256 (FIPS 180-4).
std::string file_sha256(const std::string& path) {
  static const uint32_t K[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
      0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
      0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  auto block = [&](const unsigned char* p) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = (uint32_t(p[4 * i]) << 24) | (uint32_t(p[4 * i + 1]) << 16) | (uint32_t(p[4 * i + 2]) << 8) | p[4 * i + 3];
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      uint32_t ch = (e & f) ^ (~e & g);
      uint32_t t1 = hh + S1 + ch + K[i] + w[i];
      uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
      uint32_t t2 = S0 + mj;
      hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  };
  std::ifstream f(path, std::ios::binary);
  BRAID_INPUT_CHECK(f.good(), "{}: cannot open file", path);
  std::array<unsigned char, 64> buf{};
  uint64_t total = 0;
  size_t n = 0;
  std::vector<char> chunk(1 << 16);
  while (f) {
    f.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const auto got = static_cast<size_t>(f.gcount());
    for (size_t i = 0; i < got; ++i) {
      buf[n++] = static_cast<unsigned char>(chunk[i]);
      if (n == 64) { block(buf.data()); n = 0; }
    }
    total += got;
  }
  // Padding: 0x80, zeros, then the bit length big-endian in the last 8 bytes.
  buf[n++] = 0x80;
  if (n > 56) {
    while (n < 64) buf[n++] = 0;
    block(buf.data());
    n = 0;
  }
  while (n < 56) buf[n++] = 0;
  const uint64_t bits = total * 8;
  for (int i = 7; i >= 0; --i) buf[n++] = static_cast<unsigned char>(bits >> (8 * i));
  block(buf.data());
  std::string out;
  for (uint32_t v : h) out += fmt::format("{:08x}", v);
  return out;
}

}  // namespace braid::run
