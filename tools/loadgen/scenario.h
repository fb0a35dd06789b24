// Load scenarios: shmstats-loadgen --scenario NAME runs the whole pipeline on this host and
// measures it once a second.
//
//   workers (P processes x T threads, paced)  --/dev/shm-->  shmstats-collector  --UDP-->
//   shmstats-recv (JSON Lines to --recv-jsonl, /dev/null by default)
//
// The parent starts the receiver and the collector (real binaries, on 127.0.0.1 with ports picked
// by the kernel and read back from their "listening" lines), then the workers, and once a second
// records one Sample from three independent sources:
//   - the producers' segments, mapped read-only here: pushes, folds, drops by reason, ring fill;
//   - the receiver's and the collector's /metrics: delivered events and folded values, datagrams,
//     the receiver's event-latency histogram (event timestamp to decode), exporter drops;
//   - /proc: CPU and RSS of the collector, the receiver and the workers.
// When the workers are done it waits (bounded) until the collector has reclaimed every segment
// and the receiver's counts are still, stops the collector (SIGTERM: drain and flush) and the
// receiver, and writes <out>/<name>.json (config, samples, totals and the ledger),
// <name>.tsv and <name>.gp, and <name>.png when gnuplot is installed.
//
// The ledger: every push is either refused by the producer (counted by reason in its segment) or
// accepted (entered a ring, or folded into exact totals). Accepted values reach the receiver as
// events or inside aggregates, or are dropped by the collector (counted) or lost on the network
// (visible as the receiver's lost datagrams). `unaccounted` is what none of these explains.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tools/loadgen/loadgen.h"

namespace shmstats::tools::loadgen {

struct ScenarioSpec {
  std::string_view name;
  double rate = 0;  // events/s over every thread
  double duration_s = 0;
  int processes = 1;
  int threads = 1;
  int series = 16;
  std::string_view about;
};

const std::vector<ScenarioSpec>& scenarios();
std::vector<std::string> scenario_names();
const ScenarioSpec* find_scenario(std::string_view name);

// One sample of a Prometheus text page.
struct PromSample {
  std::string name;
  std::string labels;  // the text between the braces, "" without labels
  double value = 0;
};
// Parses the text exposition format; comments and malformed lines are skipped.
std::vector<PromSample> parse_prometheus(std::string_view page);
// Sum of every sample named `name` (any labels); 0 if none.
double prom_sum(const std::vector<PromSample>& samples, std::string_view name);
// The value of label `key` in a label text such as `le="0.5",x="y"`, if present.
std::optional<std::string> prom_label(std::string_view labels, std::string_view key);

// A histogram as (upper bound in seconds, cumulative count) pairs, ascending, the last +inf.
using Cumulative = std::vector<std::pair<double, double>>;
Cumulative prom_histogram(const std::vector<PromSample>& samples, std::string_view bucket_name);
// Bucket counts of `later` minus `earlier` (same bounds; `earlier` may be empty).
Cumulative histogram_delta(const Cumulative& later, const Cumulative& earlier);
// The q-quantile (0..1) in seconds, interpolated linearly inside its bucket; a quantile that
// falls in the +inf bucket is reported as the last finite bound. nullopt without samples.
std::optional<double> histogram_quantile(const Cumulative& histogram, double q);

// CPU and memory of a process, from /proc/<pid>/stat and /proc/<pid>/status.
struct ProcUsage {
  double cpu_s = 0;  // user + system
  double rss_mb = 0;
  double rss_anon_mb = 0;   // private memory
  double rss_shmem_mb = 0;  // pages of shared mappings (the segments) this process touched
};
std::optional<ProcUsage> read_proc_usage(pid_t pid);

// Runs config.scenario (its fields already applied by parse_args). `exe` is this program, used
// for the workers and to find the collector and receiver next to it. Returns the exit code: 0
// when the run completed and its files were written, 1 otherwise (one line on stderr).
int run_scenario(const Config& config, const std::string& exe);

}  // namespace shmstats::tools::loadgen
