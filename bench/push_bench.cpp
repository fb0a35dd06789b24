// Producer push cost through the public API (the handle and the dynamic `count` path), against
// baselines in the same binary: boost::lockfree::spsc_queue; what naive StatsD clients pay, one
// sendto of a DogStatsD line per metric over loopback UDP and over a Unix datagram socket; and a
// buffered StatsD client (lines appended under a mutex, one sendto per 1432-byte payload). Also
// the cost of the clocks the event timestamp could use (shm/clock.h).
//
// Every producer benchmark runs on a real /dev/shm segment named "bench<pid>.…", created in the
// Setup callback of each run and unlinked in its Teardown. A draining consumer, where there is
// one, is a std::thread that attaches to the segment read-write and empties every ring with
// RingReader::poll, either in a tight loop or every 100 us. The machine has 2 cores, so producer
// and consumer threads share them; single-producer runs pin them (see Placement in bench_util.h).
// See bench_util.h for how latency percentiles, allocations and failures are measured. Benchmarks
// never assert.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <boost/lockfree/spsc_queue.hpp>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "bench/bench_util.h"
#include "shm/clock.h"
#include "shm/layout.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "shmstats/shmstats.h"

namespace shmstats::bench {
namespace {

constexpr std::size_t kPollBatch = 1024;        // events the consumer takes per poll
constexpr std::uint32_t kQueueCapacity = 8192;  // = Options::ring_capacity, the default

std::string bench_prefix() { return "bench" + std::to_string(::getpid()); }

Options bench_options() {
  Options options;
  options.service = "push_bench";
  options.shm_prefix = bench_prefix();
  options.read_environment = false;  // the geometry must not change under the benchmark
  return options;
}

void unlink_bench_segments() {
  for (const auto& name : shm::list_segments(bench_prefix())) (void)shm::unlink_segment(name);
}

// ---- producer environment (one per run, built by Setup, destroyed by Teardown) ----------------

struct ProducerEnv {
  std::optional<Client> client;
  Counter counter;
  std::unique_ptr<shm::Segment> consumer_view;  // the consumer's own mapping
  BackgroundConsumer consumer;
  std::string error;
};
ProducerEnv g_producer;

void open_producer(bool with_consumer, std::int64_t poll_gap_us, int consumer_cpu,
                   Timestamps timestamps = Timestamps::kProducer) {
  g_producer.error.clear();
  Options options = bench_options();
  options.timestamps = timestamps;
  auto client = Client::create(options);
  if (!client) {
    g_producer.error = "Client::create: " + client.error().message;
    return;
  }
  g_producer.client.emplace(std::move(client).value());
  auto counter = g_producer.client->counter("api.requests", {{"route", "/x"}, {"code", "200"}});
  if (!counter) {
    g_producer.error = "Client::counter: " + counter.error().message;
    return;
  }
  g_producer.counter = counter.value();
  if (!with_consumer) return;
  auto view =
      shm::Segment::attach(g_producer.client->segment_name(), shm::Segment::Access::kReadWrite);
  if (!view) {
    g_producer.error = "Segment::attach: " + view.error().message;
    return;
  }
  g_producer.consumer_view = std::make_unique<shm::Segment>(std::move(view).value());
  struct Drain {
    std::vector<shm::RingReader> readers;
    std::vector<shm::Event> out = std::vector<shm::Event>(kPollBatch);
  };
  auto drain = std::make_shared<Drain>();
  const shm::Segment& seg = *g_producer.consumer_view;
  for (std::uint32_t i = 0; i < seg.geometry().ring_count; ++i) {
    drain->readers.push_back(seg.ring_reader(i));
  }
  // Each pass empties every ring.
  g_producer.consumer.start(
      [drain] {
        std::size_t got = 0;
        for (auto& reader : drain->readers) {
          for (std::size_t n = 1; n != 0; got += n) n = reader.poll(drain->out).count;
        }
        return got;
      },
      poll_gap_us, consumer_cpu);
}

// Benchmark arguments of the runs with a consumer: {wait_for_room, poll_gap_us, placement}.
Placement placement_of(const benchmark::State& state) {
  return static_cast<Placement>(state.range(2));
}
constexpr auto kOs = static_cast<std::int64_t>(Placement::kOs);
constexpr auto kSameCore = static_cast<std::int64_t>(Placement::kSameCore);
constexpr auto kSplit = static_cast<std::int64_t>(Placement::kSplit);

// One producer thread, pinned: backpressure on with a tight-loop consumer on the other core and
// on the same core; backpressure off; and a consumer that sleeps 100 us between passes.
void single_producer_modes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"wait_for_room", "poll_gap_us", "placement"})
      ->Args({1, 0, kSplit})
      ->Args({1, 0, kSameCore})
      ->Args({0, 0, kSplit})
      ->Args({1, 100, kSplit});
}
// Threads placed by the OS (for 1, 2 and 4 producers), backpressure on and off.
void os_placed_modes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"wait_for_room", "poll_gap_us", "placement"})->Args({1, 0, kOs})->Args({0, 0, kOs});
}

