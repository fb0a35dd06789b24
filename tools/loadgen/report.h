// The accounting between the workers and the parent: one worker's report (sent as JSON on its
// result line), the parent's sum of them, and the final JSON document.
//
// Accounting is exact: every push is tallied by the thread that made it, in plain per-thread
// counters merged after the threads join. Values are multiples of 0.1 and are summed as integer
// tenths, so sums do not depend on the order of additions; JSON shows them as tenths / 10.0.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "shm/layout.h"
#include "shm/result.h"
#include "tools/loadgen/arguments.h"
#include "tools/loadgen/series.h"

namespace shmstats::tools::loadgen {

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

}  // namespace shmstats::tools::loadgen
