// braid/serve/server.cpp — HTTP routes, request parsing and error mapping of `braid serve`.
#include "braid/serve/server.h"
#include "braid/serve/slots.h"

#include <ATen/Parallel.h>
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <omp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "braid/core/error.h"
#include "braid/core/base64.h"
#include "braid/data/image.h"

namespace braid::serve {

using nlohmann::json;

namespace {

// Invalid UTF-8 in an echoed string (a file name, a text query) is replaced by U+FFFD, never a 500.
void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// A count parameter: decimal digits only (no sign, exponent, fraction or trailing text), at most 9 digits.
int64_t parse_count(const std::string& s, const char* what) {
  BRAID_INPUT_CHECK(!s.empty() && s.size() <= 9 && std::all_of(s.begin(), s.end(), [](unsigned char c) {
                      return c >= '0' && c <= '9';
                    }),
                    "{} must be a positive integer, got '{}'", what, s.substr(0, 32));
  return std::stoll(s);
}


void send_error(httplib::Response& res, int status, const std::string& msg) {
  send_json(res, status, {{"error", msg}});
}

// Request threads preprocess with one intra-op thread each: the forward (batcher) uses the cores.
void single_threaded_worker() {
  thread_local bool done = false;
  if (done) return;
  at::internal::lazy_init_num_threads();
  omp_set_num_threads(1);
  done = true;
}

std::string content_type_of(const std::string& path) {
  auto dot = path.find_last_of('.');
  std::string ext = dot == std::string::npos ? "" : path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == "png") return "image/png";
  if (ext == "jpg" || ext == "jpeg") return "image/jpeg";
  if (ext == "bmp") return "image/bmp";
  if (ext == "wav") return "audio/wav";
  if (ext == "flac") return "audio/flac";
  if (ext == "ogg") return "audio/ogg";
  return "application/octet-stream";
}

// The host part of a Host or Origin value: "[::1]:8080" -> "[::1]", "http://a.b:80" -> "a.b".
std::string host_of(std::string v) {
  auto scheme = v.find("://");
  if (scheme != std::string::npos) v = v.substr(scheme + 3);
  if (!v.empty() && v[0] == '[') {
    auto close = v.find(']');
    return close == std::string::npos ? v : v.substr(0, close + 1);
  }
  auto colon = v.find(':');
  if (colon != std::string::npos) v = v.substr(0, colon);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  return v;
}


// ---- Connections under limits -------------------------------------------------------------------
// cpp-httplib 0.11.4 (Debian) reads a request line or header line of any length before checking it,
// has no header count limit, no total deadline (one byte every few seconds holds a thread forever),
// ignores the body limit for chunked bodies and inflates gzip/brotli bodies without a bound. Its
// per-connection loop (process_and_close_socket, a virtual) is replaced here: the request parser
// (process_request) reads through ConnStream, which enforces a byte budget per phase (head, body)
// and deadlines; the thread pool is bounded and answers 503 when full.

using Clock = std::chrono::steady_clock;

Clock::duration seconds_of(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(std::max(0.0, s)));
}

// A request that cannot get a resource in time (a decode slot): 503.
struct Busy : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The state of one connection, shared by its stream and (through tl_conn) the handlers on its thread.
struct Conn {
  int fd = -1;
  bool head = true;       // reading the request line and headers (else the body)
  bool chunked = false;   // body phase: a chunked body (over the budget = 413)
  size_t budget = 0;      // bytes this phase may still read
  int lines = 0;          // head lines read
  Clock::time_point start, deadline, write_deadline;
  bool head_overflow = false, body_overflow = false, timed_out = false, close_after = false;
  int refuse_status = 0;  // set before routing: answer this instead (with refuse_msg)
  std::string refuse_msg;
  size_t reserved = 0;    // body bytes reserved from the server-wide budget
  size_t written = 0;     // response bytes written for the current request
  char buf[8192];
  size_t pos = 0, len = 0;
};
thread_local Conn* tl_conn = nullptr;
thread_local bool tl_overloaded = false;  // set by ConnectionPool when a connection must get 503 at once

bool send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// A complete response written straight to the socket (when the parser could not answer itself).
std::string canned(int status, const char* reason, const std::string& msg) {
  const std::string body = json{{"error", msg}}.dump();
  return fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                     status, reason, body.size(), body);
}

class HttpServer;

class ConnStream : public httplib::Stream {
 public:
  ConnStream(Conn& c, const HttpServer& s) : c_(c), s_(s) {}
  bool is_readable() const override {
    pollfd p{c_.fd, POLLIN, 0};
    return c_.pos < c_.len || ::poll(&p, 1, 0) > 0;
  }
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(false, ip, port); }
  socket_t socket() const override { return c_.fd; }

 private:
  void address(bool peer, std::string& ip, int& port) const {
    sockaddr_storage a{};
    socklen_t n = sizeof a;
    const int rc = peer ? ::getpeername(c_.fd, reinterpret_cast<sockaddr*>(&a), &n)
                        : ::getsockname(c_.fd, reinterpret_cast<sockaddr*>(&a), &n);
    if (rc != 0) return;
    char text[INET6_ADDRSTRLEN] = {0};
    if (a.ss_family == AF_INET) {
      auto* v4 = reinterpret_cast<sockaddr_in*>(&a);
      ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
      port = ntohs(v4->sin_port);
    } else if (a.ss_family == AF_INET6) {
      auto* v6 = reinterpret_cast<sockaddr_in6*>(&a);
      ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
      port = ntohs(v6->sin6_port);
    }
    ip = text;
  }
  // Wait until fd is ready for `events` before `limit`; false (and timed_out) when it is not.
  bool wait(short events, Clock::time_point limit) const;

  Conn& c_;
  const HttpServer& s_;
};

