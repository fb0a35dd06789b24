// End-to-end latency: from an event's timestamp in the producer to its send by an exporter.
// record_ns is called by exporter threads (relaxed atomics); readers take a racy snapshot.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace shmstats::collector {

class LatencyHistogram {
 public:
  // Upper bounds in seconds (Prometheus "le"); the last bucket is +Inf.
  static constexpr std::array<double, 14> kBounds = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5};
  void record_ns(std::int64_t ns) noexcept;
  // The bucket bound at or below which `q` (0..1) of the samples fall; 0 without samples.
  double quantile_seconds(double q) const noexcept;
  std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  double sum_seconds() const noexcept;
  std::uint64_t bucket(std::size_t i) const noexcept {
    return buckets_[i].load(std::memory_order_relaxed);
  }

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_ns_{0};
};

}  // namespace shmstats::collector
