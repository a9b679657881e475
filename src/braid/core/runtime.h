// braid/core/runtime.h — process-wide settings: threads, Ctrl-C, seeds, logging, progress.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace braid {

// Set the intra-op thread count of LibTorch (0 = all cores). Returns the count in effect.
// LibTorch starts at 1 thread on these machines, so every command calls this.
int configure_threads(int threads);

// Tune glibc's allocator for tensor workloads: large blocks (< 64 MB) come from the heap instead of
// fresh mmap()s, and up to 256 MB of freed heap stays mapped instead of being trimmed back to the
// kernel. With glibc's adaptive defaults, a training step's activations were unmapped and faulted in
// again every step (measured: the small CLIP trained 10% faster with these settings; docs/results/
// clip_speed.md). Called once at start-up by the CLI; `tuned = false` leaves glibc's defaults (the
// CLI passes false for BRAID_MALLOC=default or a GLIBC_TUNABLES that names malloc).
void configure_allocator(bool tuned = true);

// Ctrl-C (SIGINT) and SIGTERM set a flag instead of killing the process; long loops poll it
// and stop at a safe point. `check_interrupt` throws Interrupted when the flag is set.
void install_interrupt_handler();
bool interrupted();
void check_interrupt();

// Mix values into a 64-bit seed (splitmix64): deterministic per-sample / per-epoch streams.
uint64_t mix_seed(uint64_t a, uint64_t b = 0, uint64_t c = 0);

// Logging to stderr ("[braid] ..."); `verbose` enables debug lines.
void setup_logging(bool verbose);

// A throttled progress line on stderr: steps, percent, rate, ETA and a caller-supplied tail
// (loss, ...). On a terminal it redraws one line at most 5 times a second; otherwise it
// prints a line at most every 10 seconds, so logs stay short.
class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "it");
  ~Progress();
  void update(int64_t done, const std::string& tail = "", int64_t items = 0);
  void finish(const std::string& tail = "");

 private:
  void draw(bool final_line);
  std::string label_, unit_, tail_;
  int64_t total_, done_ = 0, items_ = 0;
  bool tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace braid
