// End-to-end event latency as the receiver sees it: from the event's timestamp in the producer
// (carried in the datagram) to the moment the receive thread decoded it.
//
// Buckets are log-linear, kSubBuckets per power of two of nanoseconds, from kMinNs to kMaxNs, so
// the relative width of a bucket is at most 1/kSubBuckets (25%) and a quantile interpolated
// inside its bucket is within about 12% of the exact value. Bucket 0 holds everything at or below
// kMinNs (including negative latencies from clock steps); the last bucket everything above kMaxNs.
// That resolution is what the load scenarios need to tell 2 ms from 10 ms, with 98 counters.
//
// Concurrency: record_ns() is called by the receive thread only (relaxed atomics, one writer);
// bucket()/count()/sum_ns() may be read from any thread and give a racy but per-counter exact
// snapshot.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace shmstats::recv {

class EventLatency {
 public:
  static constexpr int kSubBucketBits = 2;
  static constexpr int kSubBuckets = 1 << kSubBucketBits;
  static constexpr int kMinExponent = 10;  // 2^10 ns, about 1 us
  static constexpr int kMaxExponent = 34;  // 2^34 ns, about 17 s
  static constexpr std::int64_t kMinNs = std::int64_t{1} << kMinExponent;
  static constexpr std::int64_t kMaxNs = std::int64_t{1} << kMaxExponent;
  // [0, kMinNs], then kSubBuckets per octave up to kMaxNs, then (kMaxNs, +inf).
  static constexpr std::size_t kBuckets =
      1 + static_cast<std::size_t>(kMaxExponent - kMinExponent) * kSubBuckets + 1;

  // The bucket a latency of `ns` falls into.
  static constexpr std::size_t bucket_of(std::int64_t ns) noexcept {
    if (ns <= kMinNs) return 0;
    if (ns > kMaxNs) return kBuckets - 1;
    // Buckets are (lower, upper]: shift by one so an exact bound lands in the bucket it closes.
    const auto v = static_cast<std::uint64_t>(ns - 1);
    const int exponent = static_cast<int>(std::bit_width(v)) - 1;  // floor(log2 v) >= kMinExponent
    const auto sub =
        static_cast<std::size_t>((v >> (exponent - kSubBucketBits)) & (kSubBuckets - 1));
    return 1 + static_cast<std::size_t>(exponent - kMinExponent) * kSubBuckets + sub;
  }

  // Upper bound of bucket `i` in ns; -1 for the last (+inf) bucket.
  static constexpr std::int64_t upper_bound_ns(std::size_t i) noexcept {
    if (i == 0) return kMinNs;
    if (i >= kBuckets - 1) return -1;
    const auto octave = static_cast<int>((i - 1) / kSubBuckets);
    const auto sub = static_cast<std::int64_t>((i - 1) % kSubBuckets);
    const int exponent = kMinExponent + octave;
    return (kSubBuckets + sub + 1) << (exponent - kSubBucketBits);
  }

  void record_ns(std::int64_t ns) noexcept {
    // relaxed: counters only; a single writer, readers take snapshots.
    buckets_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns > 0 ? static_cast<std::uint64_t>(ns) : 0, std::memory_order_relaxed);
  }

  std::uint64_t bucket(std::size_t i) const noexcept {
    return buckets_[i].load(std::memory_order_relaxed);
  }
  std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  std::uint64_t sum_ns() const noexcept { return sum_ns_.load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<std::uint64_t>, kBuckets> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_ns_{0};
};

static_assert(EventLatency::bucket_of(EventLatency::kMinNs) == 0);
static_assert(EventLatency::bucket_of(EventLatency::kMinNs + 1) == 1);
static_assert(EventLatency::upper_bound_ns(1) == EventLatency::kMinNs + EventLatency::kMinNs / 4);
static_assert(EventLatency::bucket_of(EventLatency::upper_bound_ns(1)) == 1);
static_assert(EventLatency::bucket_of(EventLatency::upper_bound_ns(1) + 1) == 2);
static_assert(EventLatency::upper_bound_ns(EventLatency::kBuckets - 2) == EventLatency::kMaxNs);
static_assert(EventLatency::bucket_of(EventLatency::kMaxNs) == EventLatency::kBuckets - 2);

}  // namespace shmstats::recv
