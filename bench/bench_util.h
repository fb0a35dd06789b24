// Helpers shared by the benchmark binaries: batch latency sampling with the TSC, the allocation
// count of the calling thread (alloc_counter.cpp), and a background consumer thread.
//
// Latency method: the timed loop runs batches of kBatch operations; each batch is timed with two
// rdtsc reads into a sample buffer allocated before the loop. A sample is the batch's cycles
// divided by kBatch, converted with shm::TickConverter's calibration, so percentiles are over
// per-batch averages: a single slow operation shows at 1/kBatch of its cost. Each sample also
// includes 1/kBatch of one rdtsc (not subtracted), so the figures slightly overstate the cost.
#pragma once

#include <benchmark/benchmark.h>
#include <sched.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include "shm/clock.h"

namespace shmstats::bench {

inline constexpr int kBatch = 16;  // operations per timed batch
inline constexpr std::size_t kBatchSize = kBatch;

// Allocations made so far by the calling thread (counting operator new, alloc_counter.cpp).
std::uint64_t alloc_count() noexcept;

// Nanoseconds per TSC tick, calibrated once per process against CLOCK_MONOTONIC.
inline double ns_per_tick() {
  static const double value = shm::TickConverter::calibrate(20'000'000).ns_per_tick();
  return value;
}

// Samples of batch durations in cycles. Keeps the most recent kCapacity batches.
class BatchSampler {
 public:
  static constexpr std::size_t kCapacity = std::size_t{1} << 20;  // 4 MiB per thread

  BatchSampler() : samples_(kCapacity) { (void)ns_per_tick(); }

  void add(std::uint64_t cycles) noexcept {
    samples_[count_++ & (kCapacity - 1)] =
        static_cast<std::uint32_t>(std::min<std::uint64_t>(cycles, ~std::uint32_t{0}));
  }

  // Sets p50_ns, p99_ns and p999_ns (per operation). Reorders the samples.
  void report(benchmark::State& state) {
    const std::size_t n = std::min<std::size_t>(count_, kCapacity);
    if (n == 0) return;
    const double scale = ns_per_tick() / kBatch;
    auto at = [&](double quantile) {
      const auto k = std::min(n - 1, static_cast<std::size_t>(quantile * static_cast<double>(n)));
      const auto nth = samples_.begin() + static_cast<std::ptrdiff_t>(k);
      std::nth_element(samples_.begin(), nth, samples_.begin() + static_cast<std::ptrdiff_t>(n));
      return static_cast<double>(*nth) * scale;
    };
    // Each thread reports its own percentiles; kAvgThreads averages them over threads.
    state.counters["p50_ns"] = benchmark::Counter(at(0.50), benchmark::Counter::kAvgThreads);
    state.counters["p99_ns"] = benchmark::Counter(at(0.99), benchmark::Counter::kAvgThreads);
    state.counters["p999_ns"] = benchmark::Counter(at(0.999), benchmark::Counter::kAvgThreads);
  }

