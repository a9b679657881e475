// NumPy .npy reader/writer. Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
//   "\x93NUMPY" major minor | header length (u16 for 1.0, u32 for 2.0/3.0) | Python dict literal | raw data.
#include "braid/data/npy.h"

#include <fmt/ranges.h>
#include <torch/torch.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <vector>

#include "braid/core/error.h"
#include "braid/core/fs.h"

namespace braid::data {
namespace {

constexpr uint64_t kMaxHeaderBytes = 1 << 20;  // numpy writes < 64 KiB; anything near 1 MiB is garbage

// Header text quoted in an error: control and non-ASCII bytes as \xHH, at most 40 characters, so the
// message stays one line whatever the file holds (found by fuzz_npy; fuzz/regressions/npy/).
std::string shown(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size() && out.size() < 40; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
    else out += fmt::format("\\x{:02x}", c);
  }
  return s.size() > 40 ? out + "..." : out;
}

struct DType {
  torch::ScalarType type;
  size_t itemsize;
};

// The little-endian / byte-order-free descr strings we read.
DType parse_descr(const std::string& d, const std::string& path) {
  BRAID_INPUT_CHECK(d.size() >= 3, "{}: unsupported npy dtype '{}'", path, shown(d));
  const char order = d[0];
  const std::string kind = d.substr(1);
  BRAID_INPUT_CHECK(order == '<' || order == '|' || order == '=' || order == '>',
                    "{}: unsupported npy dtype '{}'; expected e.g. '<f4'", path, shown(d));
  DType t;
  if (kind == "f4") t = {torch::kFloat32, 4};
  else if (kind == "f8") t = {torch::kFloat64, 8};
  else if (kind == "i2") t = {torch::kInt16, 2};
  else if (kind == "i4") t = {torch::kInt32, 4};
  else if (kind == "i8") t = {torch::kInt64, 8};
  else if (kind == "u1") t = {torch::kUInt8, 1};
  else if (kind == "i1") t = {torch::kInt8, 1};
  else if (kind == "b1") t = {torch::kBool, 1};
  else input_error("{}: unsupported npy dtype '{}'; expected one of <f4 <f8 <i2 <i4 <i8 |u1 |i1 |b1", path, shown(d));
  BRAID_INPUT_CHECK(order != '>' || t.itemsize == 1, "{}: big-endian npy dtype '{}'; expected little-endian ('<')",
                    path, shown(d));
  return t;
}

// A tiny parser for the dict literal numpy writes, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
class HeaderParser {
 public:
  HeaderParser(const std::string& s, const std::string& path) : s_(s), path_(path) {}

  void parse(std::string& descr, bool& fortran, std::vector<int64_t>& shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') {
        ++i_;
        break;
      }
      std::string key = string_lit();
      expect(':');
      skip_ws();
      if (key == "descr") {
        BRAID_INPUT_CHECK(peek() == '\'' || peek() == '"',
                          "{}: npy header 'descr' is not a simple dtype string (structured arrays are not supported)",
                          path_);
        descr = string_lit();
        have_descr = true;
      } else if (key == "fortran_order") {
        fortran = bool_lit();
        have_fortran = true;
      } else if (key == "shape") {
        shape = tuple_lit();
        have_shape = true;
      } else {
        fail("unexpected key '" + shown(key) + "'");
      }
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      expect('}');
      break;
    }
    BRAID_INPUT_CHECK(have_descr && have_fortran && have_shape,
                      "{}: bad npy header (expected the keys 'descr', 'fortran_order' and 'shape')", path_);
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    input_error("{}: bad npy header at byte {} ({})", path_, i_, what);
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string string_lit() {
    skip_ws();
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    const size_t end = s_.find(q, i_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = s_.substr(i_ + 1, end - i_ - 1);
    i_ = end + 1;
    return out;
  }
  bool bool_lit() {
    if (s_.compare(i_, 4, "True") == 0) return i_ += 4, true;
    if (s_.compare(i_, 5, "False") == 0) return i_ += 5, false;
    fail("expected True or False");
  }
  std::vector<int64_t> tuple_lit() {
    expect('(');
    std::vector<int64_t> dims;
    while (true) {
      skip_ws();
      if (peek() == ')') {
        ++i_;
        return dims;
      }
      if (peek() < '0' || peek() > '9') fail("expected a non-negative integer dimension");
      int64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) fail("dimension too large");
        v = v * 10 + (s_[i_++] - '0');
      }
      while (peek() == 'L') ++i_;  // Python 2 longs
      dims.push_back(v);
      if (dims.size() > 32) fail("more than 32 dimensions");
      skip_ws();
      if (peek() == ',') ++i_;
      else if (peek() != ')') fail("expected ',' or ')' in shape");
    }
  }

  const std::string& s_;
  const std::string& path_;
  size_t i_ = 0;
};

}  // namespace