void setup_drained_producer(const benchmark::State& state) {
  open_producer(true, state.range(1), consumer_cpu(placement_of(state)));
}
void setup_undrained_producer(const benchmark::State&) { open_producer(false, 0, -1); }
void setup_drained_unstamped_producer(const benchmark::State& state) {
  open_producer(true, state.range(1), consumer_cpu(placement_of(state)), Timestamps::kCollector);
}

void teardown_producer(const benchmark::State&) {
  g_producer.consumer.stop();
  g_producer.consumer_view.reset();
  g_producer.counter = Counter{};
  g_producer.client.reset();
  unlink_bench_segments();
}

// Reports what happened to the pushes of this run between two stats snapshots: the fraction
// that was folded (ring full, fold policy) or dropped. Thread 0 only (the stats are per client).
void report_outcomes(benchmark::State& state, const Stats& before) {
  if (state.thread_index() != 0 || !g_producer.client) return;
  const Stats after = g_producer.client->stats();
  const auto pushed = static_cast<double>(after.pushed - before.pushed);
  if (pushed <= 0) return;
  state.counters["folded_frac"] = static_cast<double>(after.folded - before.folded) / pushed;
  state.counters["dropped_frac"] = static_cast<double>(after.dropped - before.dropped) / pushed;
}

// Backpressure for the benchmarks with a draining consumer. With wait_for_room = 1 the producer
// waits, untimed, before each batch until its ring has room for the batch, so every timed push
// is a successful push into a ring the consumer is draining, and items_per_second (real time) is
// the sustained rate, bounded by the consumer. With 0 it pushes flat out: once the consumer falls
// behind, pushes take the overflow path (counters fold; see folded_frac).
class RoomWaiter {
 public:
  // Finds the ring the calling thread claimed (call after its first push).
  explicit RoomWaiter(bool enabled) {
    if (!enabled || !g_producer.consumer_view) return;
    const shm::Segment& seg = *g_producer.consumer_view;
    const auto tid = static_cast<std::uint64_t>(::gettid());
    for (std::uint32_t i = 0; i < seg.geometry().ring_count; ++i) {
      const shm::RingHeader& ring = seg.ring_header(i);
      if (ring.owner_tid.load(std::memory_order_relaxed) == tid &&
          ring.state.load(std::memory_order_acquire) ==
              static_cast<std::uint32_t>(shm::RingState::kOwned)) {
        reader_ = seg.ring_reader(i);
        capacity_ = seg.geometry().ring_capacity;
        enabled_ = true;
      }
    }
  }
  void operator()() noexcept {
    if (!enabled_) return;
    wait_until([this] { return reader_.size_estimate() + kBatchSize <= capacity_; });
  }

 private:
  bool enabled_ = false;
  shm::RingReader reader_;
  std::uint64_t capacity_ = 0;
};

