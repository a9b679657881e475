#include "braid/core/safetensors.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <set>

#include "braid/core/error.h"
#include "braid/core/fs.h"

namespace braid {

namespace {

struct DType {
  const char* name;
  torch::ScalarType type;
  size_t size;
};
const DType kTypes[] = {{"F32", torch::kFloat32, 4}, {"F64", torch::kFloat64, 8}, {"F16", torch::kFloat16, 2},
                        {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8}, {"I32", torch::kInt32, 4},
                        {"I16", torch::kInt16, 2}, {"I8", torch::kInt8, 1}, {"U8", torch::kUInt8, 1},
                        {"BOOL", torch::kBool, 1}};

const DType* by_name(const std::string& n) {
  for (const auto& t : kTypes)
    if (n == t.name) return &t;
  return nullptr;
}
const DType* by_type(torch::ScalarType s) {
  for (const auto& t : kTypes)
    if (s == t.type) return &t;
  return nullptr;
}

}  // namespace

TensorMap read_safetensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  BRAID_INPUT_CHECK(f.good(), "{}: cannot open tensor file", path);
  const uint64_t file_size = static_cast<uint64_t>(f.tellg());
  f.seekg(0);
  BRAID_INPUT_CHECK(file_size >= 8, "{}: not a safetensors file ({} bytes; expected an 8-byte header length first)",
                    path, file_size);
  unsigned char lenb[8];
  f.read(reinterpret_cast<char*>(lenb), 8);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | lenb[i];
  BRAID_INPUT_CHECK(hlen > 0 && hlen <= 100'000'000 && hlen <= file_size - 8,
                    "{}: safetensors header length {} does not fit the {}-byte file", path, hlen, file_size);
  std::string header(hlen, '\0');
  f.read(header.data(), static_cast<std::streamsize>(hlen));
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    input_error("{}: safetensors header is not valid JSON ({})", path, e.what());
  }
  BRAID_INPUT_CHECK(h.is_object(), "{}: safetensors header must be a JSON object", path);
  const uint64_t data_size = file_size - 8 - hlen;
  std::vector<char> data(data_size);
  f.read(data.data(), static_cast<std::streamsize>(data_size));
  BRAID_INPUT_CHECK(f.good() || data_size == 0, "{}: read error", path);
  TensorMap out;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const auto& e = it.value();
    const std::string& name = it.key();
    BRAID_INPUT_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"),
                      "{}: tensor '{}' needs dtype, shape and data_offsets", path, name);
    const DType* dt = e["dtype"].is_string() ? by_name(e["dtype"].get<std::string>()) : nullptr;
    BRAID_INPUT_CHECK(dt, "{}: tensor '{}' has unsupported dtype {}", path, name, e["dtype"].dump());
    std::vector<int64_t> shape;
    // Checked arithmetic: `span` (the product of the non-zero dims, in bytes) never wraps, so neither does
    // numel * itemsize nor the storage size torch computes, even for a zero-sized tensor with huge dims.
    uint64_t numel = 1, span = dt->size;
    constexpr uint64_t kMaxSpan = 1ULL << 62;
    BRAID_INPUT_CHECK(e["shape"].is_array() && e["shape"].size() <= 32,
                      "{}: tensor '{}': shape must be an array of at most 32 dims", path, name);
    for (const auto& d : e["shape"]) {
      BRAID_INPUT_CHECK(d.is_number_unsigned(), "{}: tensor '{}': shape entries must be non-negative integers", path,
                        name);
      const uint64_t v = d.get<uint64_t>();
      BRAID_INPUT_CHECK(v == 0 || span <= kMaxSpan / v, "{}: tensor '{}': shape too large (its byte size overflows)",
                        path, name);
      if (v) span *= v;
      numel *= v;
      shape.push_back(static_cast<int64_t>(v));
    }
    const uint64_t nbytes = numel * dt->size;  // <= span <= 2^62
    const auto& off = e["data_offsets"];
    BRAID_INPUT_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
                      "{}: tensor '{}': data_offsets must be [begin, end]", path, name);
    uint64_t b = off[0], en = off[1];
    BRAID_INPUT_CHECK(b <= en && en <= data_size, "{}: tensor '{}': data_offsets [{}, {}] outside the {}-byte data", path,
                      name, b, en, data_size);
    BRAID_INPUT_CHECK(en - b == nbytes, "{}: tensor '{}': {} bytes for shape [{}] of {} (expected {})", path, name,
                      en - b, fmt::join(shape, ", "), dt->name, nbytes);
    auto t = torch::empty(shape, torch::TensorOptions().dtype(dt->type));
    if (numel) std::memcpy(t.data_ptr(), data.data() + b, en - b);
    out[name] = t;
  }
  return out;
}

void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json h = nlohmann::json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::vector<torch::Tensor> parts;
  uint64_t off = 0;
  for (const auto& [name, t0] : tensors) {
    auto t = t0.detach().to(torch::kCPU).contiguous();
    const DType* dt = by_type(t.scalar_type());
    if (!dt) throw std::runtime_error(fmt::format("{}: tensor '{}' has a dtype safetensors cannot hold", path, name));
    uint64_t n = static_cast<uint64_t>(t.numel()) * dt->size;
    h[name] = {{"dtype", dt->name}, {"shape", t.sizes().vec()}, {"data_offsets", {off, off + n}}};
    off += n;
    parts.push_back(t);
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  atomic_write(path, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    uint64_t len = header.size();
    unsigned char lenb[8];
    for (int i = 0; i < 8; ++i) lenb[i] = static_cast<unsigned char>(len >> (8 * i));
    f.write(reinterpret_cast<const char*>(lenb), 8);
    f.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const auto& t : parts)
      f.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
    f.close();  // the last buffered bytes reach the file here: a full disk shows now, not after the rename
    if (!f) throw std::runtime_error(tmp + ": write failed");
  });
}

TensorMap module_tensors(const torch::nn::Module& m, const std::string& prefix) {
  TensorMap out;
  for (const auto& p : m.named_parameters()) out[prefix + p.key()] = p.value().detach().cpu();
  for (const auto& b : m.named_buffers()) out[prefix + b.key()] = b.value().detach().cpu();
  return out;
}

void load_module_tensors(torch::nn::Module& m, const TensorMap& tensors, const std::string& source,
                         const std::string& prefix) {
  std::set<std::string> used;
  auto load = [&](const std::string& key, torch::Tensor dst) {
    const std::string name = prefix + key;
    auto it = tensors.find(name);
    BRAID_INPUT_CHECK(it != tensors.end(), "{}: tensor '{}' is missing; the file does not match this model", source,
                      name);
    const auto& t = it->second;
    BRAID_INPUT_CHECK(t.sizes() == dst.sizes(), "{}: tensor '{}' has shape [{}], the model expects [{}]", source, name,
                      fmt::join(t.sizes(), ", "), fmt::join(dst.sizes(), ", "));
    BRAID_INPUT_CHECK(t.scalar_type() == dst.scalar_type(), "{}: tensor '{}' has dtype {}, the model expects {}", source,
                      name, c10::toString(t.scalar_type()), c10::toString(dst.scalar_type()));
    torch::NoGradGuard ng;
    dst.copy_(t);
    used.insert(name);
  };
  for (auto& p : m.named_parameters()) load(p.key(), p.value());
  for (auto& b : m.named_buffers()) load(b.key(), b.value());
  for (const auto& [name, t] : tensors)
    BRAID_INPUT_CHECK(used.count(name) || name.rfind(prefix, 0) != 0,
                      "{}: unknown tensor '{}'; the file does not match this model", source, name);
}

}  // namespace braid
