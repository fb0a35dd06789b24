#include "shm/clock.h"

#include <limits>

namespace shmstats::shm {

TickConverter TickConverter::calibrate(std::uint64_t window_ns) noexcept {
  TickConverter c;
  c.ref_ns_ = clock_ns(CLOCK_MONOTONIC);
  c.ref_ticks_ = now_ticks();
  if constexpr (kEventClock == ClockSource::kMonotonicNs) return c;
  std::uint64_t end_ns = c.ref_ns_;
  std::uint64_t end_ticks = c.ref_ticks_;
  while (end_ns - c.ref_ns_ < window_ns) {
    end_ns = clock_ns(CLOCK_MONOTONIC);
    end_ticks = now_ticks();
  }
  if (end_ticks > c.ref_ticks_) {
    c.ns_per_tick_ =
        static_cast<double>(end_ns - c.ref_ns_) / static_cast<double>(end_ticks - c.ref_ticks_);
  }
  return c;
}

std::uint64_t TickConverter::to_monotonic_ns(std::uint64_t ticks) const noexcept {
  const double delta =
      (static_cast<double>(ticks) - static_cast<double>(ref_ticks_)) * ns_per_tick_;
  const double ns = static_cast<double>(ref_ns_) + delta;
  // Ticks are untrusted (an event's ts): a value far from now converts to a double outside
  // uint64's range, where the cast would be undefined. Clamp (and map NaN to 0).
  constexpr double kTwoTo64 = 18446744073709551616.0;
  if (!(ns > 0)) return 0;
  if (ns >= kTwoTo64) return std::numeric_limits<std::uint64_t>::max();
  return static_cast<std::uint64_t>(ns);
}

}  // namespace shmstats::shm
