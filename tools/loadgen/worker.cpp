#include "tools/loadgen/worker.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "shm/segment.h"
#include "shmstats/shmstats.h"
#include "tools/loadgen/protocol.h"
#include "tools/loadgen/report.h"
#include "tools/loadgen/series.h"

namespace shmstats::tools::loadgen {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kWorkerProgressInterval = std::chrono::milliseconds(250);
constexpr std::uint64_t kUnpacedBatch = 256;  // pushes between two looks at the clock
constexpr std::uint64_t kMaxPacedBatch = 1024;
constexpr double kPacedBatchesPerSecond = 1000;  // paced threads push in batches ~1 ms apart
constexpr auto kHoldSlice = std::chrono::milliseconds(10);

// One registered series; the pushing threads each hold a copy (handles are cheap to copy).
struct PushHandle {
  shm::Kind kind = shm::Kind::kCounter;
  Counter counter;
  Timing timing;
  Histogram histogram;
  Gauge gauge;

  [[nodiscard]] bool push(double value) noexcept {
    switch (kind) {
      case shm::Kind::kCounter:
        return counter.add(value);
      case shm::Kind::kTiming:
        return timing.record_ms(value);
      case shm::Kind::kHistogram:
        return histogram.record(value);
      case shm::Kind::kGauge:
        return gauge.set(value);
      case shm::Kind::kGaugeDelta:
      case shm::Kind::kSet:
        break;
    }
    return false;
  }
};

Result<PushHandle> register_series(Client& client, const SeriesSpec& spec) {
  PushHandle h;
  h.kind = spec.kind;
  // A Tags built from a braced list would dangle here; point it at a named Tag instead.
  const Tag shard{"shard", spec.shard};
  const Tags tags(&shard, 1);
  auto take = [](auto result, auto& out) -> std::optional<shmstats::Error> {
    if (!result) return result.error();
    out = result.value();
    return std::nullopt;
  };
  std::optional<shmstats::Error> error;
  switch (spec.kind) {
    case shm::Kind::kCounter:
      error = take(client.counter(spec.name, tags), h.counter);
      break;
    case shm::Kind::kTiming:
      error = take(client.timing(spec.name, tags), h.timing);
      break;
    case shm::Kind::kHistogram:
      error = take(client.histogram(spec.name, tags), h.histogram);
      break;
    case shm::Kind::kGauge:
      error = take(client.gauge(spec.name, tags), h.gauge);
      break;
    case shm::Kind::kGaugeDelta:
    case shm::Kind::kSet:
      error = shmstats::Error{ErrorCode::kKindMismatch, "loadgen pushes no gauge deltas or sets"};
      break;
  }
  if (error) return *error;
  return h;
}

struct PushPlan {
  std::uint64_t events_per_series = 0;  // 0: until the deadline
  double rate = 0;                      // this thread's events/s; 0: unpaced
  Clock::time_point deadline;
};

// Progress counter of one thread, on its own cache line (the worker's main thread reads it).
struct alignas(64) ThreadProgress {
  std::atomic<std::uint64_t> pushed{0};
};

// One pushing thread: round-robin over the series, the round-th push to a series carrying
// value_tenths(kind, round) / 10. Tallies into `tallies` (this thread's own).
void push_loop(const PushPlan& plan, std::vector<PushHandle> handles,
               std::vector<SeriesTally>& tallies, ThreadProgress& progress, double& push_s) {
  const std::size_t series = handles.size();
  const std::uint64_t total = plan.events_per_series * series;  // 0: unbounded
  const bool paced = plan.rate > 0;
  const std::uint64_t batch =
      paced ? std::clamp<std::uint64_t>(
                  static_cast<std::uint64_t>(plan.rate / kPacedBatchesPerSecond), 1, kMaxPacedBatch)
            : kUnpacedBatch;
  const auto period = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(static_cast<double>(batch) / (paced ? plan.rate : 1.0)));
  auto next = Clock::now();
  std::uint64_t pushed = 0;
  std::size_t k = 0;
  std::uint64_t round = 0;
  // The time spent pushing (tallies included), without the pacing sleeps: the producer-side cost
  // the load scenarios report. Two clock reads per batch of up to 1024 pushes.
  Clock::duration busy{};
  for (;;) {
    if (stop_requested()) break;
    if (total == 0 && Clock::now() >= plan.deadline) break;
    const std::uint64_t n = total == 0 ? batch : std::min(batch, total - pushed);
    const auto batch_start = Clock::now();
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::uint64_t tenths = value_tenths(handles[k].kind, round);
      SeriesTally& t = tallies[k];
      ++t.pushed;
      t.pushed_sum_tenths += tenths;
      if (handles[k].push(static_cast<double>(tenths) / 10.0)) {
        ++t.accepted;
        t.accepted_sum_tenths += tenths;
      } else {
        ++t.refused;
      }
      if (++k == series) {
        k = 0;
        ++round;
      }
    }
    busy += Clock::now() - batch_start;
    pushed += n;
    // relaxed: a progress figure for display; the exact tallies are read after join().
    progress.pushed.store(pushed, std::memory_order_relaxed);
    if (total != 0 && pushed >= total) break;
    if (paced) {
      next += period;
      if (total == 0 && next >= plan.deadline) break;
      std::this_thread::sleep_until(next);
    }
  }
  push_s = std::chrono::duration<double>(busy).count();
}

