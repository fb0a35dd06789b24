#include "collector/latency.h"

#include <cstddef>

namespace shmstats::collector {

void LatencyHistogram::record_ns(std::int64_t ns) noexcept {
  if (ns < 0) ns = 0;  // clocks of two processes: a tiny negative is "now"
  const double s = static_cast<double>(ns) / 1e9;
  std::size_t i = 0;
  while (i < kBounds.size() && s > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
}

double LatencyHistogram::sum_seconds() const noexcept {
  return static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
}

double LatencyHistogram::quantile_seconds(double q) const noexcept {
  const std::uint64_t total = count();
  if (total == 0) return 0;
  const auto target = static_cast<std::uint64_t>(q * static_cast<double>(total));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += bucket(i);
    if (seen > target || seen == total) {
      return i < kBounds.size() ? kBounds[i] : kBounds.back() * 10;
    }
  }
  return kBounds.back() * 10;
}

}  // namespace shmstats::collector