// Handle push, one ring per benchmark thread, draining consumer.
void BM_ProducerCounterPush(benchmark::State& state) {
  if (!g_producer.error.empty()) {
    state.SkipWithError(g_producer.error.c_str());
    return;
  }
  const ScopedPin pin(producer_cpu(placement_of(state)));
  Counter counter = g_producer.counter;
  (void)counter.add(1.0);  // this thread's first push claims its ring (cold path, not timed)
  RoomWaiter wait_for_room(state.range(0) != 0);
  const Stats before = g_producer.client->stats();
  run_timed_batches(
      state, [&counter]() noexcept { return counter.add(1.0); }, wait_for_room);
  report_outcomes(state, before);
}
BENCHMARK(BM_ProducerCounterPush)
    ->Setup(setup_drained_producer)
    ->Teardown(teardown_producer)
    ->Apply(single_producer_modes)
    ->UseRealTime();

// The same push with Timestamps::kCollector: no clock read, the collector stamps the drain time.
void BM_ProducerCounterPushUnstamped(benchmark::State& state) { BM_ProducerCounterPush(state); }
BENCHMARK(BM_ProducerCounterPushUnstamped)
    ->Setup(setup_drained_unstamped_producer)
    ->Teardown(teardown_producer)
    ->ArgNames({"wait_for_room", "poll_gap_us", "placement"})
    ->Args({1, 0, kSameCore})
    ->Args({1, 0, kSplit})
    ->UseRealTime();
BENCHMARK(BM_ProducerCounterPush)
    ->Setup(setup_drained_producer)
    ->Teardown(teardown_producer)
    ->Apply(os_placed_modes)
    ->Threads(1)
    ->Threads(2)
    ->Threads(4)
    ->UseRealTime();

// Dynamic path: name and tags hashed and looked up in the thread's intern table on every push.
void BM_ProducerDynamicCount(benchmark::State& state) {
  if (!g_producer.error.empty()) {
    state.SkipWithError(g_producer.error.c_str());
    return;
  }
  const ScopedPin pin(producer_cpu(placement_of(state)));
  Client& client = *g_producer.client;
  (void)client.count("api.requests", 1.0, {{"route", "/x"}, {"code", "200"}});  // interns
  RoomWaiter wait_for_room(state.range(0) != 0);
  const Stats before = client.stats();
  run_timed_batches(
      state,
      [&client]() noexcept {
        return client.count("api.requests", 1.0, {{"route", "/x"}, {"code", "200"}});
      },
      wait_for_room);
  report_outcomes(state, before);
}
BENCHMARK(BM_ProducerDynamicCount)
    ->Setup(setup_drained_producer)
    ->Teardown(teardown_producer)
    ->ArgNames({"wait_for_room", "poll_gap_us", "placement"})
    ->Args({1, 0, kSplit})
    ->Args({1, 0, kSameCore})
    ->UseRealTime();
// Each thread interns the series in its own table on its first call, so threads share nothing
// but the consumer; the same modes as the handle push.
BENCHMARK(BM_ProducerDynamicCount)
    ->Setup(setup_drained_producer)
    ->Teardown(teardown_producer)
    ->Apply(os_placed_modes)
    ->Threads(1)
    ->Threads(2)
    ->Threads(4)
    ->UseRealTime();

// The overflow path: no consumer, the ring is filled before the loop and stays full, so every
// timed push takes the full-ring branch of `overflow`.
void full_ring_push(benchmark::State& state, Overflow overflow) {
  if (!g_producer.error.empty()) {
    state.SkipWithError(g_producer.error.c_str());
    return;
  }
  Counter counter = g_producer.counter.with_overflow(overflow);
  for (std::uint32_t i = 0; i <= kQueueCapacity; ++i) (void)counter.add(1.0);  // fill the ring
  const Stats before = g_producer.client->stats();
  run_timed_batches(state, [&counter]() noexcept { return counter.add(1.0); });
  report_outcomes(state, before);
}

void BM_ProducerPushFullRingFold(benchmark::State& state) {
  full_ring_push(state, Overflow::kFold);
}
BENCHMARK(BM_ProducerPushFullRingFold)
    ->Setup(setup_undrained_producer)
    ->Teardown(teardown_producer)
    ->UseRealTime();