class HttpServer : public httplib::Server {
 public:
  explicit HttpServer(const ServerOptions& o) : opt_(o) {}

  // Stop accepting: close the listening socket (safe before listening and more than once). Requests
  // in flight get `drain_s`; after that every read and write fails and the connections close.
  void begin_stop() {
    if (!stopping_.exchange(true))
      hard_deadline_.store((Clock::now() + seconds_of(opt_.drain_s)).time_since_epoch().count());
    socket_t s = svr_sock_.exchange(INVALID_SOCKET);
    if (s != INVALID_SOCKET) {
      ::shutdown(s, SHUT_RDWR);
      ::close(s);
    }
  }
  bool stopping() const { return stopping_.load(); }
  // The library listens with a backlog of 5: a burst of connections (or a few slow ones arriving while
  // the accepting thread starts workers) overflows it and clients wait 1 s for SYN retries.
  void widen_backlog() {
    socket_t s = svr_sock_.load();
    if (s != INVALID_SOCKET) ::listen(s, 1024);
  }
  // The latest a socket operation may wait until (the drain deadline once stopping).
  Clock::time_point cap(Clock::time_point t) const {
    if (!stopping_.load()) return t;
    return std::min(t, Clock::time_point(Clock::duration(hard_deadline_.load())));
  }
  const ServerOptions& opt() const { return opt_; }

 private:
  bool process_and_close_socket(socket_t sock) override;
  // After the headers, before routing: body budget, refusals (compressed, unknown transfer coding, busy).
  void setup(Conn& c, httplib::Request& req);
  // Wait for the next request on a kept-alive connection; false: idle too long, stopping or closed.
  bool wait_request(Conn& c) const;

  ServerOptions opt_;
  std::atomic<bool> stopping_{false};
  std::atomic<Clock::rep> hard_deadline_{0};
  std::atomic<size_t> bodies_{0};  // body bytes reserved by requests in flight
};

bool ConnStream::wait(short events, Clock::time_point limit) const {
  for (;;) {
    if (events == POLLIN && c_.head && s_.stopping()) {  // a request not yet read is not in flight: drop it
      c_.timed_out = true;
      return false;
    }
    const auto now = Clock::now();
    const auto until = s_.cap(limit);
    if (now >= until) {
      c_.timed_out = true;
      return false;
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1;
    pollfd p{c_.fd, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 100)));  // wake to see a stop
    if (r < 0 && errno != EINTR) return false;
    if (r > 0) return (p.revents & (events | POLLHUP | POLLERR)) != 0;
  }
}

bool ConnStream::is_writable() const {
  const auto now = Clock::now();
  return s_.cap(now + std::chrono::seconds(1)) > now && (c_.write_deadline == Clock::time_point{} || now < c_.write_deadline);
}

ssize_t ConnStream::read(char* ptr, size_t size) {
  if (c_.budget == 0) {
    if (c_.head) {
      c_.head_overflow = true;
      return -1;
    }
    if (c_.chunked) {
      c_.body_overflow = true;
      return -1;
    }
    return 0;  // the body (Content-Length, or none) is complete
  }
  if (c_.pos == c_.len) {
    const auto limit = std::min(c_.deadline, Clock::now() + seconds_of(s_.opt().io_timeout_s));
    for (;;) {
      if (!wait(POLLIN, limit)) return -1;
      ssize_t n = ::recv(c_.fd, c_.buf, sizeof c_.buf, 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) return n;
      c_.pos = 0;
      c_.len = static_cast<size_t>(n);
      break;
    }
  }
  const size_t n = std::min({size, c_.len - c_.pos, c_.budget});
  std::memcpy(ptr, c_.buf + c_.pos, n);
  c_.pos += n;
  c_.budget -= n;
  if (c_.head) {
    c_.lines += static_cast<int>(std::count(ptr, ptr + n, '\n'));
    if (c_.lines > s_.opt().max_headers + 2) {  // + the request line and the blank line
      c_.head_overflow = true;
      return -1;
    }
  }
  return static_cast<ssize_t>(n);
}

ssize_t ConnStream::write(const char* ptr, size_t size) {
  const auto now = Clock::now();
  if (c_.write_deadline == Clock::time_point{}) c_.write_deadline = now + seconds_of(s_.opt().request_timeout_s);
  const auto limit = std::min(c_.write_deadline, now + seconds_of(s_.opt().io_timeout_s));
  for (;;) {
    if (!wait(POLLOUT, limit)) return -1;
    ssize_t n = ::send(c_.fd, ptr, size, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n > 0) c_.written += static_cast<size_t>(n);
    return n;
  }
}

