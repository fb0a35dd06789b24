// The raw SPSC ring (shm/ring.h) against boost::lockfree::spsc_queue and a mutex-guarded
// std::deque, each with a consumer thread draining it, for several capacities. The ring lives in
// ordinary memory: its header, then its slots, in one block (a segment keeps the ring headers
// together and each ring's slots page-aligned after them, shm/layout.h). Events are pre-built (no
// clock read), so this measures the queues alone. A push that finds the queue full fails and is
// counted (failed_frac); the event is dropped. Before each timed batch the producer waits, untimed,
// until the queue has room for the whole batch, so the latency samples are pushes into a queue with
// room and items_per_second (real time) is the sustained rate, bounded by the slower side. The
// machine has 2 cores; the threads are pinned to them (bench_util.h, Placement). Benchmarks never
// assert.
#include <atomic>
#include <boost/lockfree/spsc_queue.hpp>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "shm/layout.h"
#include "shm/ring.h"

namespace shmstats::bench {
namespace {

constexpr std::size_t kPollBatch = 256;  // events a consumer takes per poll

shm::Event make_event(std::uint64_t seq) noexcept {
  shm::Event ev{};
  ev.series_id = static_cast<std::uint32_t>(seq & 0xff);
  ev.kind = static_cast<std::uint8_t>(shm::Kind::kCounter);
  ev.sample_rate = 1.0F;
  ev.value = 1.0;
  ev.ts = seq;
  return ev;
}

// The shm ring in ordinary memory: RingHeader, then capacity slots, cache-line aligned (in a
// segment the slots are elsewhere; the reader and writer only need the two pointers).
class ShmRing {
 public:
  explicit ShmRing(std::uint32_t capacity)
      : capacity_(capacity),
        storage_(static_cast<unsigned char*>(std::aligned_alloc(shm::kCacheLine, size_bytes()))),
        out_(kPollBatch) {
    std::memset(storage_.get(), 0, size_bytes());
    header_ = new (storage_.get()) shm::RingHeader;
    auto* slots = reinterpret_cast<shm::Event*>(storage_.get() + sizeof(shm::RingHeader));
    writer_ = shm::RingWriter(header_, slots, capacity_);
    reader_ = shm::RingReader(header_, slots, capacity_);
  }
  bool try_push(const shm::Event& ev) noexcept { return writer_.try_push(ev, capacity_); }
  // Producer side; reads the consumer's head only when the cached one says the ring is short.
  bool has_room(std::size_t n) noexcept {
    return capacity_ - writer_.fill_upper_bound() >= n || capacity_ - writer_.refresh_fill() >= n;
  }
  std::size_t drain() noexcept { return reader_.poll(out_).count; }  // one batch

 private:
  struct Free {
    void operator()(unsigned char* p) const noexcept { std::free(p); }
  };
  [[nodiscard]] std::size_t size_bytes() const noexcept {
    return sizeof(shm::RingHeader) + std::size_t{capacity_} * sizeof(shm::Event);
  }
  std::uint32_t capacity_;
  std::unique_ptr<unsigned char, Free> storage_;
  shm::RingHeader* header_ = nullptr;
  shm::RingWriter writer_;
  shm::RingReader reader_;
  std::vector<shm::Event> out_;
};

class SpscQueue {
 public:
  explicit SpscQueue(std::uint32_t capacity) : queue_(capacity), out_(kPollBatch) {}
  bool try_push(const shm::Event& ev) noexcept { return queue_.push(ev); }
  bool has_room(std::size_t n) noexcept { return queue_.write_available() >= n; }
  std::size_t drain() noexcept { return queue_.pop(out_.data(), out_.size()); }