void BM_ProducerPushFullRingDrop(benchmark::State& state) {
  full_ring_push(state, Overflow::kDropNewest);
}
BENCHMARK(BM_ProducerPushFullRingDrop)
    ->Setup(setup_undrained_producer)
    ->Teardown(teardown_producer)
    ->UseRealTime();

// ---- baseline: boost::lockfree::spsc_queue of the same 32-byte events -------------------------

using SpscQueue =
    boost::lockfree::spsc_queue<shm::Event, boost::lockfree::capacity<kQueueCapacity>>;

struct SpscEnv {
  std::unique_ptr<SpscQueue> queue;
  BackgroundConsumer consumer;
};
SpscEnv g_spsc;

void setup_spsc(const benchmark::State& state) {
  g_spsc.queue = std::make_unique<SpscQueue>();
  auto out = std::make_shared<std::vector<shm::Event>>(kPollBatch);
  SpscQueue* queue = g_spsc.queue.get();
  g_spsc.consumer.start(
      [queue, out] {
        std::size_t got = 0;
        for (std::size_t n = 1; n != 0; got += n) n = queue->pop(out->data(), out->size());
        return got;
      },
      state.range(1), consumer_cpu(placement_of(state)));
}

void teardown_spsc(const benchmark::State&) {
  g_spsc.consumer.stop();
  g_spsc.queue.reset();
}

// The same work as a handle push: build the event, timestamp it with the TSC, enqueue it.
// Arguments as for the single-producer BM_ProducerCounterPush; a push into a full queue fails.
void BM_SpscQueuePush(benchmark::State& state) {
  const ScopedPin pin(producer_cpu(placement_of(state)));
  SpscQueue& queue = *g_spsc.queue;
  const bool wait = state.range(0) != 0;
  run_timed_batches(
      state,
      [&queue]() noexcept {
        shm::Event ev{};
        ev.kind = static_cast<std::uint8_t>(shm::Kind::kCounter);
        ev.sample_rate = 1.0F;
        ev.value = 1.0;
        ev.ts = shm::now_ticks();
        return queue.push(ev);
      },
      [&queue, wait] {
        if (wait) wait_until([&queue] { return queue.write_available() >= kBatchSize; });
      });
}
BENCHMARK(BM_SpscQueuePush)
    ->Setup(setup_spsc)
    ->Teardown(teardown_spsc)
    ->Apply(single_producer_modes)
    ->UseRealTime();

// ---- baselines: StatsD clients ------------------------------------------------------------------

// Formatting is part of what a client pays per metric: name, value, type and tags.
constexpr std::size_t kMaxStatsdLine = 128;
std::size_t format_statsd_line(char (&line)[kMaxStatsdLine]) noexcept {
  static constexpr std::string_view kName = "api.requests:";
  static constexpr std::string_view kTail = "|c|#route:/x,code:200";
  std::memcpy(line, kName.data(), kName.size());
  char* p = std::to_chars(line + kName.size(), line + 64, 1).ptr;
  std::memcpy(p, kTail.data(), kTail.size());
  return static_cast<std::size_t>(p - line) + kTail.size();
}

// A StatsD agent's socket (the receiver) and a client's unconnected socket (the sender), over
// loopback UDP or a Unix datagram socket. One run at a time uses it (Setup/Teardown).
struct DatagramPeer {
  int receiver = -1;
  int sender = -1;
  sockaddr_storage to{};
  socklen_t to_len = 0;
  std::string unix_path;  // non-empty: a socket file to remove
  BackgroundConsumer drainer;
  std::string error;
};
DatagramPeer g_peer;

void close_peer() {
  g_peer.drainer.stop();
  if (g_peer.receiver >= 0) ::close(g_peer.receiver);
  if (g_peer.sender >= 0) ::close(g_peer.sender);
  g_peer.receiver = -1;
  g_peer.sender = -1;
  if (!g_peer.unix_path.empty()) (void)::unlink(g_peer.unix_path.c_str());
  g_peer.unix_path.clear();
}