bool HttpServer::wait_request(Conn& c) const {
  if (c.pos < c.len) return !stopping_.load();  // a pipelined request is waiting
  const auto until = Clock::now() + seconds_of(opt_.idle_timeout_s);
  while (!stopping_.load()) {
    const auto now = Clock::now();
    if (now >= until) return false;
    pollfd p{c.fd, POLLIN, 0};
    const int r = ::poll(&p, 1, 100);
    if (r < 0 && errno != EINTR) return false;
    if (r > 0) return true;
  }
  return false;
}

void HttpServer::setup(Conn& c, httplib::Request& req) {
  c.head = false;
  c.budget = 0;  // no body unless one is announced
  c.deadline = c.start + seconds_of(opt_.request_timeout_s);
  if (req.ranges.size() > 1) req.ranges.clear();  // many ranges multiply a response: serve it whole (200)
  const std::string te = req.get_header_value("Transfer-Encoding");
  const std::string ce = req.get_header_value("Content-Encoding");
  const bool has_length = req.has_header("Content-Length");
  size_t need = 0;
  if (!te.empty()) {
    if (strcasecmp(te.c_str(), "chunked") != 0 || has_length) {
      c.refuse_status = 501;
      c.refuse_msg = "Transfer-Encoding '" + te.substr(0, 64) + "' is not accepted (only chunked, without Content-Length)";
    }
    c.chunked = true;
    need = opt_.max_body;
    c.budget = opt_.max_body + opt_.max_body / 8 + 4096;  // + chunk framing
  } else if (has_length) {
    const std::string v = req.get_header_value("Content-Length");
    const bool digits = !v.empty() && v.size() <= 18 && std::all_of(v.begin(), v.end(), [](unsigned char ch) {
      return ch >= '0' && ch <= '9';
    });
    const unsigned long long len = digits ? std::stoull(v) : ~0ull;
    if (!digits) {
      c.refuse_status = 400;
      c.refuse_msg = "Content-Length '" + v.substr(0, 32) + "' is not a number";
    } else if (len > opt_.max_body) {
      c.close_after = true;  // 413 from the parser, without reading the body
    } else {
      need = c.budget = static_cast<size_t>(len);
    }
  }
  if (!ce.empty() && strcasecmp(ce.c_str(), "identity") != 0 && !c.refuse_status) {
    c.refuse_status = 415;
    c.refuse_msg = "compressed request bodies are not accepted (Content-Encoding: " + ce.substr(0, 32) + ")";
  }
  if (need && !c.refuse_status) {
    if (bodies_.fetch_add(need) + need > opt_.max_body_total) {
      bodies_.fetch_sub(need);
      c.refuse_status = 503;
      c.refuse_msg = "server busy: too many request bodies in flight; retry later";
    } else {
      c.reserved = need;
    }
  }
  if (c.refuse_status) {
    c.budget = 0;
    c.close_after = true;
  }
}

bool HttpServer::process_and_close_socket(socket_t sock) {
  struct Closer {
    int fd;
    bool linger = false;
    ~Closer() {
      ::shutdown(fd, SHUT_WR);
      if (linger) {  // read what the client still sends for a moment, so that it sees our answer, not a reset
        const auto until = Clock::now() + std::chrono::milliseconds(500);
        char sink[4096];
        while (Clock::now() < until) {
          pollfd p{fd, POLLIN, 0};
          if (::poll(&p, 1, 50) > 0 && ::recv(fd, sink, sizeof sink, 0) <= 0) break;
        }
      }
      ::close(fd);
    }
  } closer{sock};
  if (tl_overloaded) {  // on the accepting thread: answer at once, never wait on this client
    send_all(sock, canned(503, "Service Unavailable",
                          fmt::format("server busy: {} connections open; retry later", opt_.max_connections)));
    char sink[4096];
    while (::recv(sock, sink, sizeof sink, MSG_DONTWAIT) > 0) {
    }
    return false;
  }
  Conn c;
  c.fd = sock;
  tl_conn = &c;
  ConnStream strm(c, *this);
  bool ret = false;
  for (int left = 100; left > 0 && wait_request(c); --left) {
    c.head = true;
    c.chunked = false;
    c.budget = opt_.max_header_bytes;
    c.lines = 0;
    c.start = Clock::now();
    c.deadline = c.start + seconds_of(opt_.header_timeout_s);
    c.write_deadline = {};
    c.head_overflow = c.body_overflow = c.timed_out = c.close_after = false;
    c.refuse_status = 0;
    c.written = 0;
    bool closed = false;
    ret = process_request(strm, left == 1 || stopping_.load(), closed,
                          [this, &c](httplib::Request& req) { setup(c, req); });
    if (c.reserved) {
      bodies_.fetch_sub(c.reserved);
      c.reserved = 0;
    }
    if (c.written == 0 && (c.head_overflow || c.timed_out)) {  // the parser gave up before answering
      send_all(sock, c.head_overflow ? canned(431, "Request Header Fields Too Large", "request line or headers over the limit")
                                     : canned(408, "Request Timeout", "request not received in time"));
    }
    if (c.close_after || c.body_overflow || c.head_overflow || c.timed_out) closer.linger = true;
    if (!ret || closed || closer.linger || stopping_.load()) break;
  }
  tl_conn = nullptr;
  return ret;
}