 private:
  boost::lockfree::spsc_queue<shm::Event> queue_;  // capacity set at run time
  std::vector<shm::Event> out_;
};

class MutexDeque {
 public:
  explicit MutexDeque(std::uint32_t capacity) : capacity_(capacity), out_(kPollBatch) {}
  bool try_push(const shm::Event& ev) {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= capacity_) return false;
    queue_.push_back(ev);
    return true;
  }
  bool has_room(std::size_t n) {
    std::lock_guard lock(mutex_);
    return capacity_ - queue_.size() >= n;
  }
  std::size_t drain() {
    std::lock_guard lock(mutex_);
    const std::size_t n = std::min(queue_.size(), out_.size());
    std::copy_n(queue_.begin(), n, out_.begin());
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    return n;
  }

 private:
  std::size_t capacity_;
  std::mutex mutex_;
  std::deque<shm::Event> queue_;
  std::vector<shm::Event> out_;
};

// {capacity, placement}. The consumer thread is started before and joined after the timed loop.
template <class Queue>
void queue_push(benchmark::State& state) {
  const auto placement = static_cast<Placement>(state.range(1));
  const ScopedPin pin(producer_cpu(placement));
  Queue queue(static_cast<std::uint32_t>(state.range(0)));
  BackgroundConsumer consumer;
  consumer.start([&queue] { return queue.drain(); }, 0, consumer_cpu(placement));
  std::uint64_t seq = 0;
  run_timed_batches(
      state, [&queue, &seq] { return queue.try_push(make_event(seq++)); },
      [&queue] { wait_until([&queue] { return queue.has_room(kBatchSize); }); });
  consumer.stop();
}

void BM_RingPush(benchmark::State& state) { queue_push<ShmRing>(state); }
void BM_SpscQueuePush(benchmark::State& state) { queue_push<SpscQueue>(state); }
void BM_MutexDequePush(benchmark::State& state) { queue_push<MutexDeque>(state); }

// Every capacity with producer and consumer on different cores, and the default capacity with
// both on one core (no cache line moves between cores; they time-share the CPU).
void capacities(benchmark::internal::Benchmark* b) {
  constexpr auto kSplit = static_cast<std::int64_t>(Placement::kSplit);
  constexpr auto kSameCore = static_cast<std::int64_t>(Placement::kSameCore);
  b->ArgNames({"capacity", "placement"})
      ->Args({1024, kSplit})
      ->Args({8192, kSplit})
      ->Args({65536, kSplit})
      ->Args({8192, kSameCore})
      ->UseRealTime();
}
BENCHMARK(BM_RingPush)->Apply(capacities);
BENCHMARK(BM_SpscQueuePush)->Apply(capacities);
BENCHMARK(BM_MutexDequePush)->Apply(capacities);

// Not a queue: one cache line bounced between CPU 0 and CPU 1, the floor under every cross-core
// handoff above. On this KVM guest it is not a constant: the host moves the two vCPUs between
// nearby and distant physical cores, and the round trip changes several-fold with it, so a run
// records it next to the queue numbers.
void BM_CacheLineRoundTrip(benchmark::State& state) {
  const ScopedPin pin(0);
  struct alignas(shm::kCacheLine) Line {
    std::atomic<std::uint64_t> value{0};
  };
  Line line;
  Line stop;  // its own line, so the flag does not disturb the one being measured
  std::thread echo([&line, &stop] {
    const ScopedPin echo_pin(1);
    // relaxed stop flag: it carries no data; join() orders the rest.
    for (std::uint64_t seen = 1; stop.value.load(std::memory_order_relaxed) == 0;) {
      // acquire/release: each side's store is the other side's signal; nothing else is shared.
      if (line.value.load(std::memory_order_acquire) == seen) {
        line.value.store(seen + 1, std::memory_order_release);
        seen += 2;
      }
    }
  });
  std::uint64_t sent = 1;
  for (auto _ : state) {
    line.value.store(sent, std::memory_order_release);
    while (line.value.load(std::memory_order_acquire) != sent + 1) _mm_pause();
    sent += 2;
  }
  stop.value.store(1, std::memory_order_relaxed);
  echo.join();
}
BENCHMARK(BM_CacheLineRoundTrip)->UseRealTime();

}  // namespace
}  // namespace shmstats::bench

BENCHMARK_MAIN();
