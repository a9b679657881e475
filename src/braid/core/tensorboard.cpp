#include "braid/core/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "braid/core/error.h"

namespace braid::tb {

namespace {

// ---- CRC-32C ----

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

// ---- protobuf wire format (the subset Event needs) ----

enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_key(std::string& out, uint32_t field, Wire w) { put_varint(out, (uint64_t{field} << 3) | w); }
template <typename T>
void put_le(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
  out.append(b, sizeof(T));
}
void put_bytes(std::string& out, uint32_t field, const std::string& s) {
  put_key(out, field, kBytes);
  put_varint(out, s.size());
  out += s;
}

// Event header fields shared by every event: wall_time (1, double) and step (2, int64).
std::string event_head(double wall_time, int64_t step) {
  std::string e;
  put_key(e, 1, kFixed64);
  put_le<double>(e, wall_time);
  if (step != 0) {
    put_key(e, 2, kVarint);
    put_varint(e, static_cast<uint64_t>(step));  // int64: negatives as 10-byte two's complement
  }
  return e;
}

// A bounds-checked reader over one message's bytes; errors name the file and record.
struct Decoder {
  const unsigned char* p;
  const unsigned char* end;
  const std::string& where;  // "<file>: record N (byte B)"

  bool done() const { return p >= end; }
  [[noreturn]] void fail(const char* what) const { input_error("{}: malformed Event ({})", where, what); }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) fail("varint runs past the end");
      const unsigned char b = *p++;
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
    }
    fail("varint longer than 10 bytes");
  }
  template <typename T>
  T fixed() {
    if (static_cast<size_t>(end - p) < sizeof(T)) fail("fixed-size field runs past the end");
    T v;
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    return v;
  }
  Decoder sub() {
    const uint64_t n = varint();
    if (n > static_cast<uint64_t>(end - p)) fail("length-delimited field runs past the end");
    Decoder d{p, p + n, where};
    p += n;
    return d;
  }
  std::string bytes() {
    Decoder d = sub();
    return std::string(reinterpret_cast<const char*>(d.p), static_cast<size_t>(d.end - d.p));
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case kVarint: varint(); break;
      case kFixed64: fixed<uint64_t>(); break;
      case kBytes: sub(); break;
      case kFixed32: fixed<uint32_t>(); break;
      default: fail("unsupported wire type");
    }
  }
};

