// braid/core/op_profile.h — a scoped wall-clock timer per named op, for "where does a forward's time go"
// (issue 19). `braid bench speed --op-profile` switches it on around the inference forwards and prints
// the table (op, calls, ms, % of the total); docs/results/engine.md has the command.
//
//   BRAID_OP_SCOPE("block.ln1");   // times the rest of the enclosing C++ scope under that name
//
// Scopes nest: each row's time is its *self* time (its own time minus that of the scopes opened inside it
// on the same thread), so the rows add up to the time of the outermost scopes and nothing is counted
// twice; "forward" around the whole call then shows what no finer scope covers. Off (the default) a
// scope costs one relaxed atomic load. On, it costs two steady_clock reads and a mutex-guarded map update
// at its end (~0.1 µs): fine for op-level scopes, not for per-element loops. Scopes on several threads are
// summed (a parallel region's ops are timed on the thread that opened the scope). set_clock picks wall or
// thread CPU time.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace braid::prof {

namespace detail {
extern std::atomic<bool> g_on;
void enter(const char* name);
void leave();
}  // namespace detail

// Process-wide switch (default off). Scopes opened while off record nothing, even if it is switched on
// before they end.
void set_enabled(bool on);

// What a scope measures: wall-clock time (default), or the CPU time of the thread that opened it
// (CLOCK_THREAD_CPUTIME_ID: leaves out the time the thread waited for a core, so a 1-thread profile on a
// loaded host is not inflated by other processes; a system call per read, ~0.3 µs; misses the work of other
// threads in a parallel region). Set it while no scope is open.
enum class Clock { Wall, ThreadCpu };
void set_clock(Clock c);
Clock clock_kind();
inline bool enabled() { return detail::g_on.load(std::memory_order_relaxed); }

// Times the enclosing C++ scope under `name` (a string literal or other storage that outlives the profile).
class Scope {
 public:
  explicit Scope(const char* name) : on_(enabled()) {
    if (on_) detail::enter(name);
  }
  ~Scope() {
    if (on_) detail::leave();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  bool on_;
};

struct Row {
  std::string op;
  int64_t calls = 0;
  double self_ms = 0;   // time inside the scope minus the time of scopes nested in it
  double total_ms = 0;  // time inside the scope, nested scopes included
};

// What was recorded since the last reset(), largest self time first (ties: by name).
std::vector<Row> rows();
void reset();

// A Markdown table of `rows`: op | calls | ms (self, per `per` repetitions: the total divided by `per`) |
// % (of the sum of all rows' self time). `per` > 0.
std::string table(const std::vector<Row>& rows, int64_t per = 1);

}  // namespace braid::prof

#define BRAID_OP_SCOPE_CAT2(a, b) a##b
#define BRAID_OP_SCOPE_CAT(a, b) BRAID_OP_SCOPE_CAT2(a, b)
#define BRAID_OP_SCOPE(name) ::braid::prof::Scope BRAID_OP_SCOPE_CAT(braid_op_scope_, __LINE__)(name)