// Threads start on demand up to `max` connections at once (queued or served); one more is answered
// 503 on the accepting thread (tl_overloaded) instead of waiting in an unbounded queue. Threads are
// never fewer than the connections in hand, so a queued connection always has a thread coming.
class ConnectionPool : public httplib::TaskQueue {
 public:
  ConnectionPool(size_t start, size_t max) : max_(std::max<size_t>(1, max)) {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < std::min(start, max_); ++i) spawn();
  }
  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!shutdown_ && active_ < max_) {
        ++active_;
        jobs_.push_back(std::move(fn));
        if (threads_.size() < active_) spawn();
        cv_.notify_one();
        return;
      }
    }
    tl_overloaded = true;
    fn();
    tl_overloaded = false;
  }
  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      shutdown_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void spawn() {  // under mu_
    threads_.emplace_back([this] {
      for (;;) {
        std::function<void()> fn;
        {
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait(lock, [&] { return shutdown_ || !jobs_.empty(); });
          if (jobs_.empty()) return;
          fn = std::move(jobs_.front());
          jobs_.pop_front();
        }
        try {
          fn();
        } catch (...) {  // a connection's failure (bad_alloc) must not end the server
        }
        std::lock_guard<std::mutex> lock(mu_);
        --active_;
      }
    });
  }
  const size_t max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  size_t active_ = 0;  // connections queued or being served
  bool shutdown_ = false;
};

}  // namespace

struct Server::Impl {
  Embedder* e;                       // null (with index and batcher): a generative run served without an index
  const VectorIndex* index;
  std::string run_dir;               // the run directory (/api/health)
  ServerOptions opt;
  std::unique_ptr<Batcher> batcher;
  HttpServer http;
  int port = -1;
  Slots decodes;      // image/audio decodes running (at most opt.max_decodes)
  Slots generating;   // /api/generate answers and drawings being computed (at most max_generations(opt))
  std::atomic<int64_t> generations{0};  // answers streamed by /api/generate
  std::atomic<int64_t> drawings{0};     // requests answered with images by /api/generate

  Impl(Embedder* em, const VectorIndex* ix, std::string dir, const ServerOptions& o)
      : e(em),
        index(ix),
        run_dir(std::move(dir)),
        opt(o),
        batcher(em ? std::make_unique<Batcher>(*em, o.batch) : nullptr),
        http(o),
        decodes(o.max_decodes),
        generating(max_generations(o)) {}

  // A slot of `slots` (decodes or generations), or Busy (503) when none frees up within wait_s.
  Slots::Hold take(Slots& slots, double wait_s, const char* what) {
    auto h = slots.hold(http.cap(Clock::now() + seconds_of(wait_s)));
    if (!h)
      throw Busy(fmt::format("server busy: {} {} running and none finished within {} s; retry later", slots.held(),
                             what, wait_s));
    return h;
  }
  Slots::Hold decode_slot() { return take(decodes, opt.decode_wait_s, "image/audio decodes"); }
  Slots::Hold generation_slot() { return take(generating, opt.generate_wait_s, "generations"); }