void decode_event(Decoder d, EventFile& out) {
  double wall_time = 0;
  int64_t step = 0;
  bool has_version = false, start = false;
  std::string version;
  std::vector<std::pair<std::string, float>> values;
  while (!d.done()) {
    const uint64_t key = d.varint();
    const uint32_t field = static_cast<uint32_t>(key >> 3), wire = static_cast<uint32_t>(key & 7);
    if (field == 1 && wire == kFixed64) {
      wall_time = d.fixed<double>();
    } else if (field == 2 && wire == kVarint) {
      step = static_cast<int64_t>(d.varint());
    } else if (field == 3 && wire == kBytes) {
      version = d.bytes();
      has_version = true;
    } else if (field == 5 && wire == kBytes) {  // Summary
      Decoder s = d.sub();
      while (!s.done()) {
        const uint64_t sk = s.varint();
        if (sk >> 3 != 1 || (sk & 7) != kBytes) {
          s.skip(static_cast<uint32_t>(sk & 7));
          continue;
        }
        Decoder v = s.sub();  // Summary.Value
        std::string tag;
        bool simple = false;
        float value = 0;
        while (!v.done()) {
          const uint64_t vk = v.varint();
          if (vk >> 3 == 1 && (vk & 7) == kBytes) {
            tag = v.bytes();
          } else if (vk >> 3 == 2 && (vk & 7) == kFixed32) {
            value = v.fixed<float>();
            simple = true;
          } else {
            v.skip(static_cast<uint32_t>(vk & 7));
          }
        }
        if (simple) values.emplace_back(std::move(tag), value);
      }
    } else if (field == 7 && wire == kBytes) {  // SessionLog
      Decoder s = d.sub();
      while (!s.done()) {
        const uint64_t sk = s.varint();
        if (sk >> 3 == 1 && (sk & 7) == kVarint) start = s.varint() == 1;
        else s.skip(static_cast<uint32_t>(sk & 7));
      }
    } else {
      d.skip(wire);
    }
  }
  if (has_version) {
    out.file_version = version;
    out.file_version_wall_time = wall_time;
  }
  if (start) out.session_starts.push_back(step);
  for (auto& [tag, value] : values) out.scalars.push_back({wall_time, step, std::move(tag), value});
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  const auto* b = static_cast<const unsigned char*>(data);
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ b[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---- writer ----

EventWriter::EventWriter(const std::string& path) : path_(path) {
  // O_EXCL: an existing event file is never rewritten
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    throw std::runtime_error(fmt::format("{}: cannot create the TensorBoard event file ({})", path, std::strerror(errno)));
  f_ = ::fdopen(fd, "wb");
  if (!f_) {
    const int err = errno;
    ::close(fd);
    throw std::runtime_error(fmt::format("{}: cannot open the TensorBoard event file ({})", path, std::strerror(err)));
  }
  std::string e = event_head(now_seconds(), 0);
  put_bytes(e, 3, "brain.Event:2");
  std::string source;  // SourceMetadata{writer}, as SummaryWriter names itself
  put_bytes(source, 1, "braid");
  put_bytes(e, 10, source);
  write_record(e);
}

EventWriter::~EventWriter() {
  if (f_) std::fclose(f_);  // every record was flushed already
}

void EventWriter::add_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values,
                              double wall_time) {
  if (values.empty()) return;
  std::string summary;
  for (const auto& [tag, v] : values) {
    std::string value;
    put_bytes(value, 1, tag);
    put_key(value, 2, kFixed32);
    put_le<float>(value, static_cast<float>(v));
    put_bytes(summary, 1, value);
  }
  std::string e = event_head(wall_time, step);
  put_bytes(e, 5, summary);
  write_record(e);
}

void EventWriter::start_session(int64_t step, double wall_time) {
  std::string log;
  put_key(log, 1, kVarint);
  put_varint(log, 1);  // SessionLog.START
  std::string e = event_head(wall_time, step);
  put_bytes(e, 7, log);
  write_record(e);
}

void EventWriter::write_record(const std::string& data) {
  std::string rec;
  rec.reserve(data.size() + 16);
  put_le<uint64_t>(rec, data.size());
  put_le<uint32_t>(rec, masked_crc32c(rec.data(), 8));
  rec += data;
  put_le<uint32_t>(rec, masked_crc32c(data.data(), data.size()));
  errno = 0;
  if (std::fwrite(rec.data(), 1, rec.size(), f_) != rec.size() || std::fflush(f_) != 0)
    throw std::runtime_error(fmt::format("{}: writing the TensorBoard event file failed ({}); turn it off with "
                                         "train.tensorboard: false", path_, errno ? std::strerror(errno) : "short write"));
}

// ---- reader ----

EventFile read_events(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BRAID_INPUT_CHECK(in.good(), "{}: cannot open the event file ({})", path, std::strerror(errno));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  BRAID_INPUT_CHECK(!in.bad(), "{}: cannot read the event file", path);
  EventFile out;
  const auto* base = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t pos = 0;
  while (pos < bytes.size()) {
    const int64_t index = out.records + 1;
    const std::string where = fmt::format("{}: record {} (byte {})", path, index, pos);
    const size_t left = bytes.size() - pos;
    BRAID_INPUT_CHECK(left >= 12, "{}: truncated record header ({} bytes, want 12)", where, left);
    uint64_t len;
    uint32_t len_crc;
    std::memcpy(&len, base + pos, 8);
    std::memcpy(&len_crc, base + pos + 8, 4);
    BRAID_INPUT_CHECK(len_crc == masked_crc32c(base + pos, 8),
                      "{}: length CRC mismatch (stored {:#010x}, computed {:#010x}): corrupt file", where, len_crc,
                      masked_crc32c(base + pos, 8));
    BRAID_INPUT_CHECK(len <= left - 12 && left - 12 - len >= 4,
                      "{}: truncated record (length {} plus 4 CRC bytes, {} bytes left)", where, len, left - 12);
    const unsigned char* data = base + pos + 12;
    uint32_t data_crc;
    std::memcpy(&data_crc, data + len, 4);
    BRAID_INPUT_CHECK(data_crc == masked_crc32c(data, len),
                      "{}: data CRC mismatch (stored {:#010x}, computed {:#010x}): corrupt file", where, data_crc,
                      masked_crc32c(data, len));
    decode_event(Decoder{data, data + len, where}, out);
    ++out.records;
    pos += 12 + len + 4;
  }
  return out;
}

}  // namespace braid::tb
