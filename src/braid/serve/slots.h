#pragma once
// A bounded number of holders of one resource (image decodes, generations): at most `limit` at once; a
// caller that cannot get a slot before its deadline is told so (the server answers 503). Remembers the
// most holders seen at once.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace braid::serve {

class Slots {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Slots(int limit) : limit_(std::max(1, limit)) {}

  // Takes a slot, waiting until `deadline` at the latest; false when none freed up by then.
  bool acquire(Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_until(lock, deadline, [&] { return held_ < limit_; })) return false;
    const int now = ++held_;
    if (now > peak_.load()) peak_.store(now);
    return true;
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      --held_;
    }
    cv_.notify_one();
  }

  int limit() const { return limit_; }
  int held() const {
    std::lock_guard<std::mutex> lock(mu_);
    return held_;
  }
  int peak() const { return peak_.load(); }

  // One held slot, released when it goes out of scope (or by reset()).
  class Hold {
   public:
    Hold() = default;
    explicit Hold(Slots* s) : s_(s) {}
    Hold(Hold&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
    Hold& operator=(Hold&& o) noexcept {
      if (this != &o) {
        reset();
        s_ = o.s_;
        o.s_ = nullptr;
      }
      return *this;
    }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    ~Hold() { reset(); }
    void reset() {
      if (s_) s_->release();
      s_ = nullptr;
    }
    explicit operator bool() const { return s_ != nullptr; }

   private:
    Slots* s_ = nullptr;
  };

  // A Hold on a slot, or an empty Hold when none freed up before `deadline`.
  Hold hold(Clock::time_point deadline) { return acquire(deadline) ? Hold(this) : Hold(); }

 private:
  const int limit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int held_ = 0;
  std::atomic<int> peak_{0};
};

}  // namespace braid::serve
