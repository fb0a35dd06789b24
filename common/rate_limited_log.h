// Rate-limited logging: the one limiter for log lines that something outside the process can
// make happen at any rate (refused segments, malformed datagrams, library messages, exceptions
// from an exporter). Per key, at most `lines_per_window` lines are written in each window; the
// rest are counted, and the next line written for that key says how many were held back.
//
// A window starts with the first line of a key after the previous window of that key is over.
// With one line per window that is "at most one line per interval": the first line is always
// written, and then none until `window` has passed since it.
//
// Concurrency: every member may be called from any thread (a mutex guards the state; these are
// cold paths). Keys are kept for the life of the limiter: use a bounded set (exporter names,
// reason names), never a value from outside.
#pragma once

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace shmstats::common {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  RateLimiter(std::size_t lines_per_window, Clock::duration window)
      : lines_per_window_(lines_per_window), window_(window) {}

  struct Decision {
    bool write = false;
    // When `write`: lines of this key held back since the last one written.
    std::uint64_t suppressed_before = 0;
  };

  // Whether a line of `key` may be written at `now`; counts it as written or as held back.
  Decision admit(std::string_view key, Clock::time_point now = Clock::now());
  Decision admit(Clock::time_point now = Clock::now()) { return admit({}, now); }

  // Changes the window (for lines still to come).
  void set_window(Clock::duration window);

  std::uint64_t written_total() const noexcept { return written_.load(std::memory_order_relaxed); }
  std::uint64_t suppressed_total() const noexcept {
    return suppressed_.load(std::memory_order_relaxed);
  }

 private:
  struct KeyState {
    bool started = false;
    Clock::time_point window_start{};
    std::size_t written_in_window = 0;
    std::uint64_t held_back = 0;
  };
  const std::size_t lines_per_window_;
  std::mutex mutex_;
  Clock::duration window_;                             // guarded by mutex_
  std::map<std::string, KeyState, std::less<>> keys_;  // guarded by mutex_
  std::atomic<std::uint64_t> written_{0};
  std::atomic<std::uint64_t> suppressed_{0};
};

// A RateLimiter in front of spdlog: log() writes the line through spdlog when the limiter
// admits it, with " (N more suppressed since the last one)" appended when lines were held back.
class RateLimitedLog {
 public:
  RateLimitedLog(std::size_t lines_per_window, RateLimiter::Clock::duration window)
      : limiter_(lines_per_window, window) {}

  // True if the line was written.
  template <typename... Args>
  bool log(spdlog::level::level_enum level, std::string_view key,
           fmt::format_string<Args...> format, Args&&... args) {
    const RateLimiter::Decision decision = limiter_.admit(key);
    if (!decision.write) return false;
    std::string line = fmt::format(format, std::forward<Args>(args)...);
    if (decision.suppressed_before > 0) {
      line += fmt::format(" ({} more suppressed since the last one)", decision.suppressed_before);
    }
    spdlog::log(level, "{}", line);
    return true;
  }

  const RateLimiter& limiter() const noexcept { return limiter_; }

 private:
  RateLimiter limiter_;
};

}  // namespace shmstats::common
