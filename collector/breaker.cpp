#include "collector/breaker.h"

namespace shmstats::collector {

bool CircuitBreaker::allow(Clock::time_point now) noexcept {
  switch (state_.load(std::memory_order_relaxed)) {
    case State::kClosed:
      return true;
    case State::kOpen:
      if (now - opened_at_ < open_for_) return false;
      // The timeout elapsed: this attempt is the probe.
      state_.store(State::kHalfOpen, std::memory_order_relaxed);
      return true;
    case State::kHalfOpen:
      return false;  // one probe at a time; its outcome decides
  }
  return false;
}

void CircuitBreaker::on_success() noexcept {
  consecutive_failures_ = 0;
  state_.store(State::kClosed, std::memory_order_relaxed);
}

void CircuitBreaker::on_failure(Clock::time_point now) noexcept {
  if (state_.load(std::memory_order_relaxed) == State::kHalfOpen) {
    open(now);
    return;
  }
  if (++consecutive_failures_ >= threshold_) open(now);
}

void CircuitBreaker::open(Clock::time_point now) noexcept {
  opened_at_ = now;
  consecutive_failures_ = 0;
  state_.store(State::kOpen, std::memory_order_relaxed);
  opened_.fetch_add(1, std::memory_order_relaxed);
}

const char* CircuitBreaker::to_string(State s) noexcept {
  switch (s) {
    case State::kClosed:
      return "closed";
    case State::kOpen:
      return "open";
    case State::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

}  // namespace shmstats::collector