torch::Tensor read_npy(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  BRAID_INPUT_CHECK(fs::is_regular_file(path, ec), "{}: no such .npy file", path);
  const uint64_t file_size = fs::file_size(path, ec);
  BRAID_INPUT_CHECK(!ec, "{}: cannot read file size ({})", path, ec.message());
  std::ifstream f(path, std::ios::binary);
  BRAID_INPUT_CHECK(f.good(), "{}: cannot open file ({})", path, std::strerror(errno));

  unsigned char pre[10] = {};
  BRAID_INPUT_CHECK(file_size >= 10, "{}: not a .npy file (only {} bytes; expected the \\x93NUMPY magic and a header)",
                    path, file_size);
  f.read(reinterpret_cast<char*>(pre), 8);
  BRAID_INPUT_CHECK(std::memcmp(pre, "\x93NUMPY", 6) == 0, "{}: not a .npy file (missing the \\x93NUMPY magic)", path);
  const int major = pre[6], minor = pre[7];
  BRAID_INPUT_CHECK((major == 1 || major == 2 || major == 3) && minor == 0,
                    "{}: unsupported .npy format version {}.{}; expected 1.0, 2.0 or 3.0", path, major, minor);
  uint64_t header_len = 0, prefix = 0;
  if (major == 1) {
    f.read(reinterpret_cast<char*>(pre + 8), 2);
    header_len = uint64_t(pre[8]) | (uint64_t(pre[9]) << 8);
    prefix = 10;
  } else {
    unsigned char l[4] = {};
    BRAID_INPUT_CHECK(file_size >= 12, "{}: truncated .npy header", path);
    f.read(reinterpret_cast<char*>(l), 4);
    header_len = uint64_t(l[0]) | (uint64_t(l[1]) << 8) | (uint64_t(l[2]) << 16) | (uint64_t(l[3]) << 24);
    prefix = 12;
  }
  BRAID_INPUT_CHECK(header_len <= kMaxHeaderBytes && prefix + header_len <= file_size,
                    "{}: .npy header claims {} bytes but the file has {} bytes after the preamble", path, header_len,
                    file_size - prefix);
  std::string header(header_len, '\0');
  f.read(header.data(), static_cast<std::streamsize>(header_len));
  BRAID_INPUT_CHECK(f.good(), "{}: cannot read the .npy header", path);

  std::string descr;
  bool fortran = false;
  std::vector<int64_t> shape;
  HeaderParser(header, path).parse(descr, fortran, shape);
  const DType dt = parse_descr(descr, path);

  // Element count with checked arithmetic: `span` (the product of the non-zero dims, in bytes) stays below
  // 2^62, so count * itemsize cannot wrap and neither can the storage size torch computes for a zero-sized
  // array with huge dims ((0, 2^40, 2^40) is a valid empty array; (0, 2^62, 2^62) is refused).
  constexpr uint64_t kMaxSpan = uint64_t(1) << 62;
  uint64_t count = 1, span = dt.itemsize;
  for (int64_t d : shape) {
    if (d != 0 && span > kMaxSpan / uint64_t(d))
      input_error("{}: .npy shape ({}) overflows (more than 2^62 bytes)", path, fmt::join(shape, ", "));
    if (d) span *= uint64_t(d);
    count *= uint64_t(d);
  }
  const uint64_t data_bytes = count * dt.itemsize;  // <= span
  const uint64_t have = file_size - prefix - header_len;
  BRAID_INPUT_CHECK(data_bytes <= have, "{}: .npy header claims {} data bytes ({} x {}) but the file holds only {}",
                    path, data_bytes, shown(descr), fmt::join(shape, "x"), have);
  int dims_above_one = 0;
  for (int64_t d : shape) dims_above_one += d > 1;
  // Fortran order only changes the layout when more than one dimension exceeds 1.
  BRAID_INPUT_CHECK(!fortran || dims_above_one <= 1, "{}: Fortran-ordered .npy array; expected C order (np.ascontiguousarray)",
                    path);

  auto t = torch::empty(shape, torch::TensorOptions().dtype(dt.type));
  if (data_bytes > 0) {
    f.read(reinterpret_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(data_bytes));
    BRAID_INPUT_CHECK(f.gcount() == static_cast<std::streamsize>(data_bytes), "{}: short read of .npy data", path);
  }
  if (dt.type == torch::kBool) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(t.data_ptr());
    for (uint64_t i = 0; i < count; ++i)
      BRAID_INPUT_CHECK(p[i] <= 1, "{}: bool .npy element {} has byte value {}; expected 0 or 1", path, i, int(p[i]));
  }
  return t;
}