 private:
  std::vector<std::uint32_t> samples_;
  std::uint64_t count_ = 0;
};

// Runs the timed loop: batches of kBatch calls of `op` (which returns true on success), each
// batch timed with rdtsc. Before each batch, outside the timed window, `wait_for_room()` may
// hold the producer back until the queue has room for a whole batch (backpressure), so the
// samples are pushes into a queue with room rather than the overflow path.
//
// Reports: items processed (one per op; with real time this is the sustained rate, including
// any wait for the consumer); p50_ns/p99_ns/p999_ns; thread_push_rate, the ops per second of
// time spent inside the timed batches (what one producer thread can push, excluding waits);
// allocs_per_push made by this thread inside the loop; failed_frac (ops that returned false).
template <class Op, class Wait>
void run_timed_batches(benchmark::State& state, Op&& op, Wait&& wait_for_room) {
  BatchSampler sampler;  // allocated before the loop
  std::uint64_t failed = 0;
  std::uint64_t busy_cycles = 0;
  const std::uint64_t allocs_before = alloc_count();
  for (auto _ : state) {
    wait_for_room();
    // The signal fences keep the compiler from moving the operations across the clock reads.
    std::atomic_signal_fence(std::memory_order_seq_cst);
    const std::uint64_t start = __rdtsc();
    std::atomic_signal_fence(std::memory_order_seq_cst);
    for (int i = 0; i < kBatch; ++i) failed += op() ? 0U : 1U;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    const std::uint64_t end = __rdtsc();
    std::atomic_signal_fence(std::memory_order_seq_cst);
    sampler.add(end - start);
    busy_cycles += end - start;
  }
  const std::uint64_t allocs = alloc_count() - allocs_before;
  const auto ops = static_cast<std::int64_t>(state.iterations()) * kBatch;
  state.SetItemsProcessed(ops);
  if (ops == 0) return;
  const auto ops_d = static_cast<double>(ops);
  sampler.report(state);
  const double busy_s = static_cast<double>(busy_cycles) * ns_per_tick() * 1e-9;
  state.counters["thread_push_rate"] =
      benchmark::Counter(busy_s > 0 ? ops_d / busy_s : 0.0, benchmark::Counter::kAvgThreads);
  state.counters["allocs_per_push"] =
      benchmark::Counter(static_cast<double>(allocs) / ops_d, benchmark::Counter::kAvgThreads);
  state.counters["failed_frac"] =
      benchmark::Counter(static_cast<double>(failed) / ops_d, benchmark::Counter::kAvgThreads);
}

template <class Op>
void run_timed_batches(benchmark::State& state, Op&& op) {
  run_timed_batches(state, std::forward<Op>(op), [] {});
}

// Spins, then yields (the machine has 2 cores; the consumer may need this one), until `ready()`.
template <class Ready>
void wait_until(Ready&& ready) {
  for (int spins = 0; !ready(); ++spins) {
    if (spins < 64) {
      _mm_pause();
    } else {
      std::this_thread::yield();
    }
  }
}

// Where the producer and consumer threads run. The machine has 2 cores, and where the scheduler
// puts the two threads changes the cost of a push several-fold (on one core no cache line moves
// between cores; on two, every slot line and the tail line do), so single-producer benchmarks pin
// them explicitly.
enum class Placement : std::int64_t {
  kOs = 0,        // not pinned: wherever the scheduler puts them
  kSameCore = 1,  // producer and consumer both on CPU 0 (they time-share it)
  kSplit = 2,     // producer on CPU 0, consumer on CPU 1
};
inline int producer_cpu(Placement p) noexcept { return p == Placement::kOs ? -1 : 0; }
inline int consumer_cpu(Placement p) noexcept {
  return p == Placement::kOs ? -1 : (p == Placement::kSameCore ? 0 : 1);
}

// Pins the calling thread to `cpu` (-1: leave it alone) and restores its previous CPU set when
// destroyed, so a pinned benchmark leaves the benchmark library's thread as it found it.
class ScopedPin {
 public:
  explicit ScopedPin(int cpu) noexcept {
    if (cpu < 0 || ::sched_getaffinity(0, sizeof(saved_), &saved_) != 0) return;
    cpu_set_t only;
    CPU_ZERO(&only);
    CPU_SET(static_cast<std::size_t>(cpu), &only);
    pinned_ = ::sched_setaffinity(0, sizeof(only), &only) == 0;
  }
  ScopedPin(const ScopedPin&) = delete;
  ScopedPin& operator=(const ScopedPin&) = delete;
  ~ScopedPin() {
    if (pinned_) (void)::sched_setaffinity(0, sizeof(saved_), &saved_);
  }

 private:
  cpu_set_t saved_{};
  bool pinned_ = false;
};

// A consumer thread that calls `poll_once` (returns how many items it took) until stopped.
// With poll_gap_us = 0 it polls in a tight loop, yielding the CPU after a pass that found nothing
// (the machine has 2 cores, shared with the producers); otherwise it sleeps that long after each
// pass, like a collector that drains on a timer. With cpu >= 0 it pins itself to that CPU.
// stop() always joins.
class BackgroundConsumer {
 public:
  BackgroundConsumer() = default;
  BackgroundConsumer(const BackgroundConsumer&) = delete;
  BackgroundConsumer& operator=(const BackgroundConsumer&) = delete;
  ~BackgroundConsumer() { stop(); }

  void start(std::function<std::size_t()> poll_once, std::int64_t poll_gap_us = 0, int cpu = -1) {
    stop();
    stop_.store(false, std::memory_order_relaxed);
    consumed_.store(0, std::memory_order_relaxed);
    thread_ = std::thread([this, poll = std::move(poll_once), poll_gap_us, cpu] {
      const ScopedPin pin(cpu);
      std::uint64_t consumed = 0;
      // relaxed: the flag carries no data; join() orders everything else.
      while (!stop_.load(std::memory_order_relaxed)) {
        const std::size_t got = poll();
        consumed += got;
        if (poll_gap_us > 0) {
          std::this_thread::sleep_for(std::chrono::microseconds(poll_gap_us));
        } else if (got == 0) {
          std::this_thread::yield();
        }
      }
      consumed += poll();  // take what the producer left, once
      consumed_.store(consumed, std::memory_order_relaxed);
    });
  }

  // Stops and joins the thread; returns the items it consumed.
  std::uint64_t stop() {
    if (!thread_.joinable()) return consumed_.load(std::memory_order_relaxed);
    stop_.store(true, std::memory_order_relaxed);
    thread_.join();
    return consumed_.load(std::memory_order_relaxed);
  }

 private:
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> consumed_{0};
};

}  // namespace shmstats::bench
