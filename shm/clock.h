// The timestamp clock of Event::ts.
//
// Why the TSC: a push must cost ~10 ns and make no system call. On the reference machine (a
// 2-vCPU KVM guest; BENCHMARKS.md, bench/push_bench.cpp BM_Clock*) rdtsc costs ~10 ns (9.6-10.0 ns
// measured), clock_gettime(CLOCK_MONOTONIC) through the vDSO ~23 ns, and CLOCK_MONOTONIC_COARSE
// ~3-5 ns but only ticks every 4 ms, too coarse for an end-to-end latency histogram. The rdtsc is
// most of a push's cost: the rest of the push runs in its shadow. The TSC is invariant and shared
// by all cores on the x86-64 CPUs we run on (constant_tsc, nonstop_tsc), so a collector in another
// process can convert ticks to nanoseconds with its own calibration against CLOCK_MONOTONIC; each
// segment header also records a (ticks, monotonic ns, realtime ns) triple taken at creation as a
// reference point.
// Elsewhere the clock is CLOCK_MONOTONIC in nanoseconds; header.clock_source says which.
#pragma once

#include <cstdint>
#include <ctime>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "shm/layout.h"

namespace shmstats::shm {

#if defined(__x86_64__)
inline constexpr ClockSource kEventClock = ClockSource::kTsc;
inline std::uint64_t now_ticks() noexcept { return __rdtsc(); }
#else
inline constexpr ClockSource kEventClock = ClockSource::kMonotonicNs;
inline std::uint64_t now_ticks() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}
#endif

inline std::uint64_t clock_ns(clockid_t id) noexcept {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// Converts event ticks to nanoseconds of CLOCK_MONOTONIC, calibrated by the reader itself.
class TickConverter {
 public:
  // Calibrates over roughly `window_ns` by busy-waiting (cold path; 2 ms is plenty for ~0.1%).
  static TickConverter calibrate(std::uint64_t window_ns = 2'000'000) noexcept;
  double ns_per_tick() const noexcept { return ns_per_tick_; }
  // Any ticks (they are untrusted): results outside [0, 2^64) clamp to its ends.
  std::uint64_t to_monotonic_ns(std::uint64_t ticks) const noexcept;

 private:
  std::uint64_t ref_ticks_ = 0;
  std::uint64_t ref_ns_ = 0;
  double ns_per_tick_ = 1.0;
};

}  // namespace shmstats::shm