  // The query of a request: JSON {"text": ...} (or {"modality": "text", ...}), or a multipart upload
  // with a file field "image" / "audio" (or "file" + a "modality" field), or a "text" field.
  Query parse_query(const httplib::Request& req, int64_t* k) {
    Query q;
    if (req.is_multipart_form_data()) {
      for (const char* f : {"image", "audio"}) {
        if (req.has_file(f)) {
          auto file = req.get_file_value(f);
          q = {f, file.content, file.filename.empty() ? std::string("upload") : file.filename};
          break;
        }
      }
      if (q.modality.empty() && req.has_file("file")) {
        auto file = req.get_file_value("file");
        std::string mod = req.has_file("modality") ? req.get_file_value("modality").content : "";
        BRAID_INPUT_CHECK(!mod.empty(), "multipart field 'file' needs a 'modality' field (image or audio)");
        q = {mod, file.content, file.filename.empty() ? std::string("upload") : file.filename};
      }
      if (q.modality.empty() && req.has_file("text")) q = {"text", req.get_file_value("text").content, "text query"};
      BRAID_INPUT_CHECK(!q.modality.empty(), "multipart upload needs a field 'image', 'audio' or 'text'");
      if (req.has_file("k")) *k = parse_count(req.get_file_value("k").content, "field 'k'");
    } else {
      json j;
      try {
        j = json::parse(req.body);
      } catch (const json::exception&) {
        input_error("request body is not JSON; expected {{\"text\": \"...\"}} or a multipart upload (image, audio)");
      }
      BRAID_INPUT_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(),
                        "expected a JSON object with a string field 'text' (or a multipart upload for image/audio)");
      q = {"text", j["text"].get<std::string>(), "text query"};
      if (j.contains("k")) {
        BRAID_INPUT_CHECK(j["k"].is_number_integer(), "field 'k' must be an integer");
        *k = j["k"].get<int64_t>();
      }
    }
    if (req.has_param("k")) *k = parse_count(req.get_param_value("k"), "parameter 'k'");
    BRAID_INPUT_CHECK(*k >= 1 && *k <= opt.max_k, "k = {}: expected 1..{}", *k, opt.max_k);
    BRAID_INPUT_CHECK(e->embeds(q.modality), "this run does not embed '{}' (it embeds {})", q.modality,
                      fmt::format("{}", fmt::join(e->modalities(), ", ")));
    return q;
  }

  // POST /api/generate: the request as a run::GenerateRequest (input, prompt, task, sampling).
  run::GenerateRequest parse_generate(const httplib::Request& req) {
    run::GenerateRequest r;
    auto& o = r.options;
    auto number = [](const std::string& s, const char* what) {
      try {
        size_t used = 0;
        const double v = std::stod(s, &used);
        if (used == s.size() && std::isfinite(v)) return v;
      } catch (const std::exception&) {
      }
      input_error("{}: expected a number, got '{}'", what, s.substr(0, 32));
    };
    if (req.is_multipart_form_data()) {
      for (const char* f : {"image", "audio"})
        if (req.has_file(f)) {
          auto file = req.get_file_value(f);
          r.input = {f, file.content, file.filename.empty() ? std::string("upload") : file.filename};
          break;
        }
      auto field = [&](const char* k) { return req.has_file(k) ? req.get_file_value(k).content : std::string(); };
      r.prompt = field("prompt");
      r.task = field("task");
      if (req.has_file("max_tokens")) o.max_tokens = parse_count(field("max_tokens"), "field 'max_tokens'");
      if (req.has_file("top_k")) o.sample.top_k = parse_count(field("top_k"), "field 'top_k'");
      if (req.has_file("seed")) o.seed = static_cast<uint64_t>(parse_count(field("seed"), "field 'seed'"));
      if (req.has_file("temperature")) o.sample.temperature = number(field("temperature"), "field 'temperature'");
      if (req.has_file("top_p")) o.sample.top_p = number(field("top_p"), "field 'top_p'");
    } else {
      json j;
      try {
        j = json::parse(req.body);
      } catch (const json::exception&) {
        input_error("request body is not JSON; expected {{\"prompt\": \"...\"}} or a multipart upload (image, audio)");
      }
      BRAID_INPUT_CHECK(j.is_object(), "expected a JSON object with a string field 'prompt'");
      auto str = [&](const char* k) {
        if (!j.contains(k)) return std::string();
        BRAID_INPUT_CHECK(j[k].is_string(), "field '{}' must be a string", k);
        return j[k].get<std::string>();
      };
      auto integer = [&](const char* k, int64_t def) {
        if (!j.contains(k)) return def;
        BRAID_INPUT_CHECK(j[k].is_number_integer(), "field '{}' must be an integer", k);
        return j[k].get<int64_t>();
      };
      auto real = [&](const char* k, double def) {
        if (!j.contains(k)) return def;
        BRAID_INPUT_CHECK(j[k].is_number(), "field '{}' must be a number", k);
        return j[k].get<double>();
      };
      r.prompt = str("prompt");
      r.task = str("task");
      o.max_tokens = integer("max_tokens", o.max_tokens);
      o.sample.top_k = integer("top_k", 0);
      o.seed = static_cast<uint64_t>(integer("seed", 0));
      o.sample.temperature = real("temperature", 0.0);
      o.sample.top_p = real("top_p", 1.0);
    }
    BRAID_INPUT_CHECK(o.max_tokens >= 1 && o.max_tokens <= opt.max_new_tokens, "max_tokens = {}: expected 1..{}",
                      o.max_tokens, opt.max_new_tokens);
    BRAID_INPUT_CHECK(o.sample.temperature >= 0 && o.sample.temperature <= 100, "temperature = {}: expected 0..100",
                      o.sample.temperature);
    BRAID_INPUT_CHECK(o.sample.top_k >= 0, "top_k = {}: expected >= 0", o.sample.top_k);
    BRAID_INPUT_CHECK(o.sample.top_p > 0 && o.sample.top_p <= 1, "top_p = {}: expected (0, 1]", o.sample.top_p);
    BRAID_INPUT_CHECK(!r.input.modality.empty() || !r.prompt.empty() || !r.task.empty(),
                      "nothing to answer: give a prompt, a task or an image / audio upload");
    return r;
  }

  // POST /api/generate on a drawing run: JSON {"text", "n", "guidance", "seed", "temperature", "top_k", "top_p"}.
  run::DrawRequest parse_draw(const json& j) {
    BRAID_INPUT_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(),
                      "this run draws images: expected a JSON object with a string field 'text', e.g. "
                      "{{\"text\": \"red heart\", \"n\": 4}} (or a multipart upload 'image' to name it)");
    for (const auto& [k, v] : j.items())
      BRAID_INPUT_CHECK(k == "text" || k == "n" || k == "guidance" || k == "seed" || k == "temperature" ||
                            k == "top_k" || k == "top_p",
                        "unknown field '{}'; a drawing request takes text, n, guidance, seed, temperature, top_k, top_p",
                        k.substr(0, 32));
    auto integer = [&](const char* k, int64_t def) {
      if (!j.contains(k)) return def;
      BRAID_INPUT_CHECK(j[k].is_number_integer(), "field '{}' must be an integer", k);
      BRAID_INPUT_CHECK(!j[k].is_number_unsigned() || j[k].get<uint64_t>() <= uint64_t(INT64_MAX),
                        "field '{}' is too large", k);
      return j[k].get<int64_t>();
    };
    auto real = [&](const char* k, double def) {
      if (!j.contains(k)) return def;
      BRAID_INPUT_CHECK(j[k].is_number(), "field '{}' must be a number", k);
      return j[k].get<double>();
    };
    run::DrawRequest d;
    d.text = text_prefix(j["text"].get<std::string>(), opt.generator->pipeline().pre->options().text.max_tokens);
    BRAID_INPUT_CHECK(!d.text.empty(), "field 'text' is empty; say what to draw, e.g. \"red heart\"");
    d.n = integer("n", 1);
    BRAID_INPUT_CHECK(d.n >= 1 && d.n <= opt.max_draw, "n = {}: expected 1..{}", d.n, opt.max_draw);
    d.guidance = real("guidance", 0.0);
    BRAID_INPUT_CHECK(d.guidance >= 0 && d.guidance <= 100, "guidance = {}: expected 0..100", d.guidance);
    const int64_t seed = integer("seed", 0);
    BRAID_INPUT_CHECK(seed >= 0, "seed = {}: expected >= 0", seed);
    d.seed = static_cast<uint64_t>(seed);
    d.sample.temperature = real("temperature", d.sample.temperature);
    BRAID_INPUT_CHECK(d.sample.temperature >= 0 && d.sample.temperature <= 100, "temperature = {}: expected 0..100",
                      d.sample.temperature);
    d.sample.top_k = integer("top_k", 0);
    BRAID_INPUT_CHECK(d.sample.top_k >= 0, "top_k = {}: expected >= 0", d.sample.top_k);
    d.sample.top_p = real("top_p", 1.0);
    BRAID_INPUT_CHECK(d.sample.top_p > 0 && d.sample.top_p <= 1, "top_p = {}: expected (0, 1]", d.sample.top_p);
    return d;
  }

  // The images of a drawing request as PNG data URLs, and their size.
  json draw(const run::DrawRequest& d) {
    auto slot = generation_slot();
    single_threaded_worker();
    const auto t0 = std::chrono::steady_clock::now();
    torch::Tensor images = opt.generator->draw(d);  // [n, 3, H, W] in [0, 1]
    TORCH_CHECK(images.dim() == 4 && images.size(0) == d.n && images.size(1) == 3, "draw returned shape ",
                images.sizes(), " for n = ", d.n);
    json urls = json::array();
    for (int64_t i = 0; i < d.n; ++i)
      urls.push_back("data:image/png;base64," + base64(data::encode_png(images[i])));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++drawings;
    return {{"images", urls},      {"text", d.text},         {"n", d.n},
            {"width", images.size(3)}, {"height", images.size(2)}, {"guidance", d.guidance},
            {"seed", d.seed},      {"temperature", d.sample.temperature}, {"seconds", secs}};
  }

  torch::Tensor embed(const Query& q) {
    single_threaded_worker();
    torch::Tensor x;
    if (q.modality == "text") {
      x = preprocess_query(e->preprocessor(), q);
    } else {  // a decode can take ~1 GB (the pixel limit): only opt.max_decodes at once
      auto slot = decode_slot();
      x = preprocess_query(e->preprocessor(), q);
    }
    return batcher->embed(q.modality, x);
  }

  // Run a handler, mapping InputError to 400 and anything else to 500.
  template <typename F>
  void guarded(httplib::Response& res, F&& f) {
    try {
      f();
    } catch (const Busy& ex) {
      send_error(res, 503, ex.what());
    } catch (const InputError& ex) {
      send_error(res, 400, ex.what());
    } catch (const std::exception& ex) {
      send_error(res, 500, std::string("internal error: ") + ex.what());
    }
  }

  // Cross-site protection, before routing (see server.h). Returns true when the request was refused.
  bool refuse(const httplib::Request& req, httplib::Response& res) const {
    const std::string host = host_of(req.get_header_value("Host"));
    auto& allow = opt.allow_hosts;
    const bool any = std::find(allow.begin(), allow.end(), "*") != allow.end();
    // no Host at all (HTTP/1.0 tools) cannot come from a browser; a foreign one may (DNS rebinding)
    if (!any && !host.empty() && std::find(allow.begin(), allow.end(), host) == allow.end()) {
      send_error(res, 403, "host '" + host + "' is not served here (braid serve --allow-host NAME)");
      return true;
    }
    if (req.method != "POST") return false;
    const std::string type = req.get_header_value("Content-Type");
    if (req.is_multipart_form_data()) {
      const std::string origin = req.get_header_value("Origin");
      if (!origin.empty() && host_of(origin) != host) {
        send_error(res, 403, "cross-origin upload refused");
        return true;
      }
      return false;
    }
    if (type.rfind("application/json", 0) != 0) {
      send_error(res, 415, "expected Content-Type: application/json (or a multipart upload)");
      return true;
    }
    return false;
  }

  void routes() {
    if (opt.allow_hosts.empty()) opt.allow_hosts = {"localhost", "127.0.0.1", "[::1]", host_of(opt.host)};
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      Conn* c = tl_conn;
      if (c && c->refuse_status) {  // found by HttpServer::setup (compressed or unknown coding, busy)
        send_error(res, c->refuse_status, c->refuse_msg);
        return httplib::Server::HandlerResponse::Handled;
      }
      if (!refuse(req, res)) return httplib::Server::HandlerResponse::Unhandled;
      if (c && c->budget > 0) c->close_after = true;  // its body is never read: the connection cannot go on
      return httplib::Server::HandlerResponse::Handled;
    });
    http.set_post_routing_handler([this](const httplib::Request&, httplib::Response& res) {
      Conn* c = tl_conn;
      if (c && (c->close_after || c->body_overflow || c->head_overflow || c->timed_out || http.stopping())) {
        res.headers.erase("Keep-Alive");
        res.set_header("Connection", "close");
      }
    });
    // The library's own limits, explicitly (ConnStream enforces the rest, see above).
    http.set_payload_max_length(opt.max_body);
    http.set_keep_alive_timeout(static_cast<time_t>(std::ceil(opt.idle_timeout_s)));
    http.set_read_timeout(std::chrono::duration<double>(opt.io_timeout_s));
    http.set_write_timeout(std::chrono::duration<double>(opt.io_timeout_s));
    const int threads = opt.http_threads > 0 ? opt.http_threads
                                             : std::max(4, 2 * static_cast<int>(std::thread::hardware_concurrency()));
    const size_t max_conn = static_cast<size_t>(std::max(threads, opt.max_connections));
    http.new_task_queue = [threads, max_conn] { return new ConnectionPool(static_cast<size_t>(threads), max_conn); };

    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(index_html(), "text/html; charset=utf-8");
    });
    http.Get(R"(/static/([A-Za-z0-9_.-]+))", [](const httplib::Request& req, httplib::Response& res) {
      std::string type;
      const std::string* a = static_asset(req.matches[1], &type);
      if (!a) return send_error(res, 404, "no such asset");
      res.set_content(*a, type.c_str());
    });
    http.Get("/report", [this](const httplib::Request&, httplib::Response& res) {
      if (opt.report_html.empty()) return send_error(res, 404, "no report of this run");
      res.set_content(opt.report_html, "text/html; charset=utf-8");
    });
    http.Get("/api/health", [this](const httplib::Request&, httplib::Response& res) {
      send_json(res, 200, {{"status", "ok"},
                           {"run", run_dir},
                           {"index", index ? index->describe() : json()},
                           {"searches", index != nullptr},
                           {"modalities", e ? json(e->modalities()) : json::array()},
                           {"batches", batcher ? batcher->batches() : 0},
                           {"requests", batcher ? batcher->items() : 0},
                           {"generates", opt.generator != nullptr},
                           {"draws", opt.generator != nullptr && opt.generator->draws()},
                           {"report", !opt.report_html.empty()},
                           {"generations", generations.load()},
                           {"max_generations", generating.limit()},
                           {"generations_peak", generating.peak()},
                           {"drawings", drawings.load()}});
    });
    if (opt.generator) {
      http.Post("/api/generate", [this](const httplib::Request& req, httplib::Response& res) {
        guarded(res, [&] {
          if (opt.generator->draws() && !req.is_multipart_form_data()) {  // text -> images, one JSON answer
            json j;
            try {
              j = json::parse(req.body);
            } catch (const json::exception&) {
              input_error("request body is not JSON; expected {{\"text\": \"red heart\", \"n\": 4}} (or a "
                          "multipart upload 'image' to name it)");
            }
            return send_json(res, 200, draw(parse_draw(j)));
          }
          auto r = parse_generate(req);
          std::shared_ptr<run::Generator::Prepared> pr;
          {  // bad input is a plain 400 before the stream starts; decodes share the decode slots
            Slots::Hold slot;
            if (!r.input.modality.empty()) slot = decode_slot();
            pr = std::make_shared<run::Generator::Prepared>(opt.generator->prepare(r));
          }
          // one of max_generations answers at once (each runs on one core): 503 before the stream, not a wait
          // on cores the others use
          auto gen = std::make_shared<Slots::Hold>(generation_slot());
          res.set_header("Cache-Control", "no-cache");
          res.set_chunked_content_provider("text/event-stream", [this, pr, gen](size_t, httplib::DataSink& sink) {
            auto event = [&](const std::string& name, const json& j) {
              const std::string e = (name.empty() ? "" : "event: " + name + "\n") + "data: " +
                                    j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
              return sink.is_writable() && sink.write(e.data(), e.size());
            };
            try {
              single_threaded_worker();
              auto a = opt.generator->generate(std::move(*pr), [&](const std::string& d) { return event("", {{"text", d}}); });
              gen->reset();
              ++generations;
              event("done", {{"text", a.text}, {"task", a.task}, {"prompt", a.prompt}, {"tokens", a.ids.size()},
                             {"stopped", a.stopped}});
            } catch (const std::exception& ex) {
              gen->reset();
              event("error", {{"error", ex.what()}});
            }
            sink.done();
            return true;
          });
        });
      });
    }
    http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (Conn* c = tl_conn) {  // the limits of ConnStream, seen by the parser as a failed read
        if (c->head_overflow)
          return send_error(res, 431, fmt::format("request line or headers over the limit ({} bytes, {} lines)",
                                                  opt.max_header_bytes, opt.max_headers));
        if (c->body_overflow || res.status == 413)
          return send_error(res, 413, fmt::format("request body over the size limit ({} bytes)", opt.max_body));
        if (c->timed_out) return send_error(res, 408, "request not received in time");
      }
      if (res.status == 404) send_error(res, 404, "no route " + req.method + " " + req.path);
      else if (res.status == 413) send_error(res, 413, "request body over the size limit");
      else send_error(res, res.status, "HTTP error " + std::to_string(res.status));
    });
    if (!index) {  // a generative run served without an index: no search routes
      auto none = [](const httplib::Request&, httplib::Response& res) {
        send_error(res, 404, "this server has no index (braid serve RUN --index DIR): only /api/generate");
      };
      http.Post("/api/embed", none);
      http.Post("/api/search", none);
      http.Get(R"(/media/(\d{1,12}))", none);
      return;
    }
    http.Post("/api/embed", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        int64_t k = 1;
        auto q = parse_query(req, &k);
        auto v = embed(q);
        std::vector<float> vec(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
        send_json(res, 200, {{"modality", q.modality}, {"dim", v.numel()}, {"vector", vec}});
      });
    });
    http.Post("/api/search", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        const auto t0 = std::chrono::steady_clock::now();
        int64_t k = opt.default_k;
        auto q = parse_query(req, &k);
        auto v = embed(q);
        auto hits = index->search(v, k);
        json results = json::array();
        int rank = 1;
        for (const auto& h : hits.at(0)) {
          const auto& en = index->entries()[static_cast<size_t>(h.slot)];
          results.push_back({{"rank", rank++},
                             {"slot", h.slot},
                             {"score", h.score},
                             {"id", en.id},
                             {"row", en.row},
                             {"path", en.path},
                             {"label", en.label},
                             {"url", en.path.empty() ? "" : "/media/" + std::to_string(h.slot)}});
        }
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        json query = {{"modality", q.modality}, {"name", q.name}};
        if (q.modality == "text") query["text"] = text_prefix(q.payload, e->preprocessor().options().text.max_tokens);
        send_json(res, 200, {{"query", query},
                             {"k", k},
                             {"index", index->describe()},
                             {"took_ms", ms},
                             {"results", results}});
      });
    });
    // Only files the index references, addressed by slot number: no client path reaches the file system.
    http.Get(R"(/media/(\d{1,12}))", [this](const httplib::Request& req, httplib::Response& res) {
      const long long slot = std::stoll(req.matches[1]);
      if (slot < 0 || slot >= index->size()) return send_error(res, 404, "no such index entry");
      const std::string& path = index->entries()[static_cast<size_t>(slot)].path;
      if (path.empty()) return send_error(res, 404, "index entry has no file");
      std::ifstream f(path, std::ios::binary);
      if (!f.good()) return send_error(res, 404, "file of index entry is missing");
      std::string bytes((std::istreambuf_iterator<char>(f)), {});
      res.set_header("Cache-Control", "max-age=3600");
      res.set_content(bytes, content_type_of(path).c_str());
    });
  }
};

