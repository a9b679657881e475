// The per-op scoped timer (core/op_profile.h) behind `braid bench speed --op-profile`: nested scopes report self
// time (their own minus their children's), so the rows add up to the outermost scope's time; calls are counted;
// nothing is recorded while it is off; the table's percentages sum to 100; the thread-CPU clock leaves out sleeping.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>

#include "braid/core/op_profile.h"

using namespace braid;

namespace {

struct Profiling {  // on for one test, then off, reset and back to the wall clock
  explicit Profiling(prof::Clock c = prof::Clock::Wall) {
    prof::reset();
    prof::set_clock(c);
    prof::set_enabled(true);
  }
  ~Profiling() {
    prof::set_enabled(false);
    prof::set_clock(prof::Clock::Wall);
    prof::reset();
  }
};

void busy(std::chrono::milliseconds ms) {  // spins (CPU time), unlike sleep_for
  const auto end = std::chrono::steady_clock::now() + ms;
  volatile double x = 0;
  while (std::chrono::steady_clock::now() < end) x = x + 1;
}

std::map<std::string, prof::Row> by_name() {
  std::map<std::string, prof::Row> m;
  for (const auto& r : prof::rows()) m[r.op] = r;
  return m;
}

}  // namespace

TEST(OpProfile, NestedScopesReportSelfTime) {
  Profiling p;
  {
    BRAID_OP_SCOPE("outer");
    busy(std::chrono::milliseconds(4));
    for (int i = 0; i < 3; ++i) {
      BRAID_OP_SCOPE("inner");
      busy(std::chrono::milliseconds(5));
    }
  }
  auto m = by_name();
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m["outer"].calls, 1);
  EXPECT_EQ(m["inner"].calls, 3);
  EXPECT_GE(m["inner"].self_ms, 15.0);
  EXPECT_DOUBLE_EQ(m["inner"].self_ms, m["inner"].total_ms);  // a leaf
  EXPECT_GE(m["outer"].self_ms, 4.0);
  EXPECT_LT(m["outer"].self_ms, m["inner"].self_ms);  // the children's time is not the parent's self time
  EXPECT_NEAR(m["outer"].self_ms + m["inner"].self_ms, m["outer"].total_ms, 1e-6);
  EXPECT_EQ(prof::rows().front().op, "inner");  // largest self time first
  const std::string t = prof::table(prof::rows(), 1);
  EXPECT_NE(t.find("| inner | 3 |"), std::string::npos) << t;
  EXPECT_NE(t.find("| total | | "), std::string::npos) << t;
  // per = 3 divides calls and times
  EXPECT_NE(prof::table(prof::rows(), 3).find("| inner | 1 |"), std::string::npos);
}

TEST(OpProfile, OffRecordsNothing) {
  prof::reset();
  prof::set_enabled(false);
  {
    BRAID_OP_SCOPE("never");
    busy(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(prof::rows().empty());
}

TEST(OpProfile, ThreadCpuClockLeavesOutSleep) {
  Profiling p(prof::Clock::ThreadCpu);
  {
    BRAID_OP_SCOPE("sleep");
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  {
    BRAID_OP_SCOPE("spin");
    busy(std::chrono::milliseconds(10));
  }
  auto m = by_name();
  EXPECT_LT(m["sleep"].self_ms, 5.0);  // wall time 30 ms, CPU time ~0
  EXPECT_GT(m["spin"].self_ms, 2.0);   // at least part of 10 ms wall on a loaded host
}
