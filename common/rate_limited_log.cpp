#include "common/rate_limited_log.h"

namespace shmstats::common {

RateLimiter::Decision RateLimiter::admit(std::string_view key, Clock::time_point now) {
  const std::lock_guard lock(mutex_);
  auto at = keys_.find(key);
  if (at == keys_.end()) at = keys_.emplace(std::string(key), KeyState{}).first;
  KeyState& state = at->second;
  if (!state.started || now - state.window_start >= window_) {
    state.started = true;
    state.window_start = now;
    state.written_in_window = 0;
  }
  if (state.written_in_window >= lines_per_window_) {
    ++state.held_back;
    suppressed_.fetch_add(1, std::memory_order_relaxed);
    return Decision{};
  }
  ++state.written_in_window;
  written_.fetch_add(1, std::memory_order_relaxed);
  return Decision{true, std::exchange(state.held_back, 0)};
}

void RateLimiter::set_window(Clock::duration window) {
  const std::lock_guard lock(mutex_);
  window_ = window;
}

}  // namespace shmstats::common
