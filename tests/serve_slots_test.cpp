// serve::Slots, the bound on image decodes and generations a server runs at once: never more holders than
// the limit, a caller past its deadline is refused (the server's 503), a freed slot wakes a waiter.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "braid/serve/server.h"
#include "braid/serve/slots.h"

using braid::serve::Slots;
using namespace std::chrono_literals;

TEST(ServeSlots, NeverMoreHoldersThanTheLimit) {
  Slots s(2);
  auto a = s.hold(Slots::Clock::now());
  auto b = s.hold(Slots::Clock::now());
  ASSERT_TRUE(a && b);
  const auto t0 = Slots::Clock::now();
  auto c = s.hold(t0 + 50ms);
  EXPECT_FALSE(c) << "a third holder with a limit of 2";
  EXPECT_GE(Slots::Clock::now() - t0, 40ms) << "it waited until its deadline";
  EXPECT_EQ(s.held(), 2);
  a.reset();
  EXPECT_EQ(s.held(), 1);
  c = s.hold(Slots::Clock::now());
  EXPECT_TRUE(c) << "a freed slot is taken";
  EXPECT_EQ(s.peak(), 2);
  Slots::Hold moved = std::move(c);
  EXPECT_EQ(s.held(), 2) << "moving a hold keeps one slot";
}

TEST(ServeSlots, ReleaseWakesAWaiterAndThreadsStayBounded) {
  Slots s(1);
  auto h = s.hold(Slots::Clock::now());
  std::atomic<bool> got{false};
  std::thread waiter([&] { got = static_cast<bool>(s.hold(Slots::Clock::now() + 10s)); });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(got.load());
  const auto t0 = Slots::Clock::now();
  h.reset();
  waiter.join();
  EXPECT_TRUE(got.load());
  EXPECT_LT(Slots::Clock::now() - t0, 5s) << "woken by the release, not by its deadline";

  Slots three(3);
  std::atomic<int> inside{0}, most{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 12; ++i)
    ts.emplace_back([&] {
      auto k = three.hold(Slots::Clock::now() + 30s);
      ASSERT_TRUE(k);
      const int now = ++inside;
      for (int m = most.load(); now > m && !most.compare_exchange_weak(m, now);) {}
      std::this_thread::sleep_for(5ms);
      --inside;
    });
  for (auto& t : ts) t.join();
  EXPECT_LE(most.load(), 3);
  EXPECT_LE(three.peak(), 3);
  EXPECT_EQ(three.held(), 0);
}

TEST(ServeSlots, GenerationsDefaultToTheCores) {
  braid::serve::ServerOptions o;
  EXPECT_EQ(braid::serve::max_generations(o), std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
  o.max_generations = 3;
  EXPECT_EQ(braid::serve::max_generations(o), 3);
}
