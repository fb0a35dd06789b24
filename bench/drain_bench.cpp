// The collector's stages, each per event: draining a ring (collector::Source::drain_ring), the
// protobuf datagram encoder (against one datagram per metric), the CRC-32C of a datagram, sending
// datagrams to loopback (one send per datagram against sendmmsg), DogStatsD line formatting, and
// the whole chain from a ring to UDP datagrams on one core.
//
// One item is one event: items_per_second is events per second. Every benchmark also reports
// ns_per_event (wall clock) and, except BM_DrainRing, cpu_ns_per_event (CPU time of the benchmark
// thread) of its timed region, which it measures itself (the library's timer cannot be read from
// inside a benchmark), and allocs_per_event made by the benchmark thread in that region.
//
// Series shapes (`shape`): 0 = typical, "api.requests.latency" (20 bytes) with two tags,
// code:<200 + i> and route:/cart; 1 = worst case, a 200-byte name and 16 tags whose keys and
// values fill the 1024-byte limit of shm/series.h exactly, with a 63-byte service name.
// `series` distinct series of the shape take turns, one event each; with 1 every event is of the
// same series. Values are timings in ms (multiples of 0.125). Synthetic events are 250 ns apart
// (a 2-byte time delta); events pushed into a ring are as close as the filler pushes them
// (~10-20 ns, 1 byte), so the chain packs a few more events per datagram than the encoder alone.
//
// Rings are real /dev/shm segments made by the producer Client (prefix "bench<pid>"), created in
// each run's Setup and unlinked in its Teardown. Sockets are 127.0.0.1, port 0, with a thread that
// receives every datagram. The machine has 2 cores; see each benchmark for where its threads run.
// Benchmarks never assert; a setup that fails skips the benchmark with the reason.
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <snappy.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "bench/bench_util.h"
#include "collector/aggregate/stage.h"
#include "collector/exporter.h"
#include "collector/exporters/dogstatsd/dogstatsd.h"
#include "collector/exporters/prometheus/prometheus.h"
#include "collector/exporters/remote_write/remote_write.h"
#include "collector/exporters/socket.h"
#include "collector/exporters/udp/udp.h"
#include "collector/source.h"
#include "model/metric.h"
#include "proto/datagram.h"
#include "shm/layout.h"
#include "shm/segment.h"
#include "shm/series.h"
#include "shmstats/shmstats.h"

namespace shmstats::bench {
namespace {

constexpr std::size_t kBatchEvents = 4096;  // = DrainOptions::batch_size, the collector's default
constexpr auto kBatchArg = static_cast<std::int64_t>(kBatchEvents);
constexpr std::size_t kMaxDatagram = proto::kMaxDatagramBytesIpv4;
constexpr std::int64_t kEventGapNs = 250;
constexpr std::int64_t kStartUnixNs = 1'795'000'000'000'000'000;  // late 2026
constexpr std::string_view kHost = "web-01.example.net";          // the collector's host field

std::string bench_prefix() { return "bench" + std::to_string(::getpid()); }

// ---- series and events -------------------------------------------------------------------------

enum class Shape : std::int64_t { kTypical = 0, kWorst = 1 };

Shape shape_of(std::int64_t arg) { return arg == 0 ? Shape::kTypical : Shape::kWorst; }

// The `i`th series of a shape, as a collector holds it: tags sorted by key.
model::SeriesDef make_series(Shape shape, std::size_t i) {
  model::SeriesDef def;
  def.kind = shm::Kind::kTiming;
  if (shape == Shape::kTypical) {
    def.service = "checkout";
    def.name = "api.requests.latency";
    def.tags = {{"code", std::to_string(200 + i)}, {"route", "/cart"}};
    return def;
  }
  def.service = std::string(shm::kMaxServiceNameBytes, 's');
  def.name = "worst." + std::to_string(10000 + i) + ".";
  def.name.resize(shm::kMaxNameBytes, 'n');
  // 200 + 16 * 2 length bytes + 8 * 50 + 8 * 49 key and value bytes = 1024.
  for (std::size_t t = 0; t < shm::kMaxTags; ++t) {
    std::string key = "k" + std::to_string(10 + t);
    key.resize(24, 'k');
    std::string value(t < shm::kMaxTags / 2 ? 26 : 25, 'v');
    def.tags.emplace_back(std::move(key), std::move(value));
  }
  return def;
}

// An error message if the shape breaks the series rules ("" if not).
std::string check_series(const model::SeriesDef& def) {
  std::vector<shm::TagView> tags;
  for (const auto& [key, value] : def.tags) tags.push_back({key, value});
  auto valid = shm::validate_series(def.name, tags);
  return valid ? std::string() : "series rules: " + valid.error().message;
}

// Definitions, kept at stable addresses (points and batches point into them).
std::vector<std::shared_ptr<const model::SeriesDef>> make_defs(Shape shape, std::size_t count) {
  std::vector<std::shared_ptr<const model::SeriesDef>> defs;
  for (std::size_t i = 0; i < count; ++i) {
    defs.push_back(std::make_shared<const model::SeriesDef>(make_series(shape, i)));
  }
  return defs;
}

double value_of(std::size_t i) { return 0.125 * static_cast<double>(i % 200); }

std::vector<model::Point> make_points(
    const std::vector<std::shared_ptr<const model::SeriesDef>>& defs, std::size_t count) {
  std::vector<model::Point> points;
  points.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    const model::SeriesDef* def = defs[i % defs.size()].get();
    points.push_back(model::Point{def, def->kind, value_of(i), 1.0F,
                                  kStartUnixNs + static_cast<std::int64_t>(i) * kEventGapNs});
  }
  return points;
}

collector::Batch make_batch(const std::vector<std::shared_ptr<const model::SeriesDef>>& defs,
                            std::size_t count) {
  collector::Batch batch;
  batch.points = make_points(defs, count);
  batch.series.assign(defs.begin(), defs.end());
  return batch;
}

proto::Encoder make_encoder() {
  auto encoder = proto::Encoder::create(1, 1, kMaxDatagram, std::string(kHost));
  return std::move(encoder).value();  // the arguments are constants within the limits
}

// Events in one encoded datagram, read back with the receiver's decoder (0 if it does not decode).
std::size_t events_in(const std::string& datagram) {
  proto::DecodedDatagram decoded;
  proto::DecodeFailure failure;
  const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(datagram.data()),
                                            datagram.size());
  return proto::decode(bytes, decoded, failure) ? decoded.points.size() : 0;
}