Server::Server(Embedder& e, const VectorIndex& index, ServerOptions opt)
    : opt_(std::move(opt)), impl_(std::make_unique<Impl>(&e, &index, e.run(), opt_)) {
  BRAID_INPUT_CHECK(index.dim() > 0, "index is empty");
  impl_->routes();
}

Server::Server(const std::string& run, ServerOptions opt)
    : opt_(std::move(opt)), impl_(std::make_unique<Impl>(nullptr, nullptr, run, opt_)) {
  BRAID_INPUT_CHECK(opt_.generator, "{}: a server without an index needs a generative run (task: generate)", run);
  impl_->routes();
}

Server::~Server() {
  stop();
  if (impl_->batcher) impl_->batcher->stop();
}

bool Server::searches() const { return impl_->index != nullptr; }

int Server::bind() {
  auto& h = impl_->http;
  if (opt_.port == 0) {
    impl_->port = h.bind_to_any_port(opt_.host);
  } else {
    impl_->port = h.bind_to_port(opt_.host, opt_.port) ? opt_.port : -1;
  }
  BRAID_INPUT_CHECK(impl_->port > 0, "cannot listen on {}:{} (address in use or not available)", opt_.host, opt_.port);
  impl_->http.widen_backlog();
  return impl_->port;
}

void Server::run() {
  if (impl_->http.stopping()) return;  // a signal before listening is not lost
  if (impl_->port <= 0) bind();
  impl_->http.listen_after_bind();  // returns at once when stop() closed the socket meanwhile
}

void Server::stop() {
  if (impl_) impl_->http.begin_stop();
}

int Server::decodes_peak() const { return impl_->decodes.peak(); }
int Server::generations_peak() const { return impl_->generating.peak(); }

int max_generations(const ServerOptions& o) {
  if (o.max_generations > 0) return o.max_generations;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

const Batcher& Server::batcher() const {
  TORCH_CHECK(impl_->batcher, "Server::batcher(): this server has no index (searches() is false)");
  return *impl_->batcher;
}

}  // namespace braid::serve
