// braid/core/tensorboard.h — TensorBoard event files, written and read without protobuf.
//
// An event file is a sequence of TFRecords:
//   uint64 length (little endian) | uint32 masked CRC32C of those 8 bytes | data | uint32 masked CRC32C of data
// with mask(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8. Each record's data is one serialized
// `tensorboard.Event` protobuf (tensorboard/compat/proto/event.proto), encoded here by hand:
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
//             SessionLog session_log = 7; }
//   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
//   SessionLog { enum status = 1; }   (START = 1)     SourceMetadata source_metadata = 10 { string writer = 1; }
// The first record of a file is Event{wall_time, file_version: "brain.Event:2", source_metadata{writer: "braid"}}.
//
// The writer knows nothing of file names: the caller passes the path (a run's event files are
// named by run/run_dir.h, in the form TensorBoard's directory loader globs: "*tfevents*").
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace braid::tb {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) and the TFRecord mask of it.
uint32_t crc32c(const void* data, size_t n);
uint32_t masked_crc32c(const void* data, size_t n);

// Seconds since the Unix epoch, with sub-second precision (what TensorBoard's wall_time holds).
double now_seconds();

// Appends events to a new event file. Every write is flushed to the kernel before returning,
// so a crash loses at most the record being written (a reader then reports it as truncated).
// Errors (cannot create the file, it exists already, a short write, a failed flush) throw
// std::runtime_error naming the file and the OS error: a write error is never ignored.
class EventWriter {
 public:
  // Creates `path` (which must not exist: an event file is never rewritten) and writes the
  // file_version event.
  explicit EventWriter(const std::string& path);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  // One Event at `step` holding one simple_value per (tag, value); values are stored as float.
  void add_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values,
                   double wall_time = now_seconds());
  void add_scalar(const std::string& tag, double value, int64_t step, double wall_time = now_seconds()) {
    add_scalars(step, {{tag, value}}, wall_time);
  }
  // SessionLog START at `step`: TensorBoard's reader then drops the data at steps >= `step` that
  // earlier files of the directory logged (what a resumed run writes again), as SummaryWriter's
  // `purge_step` does.
  void start_session(int64_t step, double wall_time = now_seconds());

  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& data);
  std::string path_;
  std::FILE* f_ = nullptr;
};

// One scalar of an event file.
struct Scalar {
  double wall_time = 0;
  int64_t step = 0;
  std::string tag;
  float value = 0;
};

// What read_events finds in an event file.
struct EventFile {
  std::string file_version;         // of the file_version event ("" when the file has none)
  double file_version_wall_time = 0;
  std::vector<Scalar> scalars;      // every simple_value, in file order
  std::vector<int64_t> session_starts;  // steps of SessionLog START events, in file order
  int64_t records = 0;              // records in the file
};

// Reads an event file, checking both CRCs of every record and decoding each Event with bounds
// checks. A truncated or corrupt record (or an undecodable Event) is an InputError naming the
// file, the record (1-based) and its byte offset. Values other than simple_value (images,
// histograms, tensors) are skipped.
EventFile read_events(const std::string& path);

}  // namespace braid::tb