// Full datagrams of the typical series (one series, every event of it), encoded once.
struct TypicalPacking {
  std::vector<std::string> datagrams;  // all full: the partial last one is left out
  std::size_t events_per_datagram = 0;
};
const TypicalPacking& typical_packing() {
  static const TypicalPacking packing = [] {
    TypicalPacking p;
    const auto defs = make_defs(Shape::kTypical, 1);
    const auto points = make_points(defs, kBatchEvents * 4);
    proto::Encoder encoder = make_encoder();
    (void)encoder.encode(points, {}, kStartUnixNs, p.datagrams);
    if (!p.datagrams.empty()) p.datagrams.pop_back();
    if (!p.datagrams.empty()) p.events_per_datagram = events_in(p.datagrams.front());
    return p;
  }();
  return packing;
}

// ---- measuring ---------------------------------------------------------------------------------

std::uint64_t clock_now_ns(clockid_t id) noexcept {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000U +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// Wall-clock and thread CPU time, and allocations, of the timed region (one start/stop pair around
// the loop, or one per iteration). The CPU clock is a system call (~0.1-0.5 us): per iteration it
// is used only where an iteration takes hundreds of microseconds.
class RegionTimer {
 public:
  void start() noexcept {
    allocs_at_start_ = alloc_count();
    cpu_at_start_ = clock_now_ns(CLOCK_THREAD_CPUTIME_ID);
    wall_at_start_ = clock_now_ns(CLOCK_MONOTONIC);
  }
  void stop() noexcept {
    wall_ns_ += clock_now_ns(CLOCK_MONOTONIC) - wall_at_start_;
    cpu_ns_ += clock_now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_at_start_;
    allocs_ += alloc_count() - allocs_at_start_;
  }
  // Sets items processed (events) and the per-event counters.
  void report(benchmark::State& state, std::uint64_t events) const {
    state.SetItemsProcessed(static_cast<std::int64_t>(events));
    if (events == 0) return;
    const auto n = static_cast<double>(events);
    state.counters["ns_per_event"] = static_cast<double>(wall_ns_) / n;
    state.counters["cpu_ns_per_event"] = static_cast<double>(cpu_ns_) / n;
    state.counters["allocs_per_event"] = static_cast<double>(allocs_) / n;
  }
  std::uint64_t wall_ns() const noexcept { return wall_ns_; }
  std::uint64_t cpu_ns() const noexcept { return cpu_ns_; }

 private:
  std::uint64_t allocs_at_start_ = 0;
  std::uint64_t cpu_at_start_ = 0;
  std::uint64_t wall_at_start_ = 0;
  std::uint64_t wall_ns_ = 0;
  std::uint64_t cpu_ns_ = 0;
  std::uint64_t allocs_ = 0;
};

const collector::ClockMap& clock_map() {
  static const collector::ClockMap map = collector::ClockMap::calibrate();
  return map;
}

// ---- a producer thread that fills its ring on request ------------------------------------------

// A thread with a ring of its own in a real segment. fill(n) makes it push n timing events,
// round-robin over its series, and returns when they are all in the ring, so the drain side finds
// them waiting. Both sides block (futex) rather than spin while they wait, so a filler pinned to
// the drain's own CPU takes no time from the drain.
class RingFiller {
 public:
  RingFiller() = default;
  RingFiller(const RingFiller&) = delete;
  RingFiller& operator=(const RingFiller&) = delete;
  ~RingFiller() { stop(); }

  // Creates the Client and `series` series of `shape`, starts the thread on `cpu` (-1: not
  // pinned) and waits for its first push, which claims its ring. Returns an error or "".
  std::string start(Shape shape, std::size_t series, int cpu) {
    Options options;
    options.service = "checkout";
    options.shm_prefix = bench_prefix();
    options.read_environment = false;  // the geometry must not change under the benchmark
    auto client = Client::create(options);
    if (!client) return "Client::create: " + client.error().message;
    client_.emplace(std::move(client).value());
    for (std::size_t i = 0; i < series; ++i) {
      const model::SeriesDef def = make_series(shape, i);
      std::vector<Tag> tags;
      for (const auto& [key, value] : def.tags) tags.push_back({key, value});
      auto timing = client_->timing(def.name, tags);
      if (!timing) return "Client::timing: " + timing.error().message;
      handles_.push_back(timing.value());
    }
    requested_.store(0, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    tid_.store(0, std::memory_order_relaxed);
    thread_ = std::thread([this, cpu] { run(cpu); });
    // acquire: pairs with the release store of tid_ after the thread's first push.
    for (auto tid = tid_.load(std::memory_order_acquire); tid == 0;
         tid = tid_.load(std::memory_order_acquire)) {
      tid_.wait(tid, std::memory_order_acquire);
    }
    return {};
  }

  void fill(std::size_t n) noexcept {
    count_.store(n, std::memory_order_relaxed);
    const std::uint64_t request = ++requests_;
    // release: publishes count_; pairs with the acquire load in run().
    requested_.store(request, std::memory_order_release);
    requested_.notify_one();
    // acquire: the thread's pushes (and their release of the ring's tail) happen before this.
    for (auto done = done_.load(std::memory_order_acquire); done != request;
         done = done_.load(std::memory_order_acquire)) {
      done_.wait(done, std::memory_order_acquire);
    }
  }

  void stop() {
    if (thread_.joinable()) {
      requested_.store(kStop, std::memory_order_release);
      requested_.notify_one();
      thread_.join();
    }
    handles_.clear();
    client_.reset();  // marks the segment closed; the caller unlinks it
  }

  std::string segment_name() const { return client_ ? client_->segment_name() : std::string(); }
  std::uint64_t tid() const noexcept { return tid_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::uint64_t kStop = ~std::uint64_t{0};

  void run(int cpu) {
    const ScopedPin pin(cpu);
    (void)handles_[0].record_ms(0.0);  // claims this thread's ring (one event the env drains)
    // release: the claimed ring is visible to the thread that reads tid_ with acquire.
    tid_.store(static_cast<std::uint64_t>(::gettid()), std::memory_order_release);
    tid_.notify_one();
    for (std::uint64_t seen = 0;;) {
      requested_.wait(seen, std::memory_order_acquire);
      const std::uint64_t request = requested_.load(std::memory_order_acquire);
      if (request == kStop) return;
      const std::size_t n = count_.load(std::memory_order_relaxed);
      for (std::size_t i = 0; i < n; ++i)
        (void)handles_[i % handles_.size()].record_ms(value_of(i));
      seen = request;
      // release: pairs with the acquire in fill().
      done_.store(request, std::memory_order_release);
      done_.notify_one();
    }
  }

  std::optional<Client> client_;
  std::vector<Timing> handles_;
  std::thread thread_;
  std::uint64_t requests_ = 0;
  std::atomic<std::uint64_t> requested_{0};
  std::atomic<std::uint64_t> done_{0};
  std::atomic<std::size_t> count_{0};
  std::atomic<std::uint64_t> tid_{0};
};

// The ring environment of one run (Setup to Teardown): a filler and the collector's Source over
// the same segment.
struct RingEnv {
  RingFiller filler;
  std::unique_ptr<collector::Source> source;
  std::uint32_t ring = 0;
  std::uint64_t batch_id = 0;
  std::string error;
};
RingEnv g_ring;

void unlink_bench_segments() {
  for (const auto& name : shm::list_segments(bench_prefix())) (void)shm::unlink_segment(name);
}

void close_ring_env() {
  g_ring.source.reset();
  g_ring.filler.stop();
  unlink_bench_segments();
}

void open_ring_env(Shape shape, std::size_t series, int filler_cpu) {
  g_ring.error = g_ring.filler.start(shape, series, filler_cpu);
  if (!g_ring.error.empty()) return;
  const std::string name = g_ring.filler.segment_name();
  auto source = collector::Source::open(name, collector::AttachPolicy{});
  if (!source) {
    g_ring.error = "Source::open: " + source.error().message;
    return;
  }
  g_ring.source = std::move(source).value();
  // The ring the filler's thread claimed: the Source does not say which rings have owners.
  auto view = shm::Segment::attach(name, shm::Segment::Access::kReadOnly);
  if (!view) {
    g_ring.error = "Segment::attach: " + view.error().message;
    return;
  }
  const shm::Segment& seg = view.value();
  bool found = false;
  for (std::uint32_t i = 0; i < seg.geometry().ring_count && !found; ++i) {
    if (seg.ring_header(i).owner_tid.load(std::memory_order_relaxed) == g_ring.filler.tid()) {
      g_ring.ring = i;
      found = true;
    }
  }
  if (!found) {
    g_ring.error = "the filler's ring was not found";
    return;
  }
  collector::Batch discard;  // the claiming push
  (void)g_ring.source->drain_ring(g_ring.ring, kBatchEvents, clock_map(), ++g_ring.batch_id,
                                  discard);
}

// Where the filler runs; the drain runs on CPU 0. kSameCore: the ring's lines are in the drain
// core's cache when it reads them. kSplit: they come from the other core's cache, as in a
// collector draining producers that run elsewhere.
int filler_cpu(Placement placement) { return placement == Placement::kSplit ? 1 : 0; }

// ---- a loopback receiver -----------------------------------------------------------------------

// A UDP socket on 127.0.0.1 (port 0) and a thread that receives every datagram, as
// shmstats-recv or a StatsD agent would. Made inside a benchmark function (not in Setup) so that
// the datagrams it received are known before the function reports.
class LoopbackReceiver {
 public:
  LoopbackReceiver() = default;
  LoopbackReceiver(const LoopbackReceiver&) = delete;
  LoopbackReceiver& operator=(const LoopbackReceiver&) = delete;
  ~LoopbackReceiver() { (void)stop(); }

  // Returns an error or "". The thread runs on `cpu` (-1: not pinned).
  std::string start(int cpu) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    // A large buffer (capped by net.core.rmem_max) absorbs the bursts of a batch's datagrams.
    const int rcvbuf = 4 << 20;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) != 0) {
      return "receiver socket: " + std::system_category().message(errno);
    }
    port_ = ntohs(addr.sin_port);
    auto buffers = std::make_shared<Buffers>();
    for (std::size_t i = 0; i < kRecvBatch; ++i) {
      buffers->iov[i] = iovec{buffers->bytes.data() + i * kRecvBytes, kRecvBytes};
      buffers->msgs[i].msg_hdr.msg_iov = &buffers->iov[i];
      buffers->msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const int fd = fd_;
    drainer_.start(
        [fd, buffers] {
          pollfd pfd{fd, POLLIN, 0};
          if (::poll(&pfd, 1, 1) <= 0) return std::size_t{0};  // 1 ms, so stop() is prompt
          std::size_t got = 0;
          for (;;) {
            const int n = ::recvmmsg(fd, buffers->msgs.data(), kRecvBatch, MSG_DONTWAIT, nullptr);
            if (n <= 0) return got;
            got += static_cast<std::size_t>(n);
          }
        },
        0, cpu);
    return {};
  }

  std::string destination() const { return "127.0.0.1:" + std::to_string(port_); }

  // Stops the thread and closes the socket; returns the datagrams received.
  std::uint64_t stop() {
    const std::uint64_t received = drainer_.stop();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return received;
  }

 private:
  static constexpr unsigned kRecvBatch = 64;       // datagrams per recvmmsg
  static constexpr std::size_t kRecvBytes = 2048;  // > any datagram sent here
  struct Buffers {
    std::vector<char> bytes = std::vector<char>(kRecvBatch * kRecvBytes);
    std::vector<iovec> iov = std::vector<iovec>(kRecvBatch);
    std::vector<mmsghdr> msgs = std::vector<mmsghdr>(kRecvBatch);
  };

  int fd_ = -1;
  std::uint16_t port_ = 0;
  BackgroundConsumer drainer_;
};

// ---- BM_DrainRing ------------------------------------------------------------------------------

void setup_drain(const benchmark::State& state) {
  open_ring_env(Shape::kTypical, 1, filler_cpu(static_cast<Placement>(state.range(1))));
}
void teardown_ring(const benchmark::State&) { close_ring_env(); }

// Source::drain_ring of `events` waiting events into a reused batch (its capacity kept, as the
// collector reserves each batch). Manual time: each iteration first refills the ring (untimed),
// then times the one drain_ring call with the steady clock, which costs ~25 ns against the
// microseconds of a drain; PauseTiming would add its own ~1 us to every drain. The CPU column of
// this benchmark includes the refills; use the Time column, items_per_second and ns_per_event.
void BM_DrainRing(benchmark::State& state) {
  if (!g_ring.error.empty()) {
    state.SkipWithError(g_ring.error.c_str());
    return;
  }
  const ScopedPin pin(0);
  const auto events = static_cast<std::size_t>(state.range(0));
  collector::Batch batch;
  batch.points.reserve(kBatchEvents);
  batch.series.reserve(1);
  std::uint64_t drained = 0;
  std::uint64_t wall_ns = 0;
  std::uint64_t allocs = 0;
  for (auto _ : state) {
    g_ring.filler.fill(events);
    batch.points.clear();
    batch.series.clear();
    const std::uint64_t allocs_before = alloc_count();
    const auto start = std::chrono::steady_clock::now();
    const collector::DrainResult result =
        g_ring.source->drain_ring(g_ring.ring, events, clock_map(), ++g_ring.batch_id, batch);
    const auto end = std::chrono::steady_clock::now();
    allocs += alloc_count() - allocs_before;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count();
    state.SetIterationTime(static_cast<double>(ns) * 1e-9);
    wall_ns += static_cast<std::uint64_t>(ns);
    drained += result.events;
    if (result.corrupt) {
      state.SkipWithError("the ring was quarantined as corrupt");
      return;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(drained));
  if (drained == 0) return;
  state.counters["ns_per_event"] = static_cast<double>(wall_ns) / static_cast<double>(drained);
  state.counters["allocs_per_event"] = static_cast<double>(allocs) / static_cast<double>(drained);
  // Less than `events` when the filler's pushes did not all reach the ring.
  state.counters["events_per_drain"] =
      static_cast<double>(drained) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_DrainRing)
    ->Setup(setup_drain)
    ->Teardown(teardown_ring)
    ->ArgNames({"events", "placement"})
    ->Args({kBatchArg, static_cast<std::int64_t>(Placement::kSameCore)})
    ->Args({kBatchArg, static_cast<std::int64_t>(Placement::kSplit)})
    ->Args({512, static_cast<std::int64_t>(Placement::kSameCore)})  // DrainOptions::ring_quota
    ->Args({512, static_cast<std::int64_t>(Placement::kSplit)})
    ->UseManualTime();

// ---- BM_DatagramEncode -------------------------------------------------------------------------

// {shape, series, batch}: both shapes, each with one series and with 64 taking turns.
void encode_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "series", "batch"});
  for (const std::int64_t shape : {0, 1}) {
    for (const std::int64_t series : {1, 64}) b->Args({shape, series, kBatchArg});
  }
}

