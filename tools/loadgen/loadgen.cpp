#include "tools/loadgen/loadgen.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "shm/segment.h"
#include "shmstats/shmstats.h"
#include "tools/loadgen/scenario.h"

extern char** environ;

namespace shmstats::tools::loadgen {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr std::string_view kProgressPrefix = "progress ";
constexpr std::string_view kResultPrefix = "result ";
constexpr std::string_view kErrorPrefix = "error ";
constexpr auto kWorkerProgressInterval = std::chrono::milliseconds(250);
constexpr auto kParentProgressInterval = std::chrono::seconds(1);
constexpr std::uint64_t kUnpacedBatch = 256;  // pushes between two looks at the clock
constexpr std::uint64_t kMaxPacedBatch = 1024;
constexpr double kPacedBatchesPerSecond = 1000;  // paced threads push in batches ~1 ms apart
constexpr auto kHoldSlice = std::chrono::milliseconds(10);
constexpr std::uint64_t kMaxEventsPerThread = 1'000'000'000'000ULL;
constexpr std::uint64_t kMaxHoldMs = 3'600'000;

// Set by SIGINT/SIGTERM (and, in a worker, by the parent's death): stop pushing, report what was
// pushed, exit cleanly. A lock-free atomic store is async-signal-safe.
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void on_stop_signal(int /*sig*/) { g_stop.store(true, std::memory_order_relaxed); }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  // A second signal takes the default action, so a stuck run can still be interrupted.
  sa.sa_flags = static_cast<int>(SA_RESETHAND);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

std::string one_line(std::string text) {
  for (auto& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

// Writes all of `text` to stdout and flushes; only one thread of a process writes there.
void emit(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

const std::vector<std::string>& overflow_names() {
  static const std::vector<std::string> names = {"default",     "fold",     "drop_newest",
                                                 "drop_oldest", "priority", "sampled"};
  return names;
}

Overflow overflow_of(const std::string& name) {
  const auto& names = overflow_names();
  const auto at = std::find(names.begin(), names.end(), name);
  return at == names.end() ? Overflow::kDefault
                           : static_cast<Overflow>(static_cast<std::uint8_t>(at - names.begin()));
}

shm::SegmentOptions segment_options(const Config& c) {
  shm::SegmentOptions o;
  o.service = "loadgen";
  o.ring_count = c.rings;
  o.ring_capacity = c.ring_capacity;
  o.default_overflow = static_cast<shm::Overflow>(overflow_of(c.overflow));
  o.prefix = c.prefix;
  return o;
}

std::string format_number(double v) { return fmt::format("{}", v); }

double tenths_to_double(std::uint64_t tenths) noexcept {
  return static_cast<double>(tenths) / 10.0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Arguments

ParsedArgs parse_args(int argc, const char* const* argv) {
  ParsedArgs parsed;
  Config& c = parsed.config;
  CLI::App app{
      "Starts P producer processes with T threads each, pushing about R events/s in total over K "
      "series, and prints as JSON exactly what was pushed, accepted and refused per series and "
      "what the producers dropped by reason.",
      "shmstats-loadgen"};
  app.add_option("--processes", c.processes, "Producer processes (1 to 256)")
      ->type_name("P")
      ->check(CLI::Range(1, kMaxProcesses).description(""));
  app.add_option("--threads", c.threads, "Pushing threads per process (1 to 256)")
      ->type_name("T")
      ->check(CLI::Range(1, kMaxThreads).description(""));
  auto* rate =
      app.add_option("--rate", c.rate, "Events per second over all threads; 0: as fast as possible")
          ->type_name("R")
          ->check(CLI::Range(0.0, 1e9).description(""));
  auto* duration = app.add_option("--duration", c.duration_s, "Seconds to push (may be fractional)")
                       ->type_name("S")
                       ->check(CLI::Range(0.001, 86400.0).description(""));
  app.add_option("--series", c.series, "Series pushed to, loadgen.s0 .. loadgen.s<K-1> (1 to 4096)")
      ->type_name("K")
      ->check(CLI::Range(1, kMaxSeries).description(""));
  app.add_option("--events-per-thread", c.events_per_thread,
                 "Instead of --duration: each thread pushes exactly N events to each series, "
                 "round-robin (unpaced unless --rate is given)")
      ->type_name("N")
      ->check(CLI::Range(std::uint64_t{1}, kMaxEventsPerThread).description(""))
      ->excludes(duration);
  app.add_option("--kinds", c.kinds,
                 "mixed: counter, timing, histogram, gauge by k % 4; or one kind for all")
      ->check(CLI::IsMember({"mixed", "counter", "timing", "histogram", "gauge"}));
  app.add_option("--prefix", c.prefix, "Segment name prefix (default shmstats)");
  app.add_option("--ring-capacity", c.ring_capacity, "Events per ring, a power of two");
  app.add_option("--rings", c.rings, "Rings per segment (threads beyond them fold)");
  app.add_option("--overflow", c.overflow, "Strategy when a ring is full")
      ->check(CLI::IsMember(overflow_names()));
  app.add_option("--hold-ms", c.hold_ms,
                 "Keep each segment open this long after pushing (for a collector to drain)")
      ->type_name("MS")
      ->check(CLI::Range(std::uint64_t{0}, kMaxHoldMs).description(""));
  app.add_option("--json-out", c.json_out, "Also write the final JSON to FILE")->type_name("FILE");
  auto* scenario =
      app.add_option("--scenario", c.scenario,
                     "Run a load scenario against a real collector and receiver: baseline, high, "
                     "stress, burst or segments (see --help of each in README.md)")
          ->check(CLI::IsMember(scenario_names()));
  app.add_option("--scale", c.scale, "With --scenario: multiply its duration by F (e.g. 0.05)")
      ->type_name("F")
      ->check(CLI::Range(0.001, 100.0).description(""))
      ->needs(scenario);
  app.add_option("--out-dir", c.out_dir,
                 "With --scenario: where <name>.json, <name>.tsv, <name>.gp and <name>.png go")
      ->type_name("DIR")
      ->needs(scenario);
  app.add_option("--collector", c.collector_bin, "With --scenario: the shmstats-collector binary")
      ->type_name("PATH")
      ->needs(scenario);
  app.add_option("--recv", c.recv_bin, "With --scenario: the shmstats-recv binary")
      ->type_name("PATH")
      ->needs(scenario);
  app.add_option("--recv-jsonl", c.recv_jsonl,
                 "With --scenario: the receiver's JSON Lines output (default /dev/null)")
      ->type_name("FILE")
      ->needs(scenario);
  app.add_option("--collector-arg", c.collector_args,
                 "With --scenario: one more argument for the collector (repeatable)")
      ->type_name("ARG")
      ->allow_extra_args(false)
      ->needs(scenario);
  app.add_flag("--worker", c.worker)->group("");
  app.add_option("--worker-index", c.worker_index)->group("")->check(CLI::NonNegativeNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help
    std::ostringstream out;
    std::ostringstream err;
    parsed.exit_code = app.exit(e, out, err);
    parsed.out = out.str();
    return parsed;
  } catch (const CLI::ParseError& e) {
    parsed.exit_code = kExitBadArguments;
    parsed.err = fmt::format("shmstats-loadgen: {} (see --help)", one_line(e.what()));
    return parsed;
  }
  if (auto checked = shm::check_options(segment_options(c)); !checked) {
    parsed.exit_code = kExitBadArguments;
    parsed.err = fmt::format("shmstats-loadgen: {}", one_line(checked.error().message));
    return parsed;
  }
  if (c.events_per_thread > 0 && rate->count() == 0) c.rate = 0;
  if (!c.scenario.empty()) {
    if (c.events_per_thread > 0) {
      parsed.exit_code = kExitBadArguments;
      parsed.err = "shmstats-loadgen: --scenario runs for a duration; drop --events-per-thread";
      return parsed;
    }
    // The scenario sets what the command line did not.
    const ScenarioSpec& spec = *find_scenario(c.scenario);
    const auto given = [&app](const char* name) { return app.get_option(name)->count() > 0; };
    if (!given("--processes")) c.processes = spec.processes;
    if (!given("--threads")) c.threads = spec.threads;
    if (!given("--rate")) c.rate = spec.rate;
    if (!given("--series")) c.series = spec.series;
    if (!given("--duration")) c.duration_s = spec.duration_s;
    c.duration_s = std::max(c.duration_s * c.scale, 0.2);
  }
  return parsed;
}

std::vector<std::string> worker_args(const Config& c, int index) {
  std::vector<std::string> args = {"--worker",
                                   "--worker-index",
                                   std::to_string(index),
                                   "--processes",
                                   std::to_string(c.processes),
                                   "--threads",
                                   std::to_string(c.threads),
                                   "--rate",
                                   format_number(c.rate),
                                   "--series",
                                   std::to_string(c.series),
                                   "--kinds",
                                   c.kinds,
                                   "--prefix",
                                   c.prefix,
                                   "--ring-capacity",
                                   std::to_string(c.ring_capacity),
                                   "--rings",
                                   std::to_string(c.rings),
                                   "--overflow",
                                   c.overflow,
                                   "--hold-ms",
                                   std::to_string(c.hold_ms)};
  if (c.events_per_thread > 0) {
    args.insert(args.end(), {"--events-per-thread", std::to_string(c.events_per_thread)});
  } else {
    args.insert(args.end(), {"--duration", format_number(c.duration_s)});
  }
  return args;
}

// ---------------------------------------------------------------------------------------------
// Series and values

std::vector<SeriesSpec> make_series(const Config& config) {
  static constexpr std::array<shm::Kind, kShards> kCycle = {
      shm::Kind::kCounter, shm::Kind::kTiming, shm::Kind::kHistogram, shm::Kind::kGauge};
  std::optional<shm::Kind> only;
  for (const auto kind : kCycle) {
    if (config.kinds == shm::to_string(kind)) only = kind;
  }
  std::vector<SeriesSpec> specs;
  specs.reserve(static_cast<std::size_t>(std::max(config.series, 0)));
  for (int k = 0; k < config.series; ++k) {
    SeriesSpec spec;
    spec.name = fmt::format("loadgen.s{}", k);
    spec.shard = std::to_string(k % kShards);
    spec.kind = only ? *only : kCycle[static_cast<std::size_t>(k % kShards)];
    specs.push_back(std::move(spec));
  }
  return specs;
}

std::uint64_t value_tenths(shm::Kind kind, std::uint64_t round) noexcept {
  switch (kind) {
    case shm::Kind::kCounter:
      return (round % 100 + 1) * 10;
    case shm::Kind::kTiming:
    case shm::Kind::kHistogram:
      return round % 1000;
    case shm::Kind::kGauge:
      return (round % 500) * 10;
    case shm::Kind::kGaugeDelta:
    case shm::Kind::kSet:
      break;
  }
  return 10;
}

SeriesTally& SeriesTally::operator+=(const SeriesTally& other) noexcept {
  pushed += other.pushed;
  accepted += other.accepted;
  refused += other.refused;
  pushed_sum_tenths += other.pushed_sum_tenths;
  accepted_sum_tenths += other.accepted_sum_tenths;
  return *this;
}

// ---------------------------------------------------------------------------------------------
// Worker reports

json report_json(const WorkerReport& r) {
  json series = json::array();
  for (const auto& t : r.series) {
    series.push_back({{"pushed", t.pushed},
                      {"accepted", t.accepted},
                      {"refused", t.refused},
                      {"pushed_sum_tenths", t.pushed_sum_tenths},
                      {"accepted_sum_tenths", t.accepted_sum_tenths}});
  }
  return {{"index", r.index},
          {"pid", r.pid},
          {"segment", r.segment},
          {"elapsed_s", r.elapsed_s},
          {"push_s", r.push_s},
          {"series", std::move(series)},
          {"producer",
           {{"pushed", r.producer.pushed},
            {"folded", r.producer.folded},
            {"dropped", r.producer.dropped}}},
          {"dropped_by_reason", r.dropped_by_reason}};
}

namespace {

// Field readers for parse_report: throw std::invalid_argument naming the field.
const json& field(const json& object, const char* key) {
  if (!object.is_object() || !object.contains(key)) {
    throw std::invalid_argument(fmt::format("missing field \"{}\"", key));
  }
  return object.at(key);
}

std::uint64_t u64(const json& object, const char* key) {
  const json& v = field(object, key);
  if (!v.is_number_unsigned()) {
    throw std::invalid_argument(fmt::format("field \"{}\" is not a whole number", key));
  }
  return v.get<std::uint64_t>();
}

}  // namespace

shm::Result<WorkerReport> parse_report(std::string_view text) {
  const json doc = json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded()) {
    return shm::Error{shm::Errc::kInvalidOptions, "worker report is not JSON"};
  }
  try {
    WorkerReport r;
    const json& index = field(doc, "index");
    const json& pid = field(doc, "pid");
    const json& segment = field(doc, "segment");
    const json& elapsed = field(doc, "elapsed_s");
    const json& push_s = field(doc, "push_s");
    if (!index.is_number_integer() || !pid.is_number_integer() || !segment.is_string() ||
        !elapsed.is_number() || !push_s.is_number()) {
      throw std::invalid_argument("index, pid, segment, elapsed_s or push_s has the wrong type");
    }
    r.index = index.get<int>();
    r.pid = pid.get<std::int64_t>();
    r.segment = segment.get<std::string>();
    r.elapsed_s = elapsed.get<double>();
    r.push_s = push_s.get<double>();
    const json& series = field(doc, "series");
    if (!series.is_array()) throw std::invalid_argument("field \"series\" is not an array");
    for (const auto& s : series) {
      r.series.push_back(SeriesTally{u64(s, "pushed"), u64(s, "accepted"), u64(s, "refused"),
                                     u64(s, "pushed_sum_tenths"), u64(s, "accepted_sum_tenths")});
    }
    const json& producer = field(doc, "producer");
    r.producer =
        ProducerTotals{u64(producer, "pushed"), u64(producer, "folded"), u64(producer, "dropped")};
    const json& dropped = field(doc, "dropped_by_reason");
    if (!dropped.is_array() || dropped.size() != shm::kDropReasonCount) {
      throw std::invalid_argument(
          fmt::format("field \"dropped_by_reason\" is not an array of {}", shm::kDropReasonCount));
    }
    for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) {
      if (!dropped[i].is_number_unsigned()) {
        throw std::invalid_argument("field \"dropped_by_reason\" holds a non-count");
      }
      r.dropped_by_reason[i] = dropped[i].get<std::uint64_t>();
    }
    return r;
  } catch (const std::exception& e) {
    return shm::Error{shm::Errc::kInvalidOptions, fmt::format("worker report: {}", e.what())};
  }
}

shm::Result<Summary> merge(const std::vector<WorkerReport>& reports, std::size_t series_count,
                           double elapsed_s) {
  std::vector<const WorkerReport*> ordered;
  for (const auto& r : reports) ordered.push_back(&r);
  std::sort(ordered.begin(), ordered.end(),
            [](const WorkerReport* a, const WorkerReport* b) { return a->index < b->index; });
  Summary s;
  s.elapsed_s = elapsed_s;
  s.series.resize(series_count);
  std::set<int> seen;
  for (const WorkerReport* r : ordered) {
    if (!seen.insert(r->index).second) {
      return shm::Error{shm::Errc::kInvalidOptions,
                        fmt::format("two reports from worker {}", r->index)};
    }
    if (r->series.size() != series_count) {
      return shm::Error{shm::Errc::kInvalidOptions,
                        fmt::format("worker {} reported {} series; expected {}", r->index,
                                    r->series.size(), series_count)};
    }
    for (std::size_t k = 0; k < series_count; ++k) s.series[k] += r->series[k];
    s.push_s += r->push_s;
    s.producer.pushed += r->producer.pushed;
    s.producer.folded += r->producer.folded;
    s.producer.dropped += r->producer.dropped;
    for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) {
      s.dropped_by_reason[i] += r->dropped_by_reason[i];
    }
    s.segments.push_back(r->segment);
  }
  return s;
}

nlohmann::ordered_json summary_json(const Config& config, const Summary& summary) {
  using ojson = nlohmann::ordered_json;
  const auto specs = make_series(config);
  ojson series = ojson::array();
  SeriesTally total;
  for (std::size_t k = 0; k < summary.series.size(); ++k) {
    const SeriesTally& t = summary.series[k];
    total += t;
    ojson entry;
    entry["name"] = k < specs.size() ? specs[k].name : fmt::format("loadgen.s{}", k);
    entry["tags"] = {{"shard", k < specs.size() ? specs[k].shard : std::to_string(k % kShards)}};
    entry["kind"] = k < specs.size() ? shm::to_string(specs[k].kind) : "unknown";
    entry["pushed"] = t.pushed;
    entry["accepted"] = t.accepted;
    entry["refused"] = t.refused;
    entry["accepted_sum"] = tenths_to_double(t.accepted_sum_tenths);
    entry["pushed_sum"] = tenths_to_double(t.pushed_sum_tenths);
    series.push_back(std::move(entry));
  }
  ojson dropped = ojson::object();
  for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) {
    dropped[shm::to_string(static_cast<shm::DropReason>(i))] = summary.dropped_by_reason[i];
  }
  const bool by_events = config.events_per_thread > 0;
  ojson doc;
  doc["processes"] = config.processes;
  doc["threads"] = config.threads;
  doc["rate"] = config.rate;
  doc["duration_s"] = by_events ? ojson(nullptr) : ojson(config.duration_s);
  doc["events_per_thread"] = by_events ? ojson(config.events_per_thread) : ojson(nullptr);
  doc["elapsed_s"] = summary.elapsed_s;
  doc["series"] = std::move(series);
  doc["totals"] = {
      {"pushed", total.pushed},
      {"accepted", total.accepted},
      {"refused", total.refused},
      {"offered_rate",
       summary.elapsed_s > 0 ? static_cast<double>(total.pushed) / summary.elapsed_s : 0.0}};
  doc["producer_stats"] = {{"pushed", summary.producer.pushed},
                           {"folded", summary.producer.folded},
                           {"dropped", summary.producer.dropped}};
  doc["dropped_by_reason"] = std::move(dropped);
  doc["segments"] = summary.segments;
  doc["producer_cpu"] = {{"push_seconds", summary.push_s}, {"cpu_seconds", summary.cpu_s}};
  return doc;
}

// ---------------------------------------------------------------------------------------------
// Worker

namespace {

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
    if (g_stop.load(std::memory_order_relaxed)) break;
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
  options.overflow = overflow_of(config.overflow);
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
      g_stop.store(true, std::memory_order_relaxed);
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
  while (Clock::now() < hold_until && !g_stop.load(std::memory_order_relaxed)) {
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

// ---------------------------------------------------------------------------------------------
// Parent

namespace {

struct WorkerProcess {
  int index = 0;
  pid_t pid = -1;
  int out_fd = -1;
  std::string buffered;
  std::uint64_t progress = 0;
  std::optional<WorkerReport> report;
  std::string error;
  int status = 0;
};

shm::Result<WorkerProcess> spawn_worker(const std::string& exe, const Config& config, int index) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return shm::Error{shm::Errc::kSystem, fmt::format("pipe2: {}", std::strerror(errno))};
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::vector<std::string> argv_store = {"shmstats-loadgen"};
  const auto args = worker_args(config, index);
  argv_store.insert(argv_store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return shm::Error{shm::Errc::kSystem,
                      fmt::format("starting worker {} ({}): {}", index, exe, std::strerror(rc))};
  }
  WorkerProcess w;
  w.index = index;
  w.pid = pid;
  w.out_fd = fds[0];
  return w;
}

void handle_line(WorkerProcess& w, std::string_view line) {
  if (line.starts_with(kProgressPrefix)) {
    w.progress =
        std::strtoull(std::string(line.substr(kProgressPrefix.size())).c_str(), nullptr, 10);
  } else if (line.starts_with(kResultPrefix)) {
    auto report = parse_report(line.substr(kResultPrefix.size()));
    if (report) {
      w.report = std::move(report).value();
    } else {
      w.error = report.error().message;
    }
  } else if (line.starts_with(kErrorPrefix)) {
    w.error = std::string(line.substr(kErrorPrefix.size()));
  }
}

// Reads what is available; false at end of file (or on a read error).
bool read_worker(WorkerProcess& w) {
  char buf[8192];
  const ssize_t n = ::read(w.out_fd, buf, sizeof(buf));
  if (n < 0 && errno == EINTR) return true;
  if (n <= 0) return false;
  w.buffered.append(buf, static_cast<std::size_t>(n));
  std::size_t nl;
  while ((nl = w.buffered.find('\n')) != std::string::npos) {
    handle_line(w, std::string_view(w.buffered).substr(0, nl));
    w.buffered.erase(0, nl + 1);
  }
  return true;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return fmt::format("ended with wait status {}", status);
}

// The once-a-second progress line on stderr: events pushed so far and the rate since the last line.
struct ProgressLine {
  Clock::time_point start;
  Clock::time_point last_at;
  std::uint64_t last_pushed = 0;

  void print(const WorkerProgress& progress, Clock::time_point now) {
    const double dt = std::chrono::duration<double>(now - last_at).count();
    std::fprintf(stderr, "shmstats-loadgen: %.1f s: pushed %llu, offered %.0f events/s\n",
                 std::chrono::duration<double>(now - start).count(),
                 static_cast<unsigned long long>(progress.pushed),
                 dt > 0 ? static_cast<double>(progress.pushed - last_pushed) / dt : 0.0);
    last_pushed = progress.pushed;
    last_at = now;
  }
};

WorkerProgress progress_of(const std::vector<WorkerProcess>& workers) {
  WorkerProgress p;
  p.all_reported = true;
  for (const auto& w : workers) {
    if (w.out_fd >= 0) p.pids.push_back(w.pid);
    if (!w.report) {
      p.all_reported = false;
      p.pushed += w.progress;
      continue;
    }
    for (const auto& t : w.report->series) p.pushed += t.pushed;
  }
  return p;
}

// Waits for the worker; returns its user + system CPU seconds.
double reap(WorkerProcess& w) {
  if (w.out_fd >= 0) {
    ::close(w.out_fd);
    w.out_fd = -1;
  }
  int status = 0;
  rusage usage{};
  while (::wait4(w.pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  w.status = status;
  const auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace

shm::Result<Summary> run_workers(const Config& config, const std::string& exe,
                                 const std::function<void(const WorkerProgress&)>& on_tick) {
  install_stop_handlers();
  const auto start = Clock::now();
  std::vector<WorkerProcess> workers;
  for (int i = 0; i < config.processes; ++i) {
    auto spawned = spawn_worker(exe, config, i);
    if (!spawned) {
      for (auto& w : workers) {
        ::kill(w.pid, SIGTERM);
        (void)reap(w);
      }
      return spawned.error();
    }
    workers.push_back(std::move(spawned).value());
  }

  auto last_result = start;
  auto next_tick = start + kParentProgressInterval;
  bool forwarded_stop = false;
  for (;;) {
    if (g_stop.load(std::memory_order_relaxed) && !forwarded_stop) {
      forwarded_stop = true;
      std::fprintf(stderr, "shmstats-loadgen: stopping early; reporting what was pushed\n");
      for (const auto& w : workers) {
        if (w.out_fd >= 0) ::kill(w.pid, SIGTERM);
      }
    }
    std::vector<pollfd> fds;
    std::vector<WorkerProcess*> polled;
    for (auto& w : workers) {
      if (w.out_fd < 0) continue;
      fds.push_back(pollfd{w.out_fd, POLLIN, 0});
      polled.push_back(&w);
    }
    if (fds.empty()) break;
    const auto wait_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - Clock::now());
    const int ready = ::poll(fds.data(), fds.size(),
                             static_cast<int>(std::max<std::int64_t>(wait_ms.count(), 0)));
    if (ready < 0 && errno != EINTR) {
      throw std::runtime_error(fmt::format("poll: {}", std::strerror(errno)));
    }
    for (std::size_t i = 0; ready > 0 && i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      WorkerProcess& w = *polled[i];
      const bool had_report = w.report.has_value();
      if (!read_worker(w)) {
        ::close(w.out_fd);
        w.out_fd = -1;
      }
      if (!had_report && w.report) last_result = Clock::now();
    }
    const auto now = Clock::now();
    if (now >= next_tick) {
      next_tick += kParentProgressInterval;
      if (on_tick) on_tick(progress_of(workers));
    }
  }

  bool failed = false;
  double cpu_s = 0;
  std::vector<WorkerReport> reports;
  for (auto& w : workers) {
    cpu_s += reap(w);
    const bool clean_exit = WIFEXITED(w.status) && WEXITSTATUS(w.status) == 0;
    if (clean_exit && w.report && w.error.empty()) {
      reports.push_back(*w.report);
      continue;
    }
    failed = true;
    std::string why = !w.error.empty() ? w.error
                      : !clean_exit    ? describe_status(w.status)
                                       : "sent no result";
    if (!w.error.empty() && !clean_exit) why += " (" + describe_status(w.status) + ")";
    std::fprintf(stderr, "shmstats-loadgen: worker %d (pid %d): %s\n", w.index,
                 static_cast<int>(w.pid), one_line(why).c_str());
  }
  if (failed) {
    return shm::Error{shm::Errc::kSystem, "a worker failed (see the lines above)"};
  }
  const double elapsed_s = std::chrono::duration<double>(last_result - start).count();
  auto summary = merge(reports, static_cast<std::size_t>(config.series), elapsed_s);
  if (summary) summary.value().cpu_s = cpu_s;
  return summary;
}

int run_parent(const Config& config, const std::string& exe) {
  const auto start = Clock::now();
  ProgressLine progress{start, start, 0};
  auto summary = run_workers(config, exe, [&progress](const WorkerProgress& p) {
    // Workers that have reported are holding their segments, not pushing: no more lines.
    if (!p.all_reported) progress.print(p, Clock::now());
  });
  if (!summary) {
    std::fprintf(stderr, "shmstats-loadgen: %s\n", summary.error().message.c_str());
    return 1;
  }
  const std::string text = summary_json(config, summary.value()).dump(2) + "\n";
  emit(text);
  if (!config.json_out.empty()) {
    std::ofstream out(config.json_out, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
      std::fprintf(stderr, "shmstats-loadgen: cannot write %s\n", config.json_out.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace shmstats::tools::loadgen
