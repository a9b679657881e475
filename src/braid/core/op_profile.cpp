#include "braid/core/op_profile.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>

#include <time.h>

namespace braid::prof {

namespace detail {
std::atomic<bool> g_on{false};
}  // namespace detail

namespace {

std::atomic<Clock> g_clock{Clock::Wall};

int64_t now_ns() {
  if (g_clock.load(std::memory_order_relaxed) == Clock::ThreadCpu) {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  }
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Frame {
  const char* name;
  int64_t t0;
  int64_t child_ns = 0;  // inclusive time of the scopes that ended inside this one
};
thread_local std::vector<Frame> t_stack;

struct Acc {
  int64_t calls = 0, self_ns = 0, total_ns = 0;
};
std::mutex g_mu;
std::map<std::string, Acc> g_acc;

}  // namespace

namespace detail {

void enter(const char* name) { t_stack.push_back(Frame{name, now_ns()}); }

void leave() {
  const int64_t t1 = now_ns();
  if (t_stack.empty()) return;
  const Frame f = t_stack.back();
  t_stack.pop_back();
  const int64_t incl = t1 - f.t0;
  if (!t_stack.empty()) t_stack.back().child_ns += incl;
  std::lock_guard<std::mutex> lock(g_mu);
  auto& a = g_acc[f.name];
  a.calls += 1;
  a.self_ns += incl - f.child_ns;
  a.total_ns += incl;
}

}  // namespace detail

void set_enabled(bool on) { detail::g_on.store(on); }
void set_clock(Clock c) { g_clock.store(c); }
Clock clock_kind() { return g_clock.load(); }

std::vector<Row> rows() {
  std::vector<Row> out;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    for (const auto& [name, a] : g_acc) out.push_back(Row{name, a.calls, a.self_ns / 1e6, a.total_ns / 1e6});
  }
  std::stable_sort(out.begin(), out.end(), [](const Row& a, const Row& b) { return a.self_ms > b.self_ms; });
  return out;
}

void reset() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_acc.clear();
}

std::string table(const std::vector<Row>& rows, int64_t per) {
  if (per < 1) per = 1;
  double sum = 0;
  for (const auto& r : rows) sum += r.self_ms;
  std::string s = "| op | calls | ms | % |\n| --- | ---: | ---: | ---: |\n";
  for (const auto& r : rows)
    s += fmt::format("| {} | {} | {:.3f} | {:.1f} |\n", r.op, r.calls / per, r.self_ms / per,
                     sum > 0 ? 100.0 * r.self_ms / sum : 0.0);
  s += fmt::format("| total | | {:.3f} | 100.0 |\n", sum / per);
  return s;
}

}  // namespace braid::prof