// Drops by reason, summed over the rings and the segment counters, read from the segment itself.
shm::Result<DropCounts> read_drops(const std::string& segment_name) {
  auto segment = shm::Segment::attach(segment_name, shm::Segment::Access::kReadOnly);
  if (!segment) return segment.error();
  DropCounts drops{};
  for (std::uint32_t r = 0; r < segment.value().geometry().ring_count; ++r) {
    const shm::RingStats stats = segment.value().ring_stats(r);
    for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) drops[i] += stats.dropped[i];
  }
  const shm::SegmentCounters counters = segment.value().counters();
  for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) drops[i] += counters.dropped[i];
  return drops;
}

int worker_failed(const std::string& message) {
  emit(fmt::format("{}{}\n", kErrorPrefix, one_line(message)));
  return 1;
}

int run_worker_checked(const Config& config) {
  Options options;
  options.service = "loadgen";
  options.rings = config.rings;
  options.ring_capacity = config.ring_capacity;
  options.overflow = static_cast<Overflow>(overflow_code(config.overflow));
  options.shm_prefix = config.prefix;
  options.read_environment = false;  // the command line is the whole configuration
  auto client = Client::create(options);
  if (!client) return worker_failed("creating the client: " + client.error().message);

  const auto specs = make_series(config);
  std::vector<PushHandle> handles;
  for (const auto& spec : specs) {
    auto handle = register_series(client.value(), spec);
    if (!handle) return worker_failed("registering " + spec.name + ": " + handle.error().message);
    handles.push_back(handle.value());
  }

  const auto threads = static_cast<std::size_t>(config.threads);
  PushPlan plan;
  plan.events_per_series = config.events_per_thread;
  plan.rate = config.rate / (static_cast<double>(config.processes) * config.threads);
  const auto start = Clock::now();
  plan.deadline = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(config.duration_s));

  std::vector<std::vector<SeriesTally>> tallies(threads, std::vector<SeriesTally>(specs.size()));
  std::vector<ThreadProgress> progress(threads);
  std::vector<double> push_s(threads, 0.0);
  std::mutex mutex;
  std::condition_variable all_done;
  std::size_t running = threads;
  {
    std::vector<std::jthread> pushers;  // joined on every way out of this block
    try {
      for (std::size_t t = 0; t < threads; ++t) {
        pushers.emplace_back([&, t] {
          push_loop(plan, handles, tallies[t], progress[t], push_s[t]);
          const std::lock_guard lock(mutex);
          --running;
          all_done.notify_one();
        });
      }
    } catch (...) {
      // The threads already started stop at their next batch and are joined by `pushers`.
      request_stop();
      throw;
    }
    std::unique_lock lock(mutex);
    while (running > 0) {
      all_done.wait_for(lock, kWorkerProgressInterval, [&] { return running == 0; });
      std::uint64_t pushed = 0;
      for (const auto& p : progress) pushed += p.pushed.load(std::memory_order_relaxed);
      if (running > 0) emit(fmt::format("{}{}\n", kProgressPrefix, pushed));
    }
  }
  const auto elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  WorkerReport report;
  report.index = config.worker_index;
  report.pid = ::getpid();
  report.segment = client->segment_name();
  report.elapsed_s = elapsed;
  for (const double s : push_s) report.push_s += s;
  report.series.resize(specs.size());
  for (const auto& per_thread : tallies) {
    for (std::size_t k = 0; k < specs.size(); ++k) report.series[k] += per_thread[k];
  }
  const Stats stats = client->stats();
  report.producer = ProducerTotals{stats.pushed, stats.folded, stats.dropped};
  auto drops = read_drops(report.segment);
  if (!drops) return worker_failed("reading the drop counters: " + drops.error().message);
  report.dropped_by_reason = drops.value();
  emit(fmt::format("{}{}\n", kResultPrefix, report_json(report).dump()));

  const auto hold_until = Clock::now() + std::chrono::milliseconds(config.hold_ms);
  while (Clock::now() < hold_until && !stop_requested()) {
    std::this_thread::sleep_for(std::min<Clock::duration>(kHoldSlice, hold_until - Clock::now()));
  }
  return 0;  // the Client goes out of scope here: the segment is marked closed
}

}  // namespace

int run_worker(const Config& config) {
  install_stop_handlers();
  // A worker outlived by its parent stops as if interrupted (and still closes its segment).
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  try {
    return run_worker_checked(config);
  } catch (const std::exception& e) {
    return worker_failed(e.what());
  }
}

}  // namespace shmstats::tools::loadgen
