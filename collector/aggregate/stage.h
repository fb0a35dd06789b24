// The aggregation stage: what the aggregating outputs (the Prometheus scrape endpoint today;
// remote-write, OTLP and EMF next) keep per series, built from the drain loop's batches.
//
// Per series (service, name, sorted tags, the series' kind):
//   counter            cumulative total; an increment v with sample rate r adds v / r. A negative
//                      increment would make the total go down, which no counter may: it is dropped
//                      and counted (negative_counter).
//   gauge              the last value; deltas (kGaugeDelta events, or a delta series) are added
//                      in event order.
//   histogram, timing  cumulative count, sum and explicit buckets (a sample with rate r counts
//                      1 / r times), and min/max per interval. Timings arrive in milliseconds and
//                      are kept in seconds (Prometheus and OTLP convention).
//   set                distinct members per interval (the last complete interval is reported).
// Folded aggregates (a producer's count/sum/min/max/last while its ring was full) merge exactly
// into count, sum, min and max; their samples go into the bucket of their mean, an approximation
// counted as placed_at_mean (the true distribution of a folded group is not known).
//
// Intervals: roll() closes one (sets' distinct counts, histograms' min/max, expiry). Series not
// updated for `expiry` are removed at a roll; at most `max_series` series are held, and events of
// further series are refused and counted (cardinality_cap).
//
// Concurrency: not thread-safe. The output that owns a stage serialises merge, roll and reads
// (the Prometheus output takes its mutex for each).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "model/metric.h"
#include "shm/result.h"

namespace shmstats::collector::aggregate {

// Upper bounds of buckets (the +Inf bucket is implied), strictly increasing and finite.
using Bounds = std::vector<double>;

// A rule choosing bounds by series name: `pattern` is a glob with `*` (any run of characters).
struct BucketRule {
  std::string pattern;
  Bounds bounds;
};

// The Prometheus client default: 5 ms to 10 s (for timings, in seconds).
Bounds default_bounds();

// "PATTERN=b1,b2,...;PATTERN=..." -> rules; an error names the rule and the bad bound.
shm::Result<std::vector<BucketRule>> parse_bucket_rules(std::string_view text);
// "b1,b2,..." -> bounds (finite, strictly increasing, 1 to 64 of them).
shm::Result<Bounds> parse_bounds(std::string_view text);
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

struct StageOptions {
  std::chrono::milliseconds expiry{std::chrono::minutes(5)};
  std::size_t max_series = 100000;
  std::size_t max_set_members = 100000;  // distinct members held per set per interval
  Bounds default_bounds = aggregate::default_bounds();
  std::vector<BucketRule> rules;  // first match wins; else default_bounds
};

enum class DropReason : int {
  kNegativeCounter = 0,  // an increment below zero
  kCardinalityCap = 1,   // a new series beyond max_series
  kSetMembersCap = 2,    // a set member beyond max_set_members in one interval
  kUnsupported = 3,      // a folded aggregate of a set (not foldable), or an unknown kind
  kNonFinite = 4,        // a value that is not finite (or turns a total non-finite)
  kCount = 5,
};
inline constexpr std::size_t kDropReasonCount = static_cast<std::size_t>(DropReason::kCount);
const char* to_string(DropReason reason) noexcept;

struct SeriesState {
  std::shared_ptr<const model::SeriesDef> def;  // the first definition seen (content is the key)
  model::Kind kind = model::Kind::kCounter;
  double value = 0;  // counter: total; gauge: current value
  // histogram, timing
  double count = 0;
  double sum = 0;
  std::vector<double> buckets;  // per bound, then +Inf; not cumulative
  const Bounds* bounds = nullptr;
  double interval_min = 0;
  double interval_max = 0;
  bool interval_seen = false;
  double last_min = 0;  // of the last complete interval
  double last_max = 0;
  bool last_seen = false;
  // set
  std::unordered_set<std::uint64_t> members;  // this interval's, as value bits
  std::uint64_t last_distinct = 0;
  // bookkeeping
  std::int64_t last_event_unix_ns = 0;
  std::chrono::steady_clock::time_point updated{};
};

struct StageCounters {
  std::uint64_t events_merged = 0;
  std::uint64_t aggregates_merged = 0;
  std::uint64_t placed_at_mean = 0;  // folded samples put into the bucket of their group's mean
  std::uint64_t series_created = 0;
  std::uint64_t series_expired = 0;
  std::uint64_t dropped[kDropReasonCount] = {};
  std::uint64_t rolls = 0;
};

class Stage {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Stage(StageOptions options);

  // Merges every point and aggregate of the batch; returns how many items were merged (the rest
  // were dropped and counted by reason).
  std::size_t merge(const model::Batch& batch, Clock::time_point now = Clock::now());
  // Closes the current interval: sets report their distinct count, histograms their min/max;
  // series idle for longer than `expiry` are removed.
  void roll(Clock::time_point now = Clock::now());

  // Every series, in no particular order (stable between calls without merge or roll).
  const std::vector<std::unique_ptr<SeriesState>>& series() const noexcept { return series_; }
  const StageCounters& counters() const noexcept { return counters_; }
  const StageOptions& options() const noexcept { return options_; }
  // Approximate bytes held for series state (keys, definitions, buckets, set members).
  std::size_t memory_estimate() const noexcept;

 private:
  SeriesState* state_for(const std::shared_ptr<const model::SeriesDef>& def, Clock::time_point now);
  const Bounds* bounds_for(const std::string& name) const;
  void drop(DropReason reason, std::uint64_t n = 1) noexcept {
    counters_.dropped[static_cast<std::size_t>(reason)] += n;
  }
  void merge_point(SeriesState& s, const model::Point& p);
  void merge_aggregate(SeriesState& s, const model::Aggregate& a);
  static void observe(SeriesState& s, double value, double weight);

  StageOptions options_;
  std::vector<std::unique_ptr<SeriesState>> series_;
  std::unordered_map<std::string, SeriesState*> by_key_;
  // Definitions the drain loop hands out are shared between batches: one lookup by address.
  std::unordered_map<const model::SeriesDef*,
                     std::pair<std::shared_ptr<const model::SeriesDef>, SeriesState*>>
      by_def_;
  StageCounters counters_;
};

}  // namespace shmstats::collector::aggregate
