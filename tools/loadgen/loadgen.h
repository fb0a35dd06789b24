// shmstats-loadgen's library: argument parsing, the series it pushes, the worker (one producer
// process) and the parent that fork/execs the workers, plus the exact accounting between them.
//
// Processes: the parent runs `<exe> --worker --worker-index i ...` P times (posix_spawn of
// /proc/self/exe), each with its stdout on a pipe. A worker creates its own shmstats::Client,
// registers the K series, runs T pushing threads and writes lines to that pipe:
//   progress <events pushed so far>      about every 250 ms, for the parent's progress line
//   result <WorkerReport as JSON>        once, after its threads have joined
//   error <message>                      instead of a result, then it exits 1
// The parent sums the reports (merge) and prints one JSON document (summary_json).
//
// Accounting is exact: every push is tallied by the thread that made it, in plain per-thread
// counters merged after the threads join. Values are multiples of 0.1 and are summed as integer
// tenths, so sums do not depend on the order of additions; JSON shows them as tenths / 10.0.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shm/layout.h"
#include "shm/result.h"

namespace shmstats::tools::loadgen {

inline constexpr int kExitBadArguments = 2;
inline constexpr int kMaxProcesses = 256;
inline constexpr int kMaxThreads = 256;
inline constexpr int kMaxSeries = 4096;  // the producer's default series table
inline constexpr int kShards = 4;

struct Config {
  int processes = 1;
  int threads = 1;
  double rate = 1000;     // events/s over all processes and threads; 0: as fast as possible
  double duration_s = 5;  // ignored when events_per_thread is set
  int series = 4;
  std::uint64_t events_per_thread = 0;  // per thread and series; 0: run for duration_s
  std::string kinds = "mixed";          // mixed (cycle by k) or one kind for every series
  std::string prefix{"shmstats"};
  std::uint32_t ring_capacity = 8192;
  std::uint32_t rings = 16;
  std::string overflow = "default";
  std::uint64_t hold_ms = 0;
  std::string json_out;
  bool worker = false;  // hidden: this process is one of the parent's workers
  int worker_index = 0;
  // Load scenarios (scenario.h): with a name, the parent also runs a collector and a receiver and
  // samples the whole pipeline once a second.
  std::string scenario;
  double scale = 1.0;  // multiplies the scenario's duration
  std::string out_dir = ".";
  std::string collector_bin;  // empty: next to this program, or in the build tree
  std::string recv_bin;
  std::string recv_jsonl = "/dev/null";
  std::vector<std::string> collector_args;  // passed to the collector as they are

  bool operator==(const Config&) const = default;
};

// What parse_args decided: run `config`, or exit with `exit_code` after printing `out` to stdout
// and `err` (one line) to stderr.
struct ParsedArgs {
  std::optional<int> exit_code;
  std::string out;
  std::string err;
  Config config;
};

// Parses the command line (argv[0] is the program). Bad arguments give exit code 2 and one line.
// With --events-per-thread and no --rate, the rate is 0 (unpaced).
ParsedArgs parse_args(int argc, const char* const* argv);

// The arguments after the program name that make a worker run `config` as worker `index`.
std::vector<std::string> worker_args(const Config& config, int index);

struct SeriesSpec {
  std::string name;   // "loadgen.s<k>"
  std::string shard;  // tag shard:<k % 4>
  shm::Kind kind = shm::Kind::kCounter;
};

// The K series: kinds cycle counter, timing, histogram, gauge by k % 4 unless `kinds` names one.
std::vector<SeriesSpec> make_series(const Config& config);

// The value of a thread's round-th push to a series of `kind`, in tenths (value = tenths / 10):
// counters (round % 100) + 1, timings and histograms (round % 1000) / 10, gauges round % 500.
std::uint64_t value_tenths(shm::Kind kind, std::uint64_t round) noexcept;

// Per series, summed over threads (and, once merged, over processes).
struct SeriesTally {
  std::uint64_t pushed = 0;    // push calls made
  std::uint64_t accepted = 0;  // returned true: entered a ring or was folded
  std::uint64_t refused = 0;   // returned false: dropped (counted by reason in the segment)
  std::uint64_t pushed_sum_tenths = 0;
  std::uint64_t accepted_sum_tenths = 0;

  SeriesTally& operator+=(const SeriesTally& other) noexcept;
  bool operator==(const SeriesTally&) const = default;
};

// The producer's own view (shmstats::Client::stats()).
struct ProducerTotals {
  std::uint64_t pushed = 0;  // pushes that reached a ring
  std::uint64_t folded = 0;
  std::uint64_t dropped = 0;
  bool operator==(const ProducerTotals&) const = default;
};

using DropCounts = std::array<std::uint64_t, shm::kDropReasonCount>;

// One worker's result line.
struct WorkerReport {
  int index = 0;
  std::int64_t pid = 0;
  std::string segment;
  double elapsed_s = 0;  // from the first push to the last thread's join
  double push_s = 0;     // time the threads spent inside their batches of pushes, summed
  std::vector<SeriesTally> series;
  ProducerTotals producer;
  DropCounts dropped_by_reason{};  // rings plus segment counters, read from the segment
  bool operator==(const WorkerReport&) const = default;
};

nlohmann::json report_json(const WorkerReport& report);
// Parses a report_json() document; rejects missing fields and wrong types.
shm::Result<WorkerReport> parse_report(std::string_view text);

struct Summary {
  double elapsed_s = 0;
  double push_s = 0;  // summed over every worker thread
  double cpu_s = 0;   // user + system CPU of the worker processes (wait4), 0 if not reaped here
  std::vector<SeriesTally> series;  // index k: series k
  ProducerTotals producer;
  DropCounts dropped_by_reason{};
  std::vector<std::string> segments;  // in worker order
};

// Sums the workers' reports. Every report must have `series_count` series and a distinct index.
shm::Result<Summary> merge(const std::vector<WorkerReport>& reports, std::size_t series_count,
                           double elapsed_s);

// The final document, keys in this order:
//   {"processes","threads","rate","duration_s" (null with events_per_thread),"events_per_thread"
//    (null without),"elapsed_s","series":[{name,tags:{shard},kind,pushed,accepted,refused,
//    accepted_sum,pushed_sum}],"totals":{pushed,accepted,refused,offered_rate},
//    "producer_stats":{pushed,folded,dropped},"dropped_by_reason":{<reason>:n for every reason},
//    "segments":[name...]}
nlohmann::ordered_json summary_json(const Config& config, const Summary& summary);

// Worker mode: pushes as configured and writes the protocol lines to stdout. Returns the exit code.
int run_worker(const Config& config);

// What the parent sees of its running workers, about once a second.
struct WorkerProgress {
  std::uint64_t pushed = 0;   // events pushed so far, over every worker
  std::vector<pid_t> pids;    // workers still running
  bool all_reported = false;  // every worker has sent its result (they only hold segments now)
};

// Runs config.processes workers from `exe` until each has reported and exited, calling `on_tick`
// about once a second, and returns their merged summary. A failed worker is reported on stderr
// (one line each) and makes the result an error.
shm::Result<Summary> run_workers(const Config& config, const std::string& exe,
                                 const std::function<void(const WorkerProgress&)>& on_tick);

// Parent mode: runs config.processes workers from `exe` (normally /proc/self/exe), prints progress
// to stderr once a second and the summary to stdout (and config.json_out). Returns the exit code:
// 0, or 1 with one line per failed worker on stderr.
int run_parent(const Config& config, const std::string& exe);

}  // namespace shmstats::tools::loadgen