// Binds the receiver (127.0.0.1 port 0, or a socket file named for the pid, as an agent's
// /var/run socket is a path that every sendto looks up) and makes the sender. With `drain` a
// thread receives every datagram (a StatsD agent); without, they stay in the receiver's buffer:
// once it is full, UDP drops them on arrival (sendto still succeeds) and a Unix socket holds
// the sender back (BM_StatsdSendtoUnix).
void open_peer(int family, bool drain) {
  g_peer.error.clear();
  g_peer.to = sockaddr_storage{};
  g_peer.receiver = ::socket(family, SOCK_DGRAM, 0);
  g_peer.sender = ::socket(family, SOCK_DGRAM, 0);
  auto* to = reinterpret_cast<sockaddr*>(&g_peer.to);
  if (family == AF_UNIX) {
    auto* un = reinterpret_cast<sockaddr_un*>(&g_peer.to);
    un->sun_family = AF_UNIX;
    const std::string path = "/tmp/" + bench_prefix() + ".statsd.sock";
    std::memcpy(un->sun_path, path.c_str(), path.size() + 1);  // fits: "/tmp/bench<pid>..."
    g_peer.to_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    (void)::unlink(path.c_str());  // left by a run that was killed
    g_peer.unix_path = path;
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&g_peer.to);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in->sin_port = 0;
    g_peer.to_len = sizeof(sockaddr_in);
  }
  if (g_peer.receiver < 0 || g_peer.sender < 0 || ::bind(g_peer.receiver, to, g_peer.to_len) != 0 ||
      (family == AF_INET && ::getsockname(g_peer.receiver, to, &g_peer.to_len) != 0)) {
    g_peer.error = "datagram socket setup: " + std::system_category().message(errno);
    close_peer();
    return;
  }
  if (!drain) return;
  const int fd = g_peer.receiver;
  g_peer.drainer.start([fd] {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 1) <= 0) return std::size_t{0};  // 1 ms, so stop() is prompt
    std::size_t got = 0;
    char buf[2048];  // a buffered client's datagram is up to 1432 bytes
    while (::recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) ++got;
    return got;
  });
}

// range(0) = drain (see open_peer).
void setup_udp(const benchmark::State& state) { open_peer(AF_INET, state.range(0) != 0); }
void setup_unix(const benchmark::State& state) { open_peer(AF_UNIX, state.range(0) != 0); }
void teardown_peer(const benchmark::State&) { close_peer(); }

// A naive client: one sendto of one line per metric.
void sendto_per_metric(benchmark::State& state, int flags) {
  if (!g_peer.error.empty()) {
    state.SkipWithError(g_peer.error.c_str());
    return;
  }
  const int fd = g_peer.sender;
  const auto* to = reinterpret_cast<const sockaddr*>(&g_peer.to);
  const socklen_t to_len = g_peer.to_len;
  run_timed_batches(state, [fd, to, to_len, flags]() noexcept {
    char line[kMaxStatsdLine];
    const std::size_t size = format_statsd_line(line);
    return ::sendto(fd, line, size, flags, to, to_len) == static_cast<ssize_t>(size);
  });
}

void BM_StatsdSendtoUdp(benchmark::State& state) { sendto_per_metric(state, 0); }
BENCHMARK(BM_StatsdSendtoUdp)
    ->Setup(setup_udp)
    ->Teardown(teardown_peer)
    ->ArgNames({"drain"})
    ->Arg(1)
    ->Arg(0)
    ->UseRealTime();

// Unlike UDP, a Unix datagram socket has flow control: once the receiver has
// net.unix.max_dgram_qlen datagrams queued (10 by default) a send blocks until it reads one.
// With drain:1 the send blocks, so every metric is delivered and its cost includes the waits for
// the agent; with drain:0 it would block forever, so it is made with MSG_DONTWAIT and, once the
// queue is full, every send is refused (EAGAIN; failed_frac), as in a client that must not stall.
void BM_StatsdSendtoUnix(benchmark::State& state) {
  sendto_per_metric(state, state.range(0) != 0 ? 0 : MSG_DONTWAIT);
}
BENCHMARK(BM_StatsdSendtoUnix)
    ->Setup(setup_unix)
    ->Teardown(teardown_peer)
    ->ArgNames({"drain"})
    ->Arg(1)
    ->Arg(0)
    ->UseRealTime();