void write_npy(const std::string& path, const torch::Tensor& tensor) {
  auto t = tensor.cpu().contiguous();
  std::string descr;
  switch (t.scalar_type()) {
    case torch::kFloat32: descr = "<f4"; break;
    case torch::kFloat64: descr = "<f8"; break;
    case torch::kInt16: descr = "<i2"; break;
    case torch::kInt32: descr = "<i4"; break;
    case torch::kInt64: descr = "<i8"; break;
    case torch::kUInt8: descr = "|u1"; break;
    case torch::kInt8: descr = "|i1"; break;
    case torch::kBool: descr = "|b1"; break;
    default: TORCH_CHECK(false, "write_npy: ", path, ": unsupported dtype ", t.scalar_type());
  }
  // "(3, 4)", "(3,)" for 1-D, "()" for 0-D
  std::string shape;
  for (int64_t i = 0; i < t.dim(); ++i) shape += (i ? ", " : "") + std::to_string(t.size(i));
  if (t.dim() == 1) shape += ",";
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  // Pad with spaces so that magic + length + header is a multiple of 64 bytes, ending in '\n'.
  const bool v2 = dict.size() + 11 + 64 > 65535;
  const size_t prefix = v2 ? 12 : 10;
  size_t total = prefix + dict.size() + 1;
  total = (total + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict.push_back('\n');

  std::string pre("\x93NUMPY", 6);
  pre.push_back(v2 ? 2 : 1);
  pre.push_back(0);
  const uint32_t hl = static_cast<uint32_t>(dict.size());
  pre.push_back(char(hl & 0xff));
  pre.push_back(char((hl >> 8) & 0xff));
  if (v2) {
    pre.push_back(char((hl >> 16) & 0xff));
    pre.push_back(char((hl >> 24) & 0xff));
  }
  const size_t nbytes = size_t(t.numel()) * t.element_size();
  atomic_write(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out.write(pre.data(), static_cast<std::streamsize>(pre.size()));
    out.write(dict.data(), static_cast<std::streamsize>(dict.size()));
    if (nbytes) out.write(reinterpret_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(nbytes));
    out.flush();
    TORCH_CHECK(out.good(), "write_npy: ", tmp, ": write failed");
  });
}

}  // namespace braid::data