// Sets bytes_per_event (whole datagrams: header, definitions, columns, CRC) and
// events_per_datagram (of the first datagram, full unless the batch fits in one).
void report_packing(benchmark::State& state, const proto::EncodeStats& stats,
                    const std::vector<std::string>& out) {
  if (stats.points == 0 || out.empty()) return;
  state.counters["bytes_per_event"] =
      static_cast<double>(stats.bytes) / static_cast<double>(stats.points);
  state.counters["events_per_datagram"] = static_cast<double>(events_in(out.front()));
  state.counters["datagrams_per_batch"] = static_cast<double>(stats.datagrams);
  state.counters["too_large"] = static_cast<double>(stats.too_large);
}

// The encoder as the UDP exporter runs it: one encode of the whole batch into datagrams of at
// most 1472 bytes (CRC included), the output vector cleared first.
void BM_DatagramEncode(benchmark::State& state) {
  const auto defs = make_defs(shape_of(state.range(0)), static_cast<std::size_t>(state.range(1)));
  if (const std::string error = check_series(*defs.front()); !error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  const auto points = make_points(defs, static_cast<std::size_t>(state.range(2)));
  proto::Encoder encoder = make_encoder();
  std::vector<std::string> out;
  proto::EncodeStats stats;
  RegionTimer timer;
  timer.start();
  for (auto _ : state) {
    out.clear();
    stats = encoder.encode(points, {}, kStartUnixNs, out);
    benchmark::DoNotOptimize(out.data());
  }
  timer.stop();
  timer.report(state, static_cast<std::uint64_t>(state.iterations()) * stats.points);
  report_packing(state, stats, out);
}
BENCHMARK(BM_DatagramEncode)->Apply(encode_args);

// Baseline: one datagram per metric (each point encoded alone, with its series definition).
void BM_DatagramEncodeOnePerMetric(benchmark::State& state) {
  const auto defs = make_defs(shape_of(state.range(0)), static_cast<std::size_t>(state.range(1)));
  if (const std::string error = check_series(*defs.front()); !error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  const auto points = make_points(defs, static_cast<std::size_t>(state.range(2)));
  proto::Encoder encoder = make_encoder();
  std::vector<std::string> out;
  proto::EncodeStats stats;
  RegionTimer timer;
  timer.start();
  for (auto _ : state) {
    out.clear();
    stats = proto::EncodeStats{};
    for (const model::Point& p : points) {
      const proto::EncodeStats one = encoder.encode(std::span(&p, 1), {}, kStartUnixNs, out);
      stats.points += one.points;
      stats.bytes += one.bytes;
      stats.datagrams += one.datagrams;
      stats.too_large += one.too_large;
    }
    benchmark::DoNotOptimize(out.data());
  }
  timer.stop();
  timer.report(state, static_cast<std::uint64_t>(state.iterations()) * stats.points);
  report_packing(state, stats, out);
}
BENCHMARK(BM_DatagramEncodeOnePerMetric)->Apply(encode_args);

// ---- BM_Crc32c ---------------------------------------------------------------------------------

// proto::crc32c over one 1472-byte datagram. Items are the events such a datagram holds at the
// typical packing (typical_packing()), so ns_per_event is the CRC's share of an event.
// impl: 0 = the table-driven Boost.CRC (the baseline), 1 = what proto::crc32c uses (the SSE 4.2
// instruction where the CPU has it).
void BM_Crc32c(benchmark::State& state) {
  const bool table = state.range(0) == 0;
  const TypicalPacking& packing = typical_packing();
  if (packing.datagrams.empty() || packing.events_per_datagram == 0) {
    state.SkipWithError("the typical datagram did not encode");
    return;
  }
  std::string datagram = packing.datagrams.front();
  datagram.resize(kMaxDatagram, '\0');
  RegionTimer timer;
  timer.start();
  for (auto _ : state) {
    benchmark::DoNotOptimize(table ? proto::detail::crc32c_table(datagram.data(), datagram.size())
                                   : proto::crc32c(datagram.data(), datagram.size()));
  }
  timer.stop();
  const auto iterations = static_cast<std::uint64_t>(state.iterations());
  timer.report(state, iterations * packing.events_per_datagram);
  state.SetBytesProcessed(static_cast<std::int64_t>(iterations * datagram.size()));
  if (iterations == 0) return;
  state.counters["ns_per_datagram"] =
      static_cast<double>(timer.wall_ns()) / static_cast<double>(iterations);
  state.counters["events_per_datagram"] = static_cast<double>(packing.events_per_datagram);
}
BENCHMARK(BM_Crc32c)->ArgNames({"impl"})->Arg(0)->Arg(1);

// ---- BM_DatagramSend ---------------------------------------------------------------------------

// Sends the same 64 pre-encoded typical datagrams (~1.47 KB each) per iteration through a
// connected DatagramSocket to the loopback receiver: mode 0 = send_one (one send(2) each),
// 1 = send_many (sendmmsg, up to 64 per call). The sender runs on CPU 0, the receiver's thread on
// CPU 1. Items are events at the typical packing; datagrams_per_second and ns_per_datagram are
// per datagram. Loopback delivers in the sender's system call, so its CPU time includes the
// receive path up to the receiver's queue. received_frac below 1 means the receiver fell behind
// and the kernel dropped datagrams on arrival (sends still succeed); failed_frac counts sends
// the kernel refused.
void BM_DatagramSend(benchmark::State& state) {
  const TypicalPacking& packing = typical_packing();
  constexpr std::size_t kDatagrams = 64;
  if (packing.datagrams.size() < kDatagrams || packing.events_per_datagram == 0) {
    state.SkipWithError("the typical datagrams did not encode");
    return;
  }
  const std::vector<std::string> datagrams(
      packing.datagrams.begin(),
      packing.datagrams.begin() + static_cast<std::ptrdiff_t>(kDatagrams));
  const ScopedPin pin(0);
  LoopbackReceiver receiver;
  if (const std::string error = receiver.start(1); !error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  auto socket = collector::DatagramSocket::open(receiver.destination());
  if (!socket) {
    state.SkipWithError(("DatagramSocket::open: " + socket.error().message).c_str());
    return;
  }
  collector::DatagramSocket& out = socket.value();
  const bool many = state.range(0) != 0;
  std::uint64_t failed = 0;
  RegionTimer timer;
  timer.start();
  for (auto _ : state) {
    if (many) {
      failed += out.send_many(datagrams).failed;
    } else {
      for (const std::string& d : datagrams) failed += out.send_one(d) != 0 ? 1U : 0U;
    }
  }
  timer.stop();
  const std::uint64_t received = receiver.stop();
  const std::uint64_t sent = static_cast<std::uint64_t>(state.iterations()) * kDatagrams;
  timer.report(state, sent * packing.events_per_datagram);
  if (sent == 0) return;
  const auto sent_d = static_cast<double>(sent);
  state.counters["datagrams_per_second"] = benchmark::Counter(sent_d, benchmark::Counter::kIsRate);
  state.counters["ns_per_datagram"] = static_cast<double>(timer.wall_ns()) / sent_d;
  state.counters["cpu_ns_per_datagram"] = static_cast<double>(timer.cpu_ns()) / sent_d;
  state.counters["failed_frac"] = static_cast<double>(failed) / sent_d;
  state.counters["received_frac"] = static_cast<double>(received) / sent_d;
}
BENCHMARK(BM_DatagramSend)->ArgNames({"mode"})->Arg(0)->Arg(1)->UseRealTime();

// ---- BM_DogStatsdFormat ------------------------------------------------------------------------

// DogStatsdFormatter::format (the DogStatsD exporter's formatting, without the socket) of one
// batch into payloads of at most 1432 bytes, with the service tag added (the exporter's default).
// {shape, series, multi_value}: multi_value packs the values of one series into one line.
void BM_DogStatsdFormat(benchmark::State& state) {
  const auto defs = make_defs(shape_of(state.range(0)), static_cast<std::size_t>(state.range(1)));
  if (const std::string error = check_series(*defs.front()); !error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  const collector::Batch batch = make_batch(defs, kBatchEvents);
  collector::DogStatsdFormatter formatter(collector::kDogStatsdDefaultPayloadBytes, true,
                                          state.range(2) != 0);
  std::vector<std::string> datagrams;
  std::vector<std::uint64_t> events;
  collector::DogStatsdFormatStats stats;
  RegionTimer timer;
  timer.start();
  for (auto _ : state) {
    stats = formatter.format(batch, datagrams, events);
    benchmark::DoNotOptimize(datagrams.data());
  }
  timer.stop();
  timer.report(state, static_cast<std::uint64_t>(state.iterations()) * stats.formatted);
  if (stats.formatted == 0 || datagrams.empty()) return;
  std::size_t bytes = 0;
  for (const std::string& d : datagrams) bytes += d.size();
  state.counters["bytes_per_event"] =
      static_cast<double>(bytes) / static_cast<double>(stats.formatted);
  state.counters["events_per_datagram"] = static_cast<double>(events.front());
  state.counters["datagrams_per_batch"] = static_cast<double>(datagrams.size());
  state.counters["dropped"] = static_cast<double>(stats.dropped());
}
BENCHMARK(BM_DogStatsdFormat)
    ->ArgNames({"shape", "series", "multi_value"})
    ->Args({0, 1, 0})
    ->Args({0, 64, 0})
    ->Args({1, 1, 0})
    ->Args({1, 64, 0})
    ->Args({0, 1, 1})
    ->Args({0, 64, 1});

// ---- BM_CollectorRingsToDatagrams --------------------------------------------------------------

void setup_chain(const benchmark::State& state) {
  open_ring_env(Shape::kTypical, static_cast<std::size_t>(state.range(1)), 1);
}

// The stages of the collector's path on one core, per batch of 4096 events: a new batch with
// its points reserved (as DrainLoop::flush makes one), Source::drain_ring of a full batch from
// the ring, the exporter's send (exporter 0: UdpExporter, encode + CRC + sendmmsg; 1:
// DogStatsdExporter, format + sendmmsg) to the loopback receiver, and freeing the batch. Not
// included: the ExporterRunner's queue hand-off between the drain and exporter threads, the
// drain loop's visits to empty rings, and telemetry.
//
// The collector runs on CPU 0; the filler and the receiver's thread share CPU 1 (the filler is
// idle while the collector works). Each iteration refills the ring with PauseTiming, which costs
// ~1 us against the ~1 ms of a batch. The benchmark's time is the collector thread's CPU time,
// so items_per_second is events per second of one core; the Time column is wall clock.
void BM_CollectorRingsToDatagrams(benchmark::State& state) {
  if (!g_ring.error.empty()) {
    state.SkipWithError(g_ring.error.c_str());
    return;
  }
  const ScopedPin pin(0);
  LoopbackReceiver receiver;
  if (const std::string error = receiver.start(1); !error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  std::unique_ptr<collector::Exporter> exporter;
  if (state.range(0) == 0) {
    collector::UdpExporterOptions options;
    options.destination = receiver.destination();
    options.sender_id = 1;
    options.sender_epoch = 1;
    options.host = std::string(kHost);
    auto udp = collector::UdpExporter::create(options);
    if (!udp) {
      state.SkipWithError(("UdpExporter::create: " + udp.error().message).c_str());
      return;
    }
    exporter = std::move(udp).value();
  } else {
    collector::DogStatsdOptions options;
    options.destination = receiver.destination();
    auto dogstatsd = collector::DogStatsdExporter::create(options);
    if (!dogstatsd) {
      state.SkipWithError(("DogStatsdExporter::create: " + dogstatsd.error().message).c_str());
      return;
    }
    exporter = std::move(dogstatsd).value();
  }
  std::uint64_t drained = 0;
  collector::SendResult sent;
  RegionTimer timer;
  for (auto _ : state) {
    state.PauseTiming();
    g_ring.filler.fill(kBatchEvents);
    state.ResumeTiming();
    timer.start();
    auto batch = std::make_unique<collector::Batch>();
    batch->points.reserve(kBatchEvents);
    drained +=
        g_ring.source->drain_ring(g_ring.ring, kBatchEvents, clock_map(), ++g_ring.batch_id, *batch)
            .events;
    const collector::SendResult result = exporter->send(*batch);
    batch.reset();
    timer.stop();
    sent.events_sent += result.events_sent;
    sent.events_dropped += result.events_dropped;
    sent.requests += result.requests;
    sent.send_errors += result.send_errors;
  }
  const std::uint64_t received = receiver.stop();
  timer.report(state, drained);
  if (drained == 0 || sent.requests == 0) return;
  state.counters["events_per_datagram"] =
      static_cast<double>(sent.events_sent) / static_cast<double>(sent.requests);
  state.counters["datagrams_per_batch"] =
      static_cast<double>(sent.requests) / static_cast<double>(state.iterations());
  state.counters["dropped_frac"] =
      static_cast<double>(sent.events_dropped) / static_cast<double>(drained);
  state.counters["send_errors"] = static_cast<double>(sent.send_errors);
  state.counters["received_frac"] =
      static_cast<double>(received) / static_cast<double>(sent.requests);
}
BENCHMARK(BM_CollectorRingsToDatagrams)
    ->Setup(setup_chain)
    ->Teardown(teardown_ring)
    ->ArgNames({"exporter", "series"})
    ->Args({0, 1})
    ->Args({0, 64})
    ->Args({1, 1})
    ->Args({1, 64});

// ---- BM_AggregateMerge, BM_AggregateSeriesMemory, BM_PrometheusRender --------------------------

// The aggregation stage (collector/aggregate/stage.h) as the prometheus output runs it: one merge
// of a 4096-event batch of timings (the costliest kind: a bucket search per event) or counters,
// over {series} series of the typical shape. Issue #18's goal: at least 10 M events/s per core.
void BM_AggregateMerge(benchmark::State& state) {
  auto defs = make_defs(Shape::kTypical, static_cast<std::size_t>(state.range(1)));
  if (state.range(0) == 0) {
    for (auto& d : defs) {
      auto counter = std::make_shared<model::SeriesDef>(*d);
      counter->kind = shm::Kind::kCounter;
      d = counter;
    }
  }
  const collector::Batch batch = make_batch(defs, kBatchEvents);
  collector::aggregate::Stage stage({});
  (void)stage.merge(batch);  // the series exist: the steady state is measured
  RegionTimer timer;
  std::size_t merged = 0;
  timer.start();
  for (auto _ : state) {
    merged = stage.merge(batch);
    benchmark::DoNotOptimize(merged);
  }
  timer.stop();
  timer.report(state, static_cast<std::uint64_t>(state.iterations()) * merged);
}
BENCHMARK(BM_AggregateMerge)
    ->ArgNames({"timing", "series"})
    ->Args({0, 1})
    ->Args({0, 64})
    ->Args({1, 1})
    ->Args({1, 64})
    ->Args({1, 4096});

// Heap bytes per series the stage holds (malloc's own count, mallinfo2: definitions, keys,
// buckets, maps), for {series} timings of the typical shape with the 11 default buckets plus
// +Inf. Issue #18's goal: at most 1 KiB per series.
void BM_AggregateSeriesMemory(benchmark::State& state) {
  const auto count = static_cast<std::size_t>(state.range(0));
  double bytes_per_series = 0;
  double estimate_per_series = 0;
  for (auto _ : state) {
    state.PauseTiming();
    // Everything allocated from here on and still held at the end is the stage's: the batch's
    // points and list are freed before the second reading, and the definitions stay alive only
    // because the stage holds them (as it does once their segment is reclaimed).
    const auto before = ::mallinfo2().uordblks;
    auto defs = make_defs(Shape::kTypical, count);
    collector::Batch batch = make_batch(defs, count);
    defs.clear();
    state.ResumeTiming();
    auto stage =
        std::make_unique<collector::aggregate::Stage>(collector::aggregate::StageOptions{});
    (void)stage->merge(batch);
    state.PauseTiming();
    batch = collector::Batch{};
    const auto after = ::mallinfo2().uordblks;
    bytes_per_series = static_cast<double>(after - before) / static_cast<double>(count);
    estimate_per_series =
        static_cast<double>(stage->memory_estimate()) / static_cast<double>(count);
    stage.reset();
    state.ResumeTiming();
  }
  state.counters["bytes_per_series"] = bytes_per_series;
  state.counters["estimate_per_series"] = estimate_per_series;
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_AggregateSeriesMemory)->ArgNames({"series"})->Arg(10000)->Iterations(3);

// One scrape page of {series} timing series (histograms of 12 buckets): the cost a scrape puts on
// the prometheus output's listener thread (the stage is locked meanwhile).
void BM_PrometheusRender(benchmark::State& state) {
  const auto count = static_cast<std::size_t>(state.range(0));
  const auto defs = make_defs(Shape::kTypical, count);
  collector::aggregate::Stage stage({});
  (void)stage.merge(make_batch(defs, count));
  collector::PrometheusOptions options;
  options.view.host = std::string(kHost);
  std::uint64_t hidden[collector::kHiddenReasonCount] = {};
  std::size_t bytes = 0;
  RegionTimer timer;
  timer.start();
  for (auto _ : state) {
    const std::string page = collector::render_page(stage, options, hidden);
    bytes = page.size();
    benchmark::DoNotOptimize(page.data());
  }
  timer.stop();
  timer.report(state, static_cast<std::uint64_t>(state.iterations()) * count);
  state.counters["page_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_PrometheusRender)->ArgNames({"series"})->Arg(1000)->Arg(10000);

// remote_write's cost per interval (collector/exporters/remote_write): every series of the stage
// encoded as WriteRequests and snappy-compressed, as its flush does, for {series} typical series
// of {timing} kind (a timing is 14 samples: 12 buckets, sum, count). Reports ns and compressed
// bytes per sample.
void BM_RemoteWriteEncode(benchmark::State& state) {
  const auto count = static_cast<std::size_t>(state.range(1));
  auto defs = make_defs(Shape::kTypical, count);
  if (state.range(0) == 0) {
    for (auto& d : defs) {
      auto counter = std::make_shared<model::SeriesDef>(*d);
      counter->kind = shm::Kind::kCounter;
      d = counter;
    }
  }
  collector::aggregate::Stage stage({});
  (void)stage.merge(make_batch(defs, count));
  collector::ViewOptions view;
  view.host = std::string(kHost);
  const collector::RemoteWriteOptions defaults;
  std::uint64_t hidden[collector::kHiddenReasonCount] = {};
  std::uint64_t samples = 0;
  std::size_t compressed_bytes = 0;
  std::string compressed;
  RegionTimer timer;
  timer.start();
  for (auto _ : state) {
    samples = 0;
    compressed_bytes = 0;
    for (const auto& request :
         collector::encode_interval(stage, view, kStartUnixNs / 1'000'000, defaults.max_samples,
                                    defaults.max_bytes, hidden)) {
      snappy::Compress(request.body.data(), request.body.size(), &compressed);
      samples += request.samples;
      compressed_bytes += compressed.size();
    }
    benchmark::DoNotOptimize(compressed.data());
  }
  timer.stop();
  timer.report(state, static_cast<std::uint64_t>(state.iterations()) * samples);
  if (samples > 0) {
    state.counters["bytes_per_sample"] =
        static_cast<double>(compressed_bytes) / static_cast<double>(samples);
  }
}
BENCHMARK(BM_RemoteWriteEncode)->ArgNames({"timing", "series"})->Args({0, 1000})->Args({1, 1000});

}  // namespace
}  // namespace shmstats::bench

BENCHMARK_MAIN();
