#include "braid/core/runtime.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <thread>
#include <cstdlib>
#include <cstring>
#include <malloc.h>

#include "braid/core/error.h"

namespace braid {

void configure_allocator(bool tuned) {
  if (!tuned) return;
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

int configure_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  return at::get_num_threads();
}

static std::atomic<bool> g_interrupted{false};

extern "C" void braid_on_signal(int) { g_interrupted.store(true); }

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = braid_on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() { return g_interrupted.load(); }

void check_interrupt() {
  if (interrupted()) throw Interrupted();
}

uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c) {
  auto sm = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  };
  return sm(sm(sm(a) ^ b) ^ c);
}

void setup_logging(bool verbose) {
  auto logger = spdlog::stderr_color_mt("braid");
  logger->set_pattern("[braid] %v");
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), tty_(::isatty(2) != 0),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

Progress::~Progress() {
  if (!finished_ && tty_ && done_ > 0) std::fputs("\n", stderr);
}

static std::string fmt_secs(double s) {
  if (s < 0 || s > 1e7) return "?";
  int t = static_cast<int>(s + 0.5);
  return t >= 3600 ? fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60) : fmt::format("{:02}:{:02}", t / 60, t % 60);
}

void Progress::update(int64_t done, const std::string& tail, int64_t items) {
  done_ = done;
  items_ += items;
  tail_ = tail;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since >= (tty_ ? 0.2 : 10.0)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish(const std::string& tail) {
  if (!tail.empty()) tail_ = tail;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final_line) {
  double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = el > 0 ? done_ / el : 0;
  double eta = rate > 0 && total_ > 0 ? (total_ - done_) / rate : -1;
  std::string items = items_ > 0 && el > 0 ? fmt::format(" {:.0f} samples/s", items_ / el) : "";
  int pct = total_ > 0 ? static_cast<int>(100.0 * done_ / total_) : 0;
  std::string line = fmt::format("{} {:>3}% {}/{} {} [{}<{}{}]{}{}", label_, pct, done_, total_, unit_, fmt_secs(el),
                                 fmt_secs(eta), items, tail_.empty() ? "" : " ", tail_);
  if (tty_)
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final_line ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace braid
