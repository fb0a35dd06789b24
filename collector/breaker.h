// A circuit breaker per destination.
//   closed    --N consecutive failures-->  open
//   open      --open_ms elapsed-->         half_open (the next attempt is a probe)
//   half_open --probe succeeds-->          closed;  --probe fails--> open (timer restarts)
// Single-threaded: owned by one exporter thread. state() may be read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace shmstats::collector {

class CircuitBreaker {
 public:
  enum class State : int { kClosed = 0, kOpen = 1, kHalfOpen = 2 };
  using Clock = std::chrono::steady_clock;

  CircuitBreaker(std::uint32_t failure_threshold, std::chrono::milliseconds open_duration)
      : threshold_(failure_threshold == 0 ? 1 : failure_threshold), open_for_(open_duration) {}

  // True if a send may be attempted now (closed, or the one probe of half-open).
  bool allow(Clock::time_point now = Clock::now()) noexcept;
  void on_success() noexcept;
  void on_failure(Clock::time_point now = Clock::now()) noexcept;

  State state() const noexcept { return state_.load(std::memory_order_relaxed); }
  std::uint64_t opened_count() const noexcept { return opened_.load(std::memory_order_relaxed); }
  static const char* to_string(State s) noexcept;

 private:
  void open(Clock::time_point now) noexcept;
  std::uint32_t threshold_;
  std::chrono::milliseconds open_for_;
  std::uint32_t consecutive_failures_ = 0;
  Clock::time_point opened_at_{};
  std::atomic<State> state_{State::kClosed};
  std::atomic<std::uint64_t> opened_{0};
};

}  // namespace shmstats::collector