// A buffered client shared by the service's threads: each line is formatted on the caller's
// stack, then appended under one mutex to a buffer of one DogStatsD payload; the call whose line
// would not fit sends the buffer (sendto, still under the mutex, as the simplest such clients
// do) and starts a new one. A push returns false when that sendto failed.
class BufferedStatsdClient {
 public:
  static constexpr std::size_t kPayloadBytes = 1432;  // DogStatsD's default, 1500 MTU with margin

  bool add(std::string_view line) {
    const std::lock_guard lock(mutex_);
    bool sent = true;
    if (used_ != 0 && used_ + 1 + line.size() > kPayloadBytes) {
      sent = ::sendto(g_peer.sender, buffer_.data(), used_, 0,
                      reinterpret_cast<const sockaddr*>(&g_peer.to),
                      g_peer.to_len) == static_cast<ssize_t>(used_);
      used_ = 0;
    }
    if (used_ != 0) buffer_[used_++] = '\n';
    std::memcpy(buffer_.data() + used_, line.data(), line.size());
    used_ += line.size();
    return sent;
  }
  void discard() {
    const std::lock_guard lock(mutex_);
    used_ = 0;
  }

 private:
  std::mutex mutex_;
  std::array<char, kPayloadBytes> buffer_{};
  std::size_t used_ = 0;
};
BufferedStatsdClient g_buffered;

// What a run leaves in the buffer is never sent: the next run starts empty, with its own peer.
void setup_buffered(const benchmark::State& state) {
  g_buffered.discard();
  setup_udp(state);
}

void BM_StatsdBufferedClient(benchmark::State& state) {
  if (!g_peer.error.empty()) {
    state.SkipWithError(g_peer.error.c_str());
    return;
  }
  run_timed_batches(state, [] {
    char line[kMaxStatsdLine];
    const std::size_t size = format_statsd_line(line);
    return g_buffered.add(std::string_view(line, size));
  });
}
BENCHMARK(BM_StatsdBufferedClient)
    ->Setup(setup_buffered)
    ->Teardown(teardown_peer)
    ->ArgNames({"drain"})
    ->Arg(1)
    ->Threads(1)
    ->Threads(2)
    ->Threads(4)
    ->UseRealTime();

// ---- clocks: what one timestamp costs (shm/clock.h) --------------------------------------------

void report_resolution(benchmark::State& state, clockid_t id) {
  timespec res{};
  ::clock_getres(id, &res);
  state.counters["resolution_ns"] =
      static_cast<double>(res.tv_sec) * 1e9 + static_cast<double>(res.tv_nsec);
}

void BM_ClockRdtsc(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(__rdtsc());
}
BENCHMARK(BM_ClockRdtsc);

// The timestamp's share of a push: rdtsc timed like the pushes above (batches of kBatch, same
// percentiles), so its p50 can be set against BM_ProducerCounterPush's.
void BM_ClockRdtscBatched(benchmark::State& state) {
  run_timed_batches(state, []() noexcept {
    benchmark::DoNotOptimize(__rdtsc());
    return true;
  });
}
BENCHMARK(BM_ClockRdtscBatched)->UseRealTime();

void clock_bench(benchmark::State& state, clockid_t id) {
  for (auto _ : state) benchmark::DoNotOptimize(shm::clock_ns(id));
  report_resolution(state, id);
}

void BM_ClockMonotonic(benchmark::State& state) { clock_bench(state, CLOCK_MONOTONIC); }
BENCHMARK(BM_ClockMonotonic);

void BM_ClockMonotonicCoarse(benchmark::State& state) {
  clock_bench(state, CLOCK_MONOTONIC_COARSE);
}
BENCHMARK(BM_ClockMonotonicCoarse);

void BM_ClockRealtime(benchmark::State& state) { clock_bench(state, CLOCK_REALTIME); }
BENCHMARK(BM_ClockRealtime);

}  // namespace
}  // namespace shmstats::bench

BENCHMARK_MAIN();
