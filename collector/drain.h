// The drain loop: discovers segments, drains every ring of every segment fairly, seals batches on
// size, age or pressure, hands them to the exporters, reads folded values, and reclaims segments
// whose producer is gone once they are empty.
//
// Fairness: each round visits every ring once and takes at most a quota from it, so one busy
// ring cannot starve the others. Latency: a batch is sealed at most flush_interval after its
// first event joined it (or sooner, when full or under pressure), so an event waits in the
// collector about one idle sleep plus that linger. Adaptation: when a round finds nothing, the loop
// sleeps, from idle_sleep_min doubling up to idle_sleep_max (low latency when traffic resumes,
// little CPU when idle); when a ring is over pressure_fill, quotas grow and the loop does not
// sleep.
//
// Back-pressure: when no exporter has room in its queue, the loop stops draining and leaves the
// events in the rings, where producers keep them (or fold them, exactly) instead of the collector
// dropping whole batches. One slow exporter among healthy ones does not hold the drain back: it
// drops its own batches, counted.
//
// Quarantine: a segment is quarantined when it is refused at attach (foreign owner, group- or
// world-writable, invalid, never ready) or when it turns corrupt later (Source::check: a ring's
// indices break the invariant, an immutable header field changed since attach, state or series
// count out of range, the file truncated). A segment that turns corrupt is not read from again
// and is detached (unmapped) at the next housekeeping pass; what was drained before is forwarded.
// It is never unlinked: its producer may still be alive. Either way it is counted by reason, logged
// (rate-limited) and listed on /health, and not attached again while its file exists.
//
// Concurrency: run() is the drain thread. source_stats() and counters() may be called from any
// thread (telemetry); the stats are a copy refreshed by the drain thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "collector/delivery.h"
#include "collector/discovery.h"
#include "collector/exporter.h"
#include "collector/source.h"
#include "common/rate_limited_log.h"
#include "model/metric.h"

namespace shmstats::collector {

struct DrainOptions {
  std::string prefix = "shmstats";
  std::size_t batch_size = 4096;  // events per batch before it is sealed
  // The longest the first event of a batch waits for more to join it before the batch is sealed
  // (a linger, not a timer): the end-to-end latency budget spent on packing fuller datagrams.
  std::chrono::milliseconds flush_interval{5};
  // How often the fold accumulators of every series are read. Folds only happen while a ring is
  // full, and reading them costs a pass over every registered series, so not every flush.
  std::chrono::milliseconds fold_interval{100};
  std::size_t ring_quota = 512;        // per ring per round, calm
  std::size_t pressure_quota = 16384;  // per ring per round, under pressure
  double pressure_fill = 0.5;
  std::chrono::microseconds idle_sleep_min{50};
  std::chrono::microseconds idle_sleep_max{2000};
  std::chrono::milliseconds rescan_interval{1000};
  std::chrono::milliseconds stats_interval{250};
  // Upper bound on events drained per second (0: none). Caps the collector's CPU; what is not
  // drained waits in the rings, where producers fold or drop it, counted.
  std::uint64_t max_events_per_second = 0;
  AttachPolicy policy;
};

enum class FlushReason { kSize = 0, kAge = 1, kPressure = 2, kShutdown = 3, kCount = 4 };

struct DrainCounters {
  std::atomic<std::uint64_t> events_received{0};
  std::atomic<std::uint64_t> aggregates_received{0};
  std::atomic<std::uint64_t> folded_values_received{0};
  std::atomic<std::uint64_t> invalid_events{0};
  std::atomic<std::uint64_t> batches{0};
  std::atomic<std::uint64_t> flushes[static_cast<int>(FlushReason::kCount)]{};
  std::atomic<std::uint64_t> rounds{0};
  std::atomic<std::uint64_t> idle_rounds{0};
  std::atomic<std::uint64_t> segments_attached{0};
  std::atomic<std::uint64_t> segments_reclaimed{0};
  std::atomic<std::uint64_t> segments_quarantined{0};
  std::atomic<std::uint64_t> segments_quarantined_by_reason[kQuarantineReasonCount]{};
  std::atomic<std::uint64_t> rings_quarantined{0};
  std::atomic<std::uint64_t> segments_active{0};
  std::atomic<std::uint64_t> backpressure_rounds{0};  // rounds skipped: no exporter had room
  std::atomic<std::uint64_t> slot_bytes_released{0};  // drained slot pages unmapped (madvise)
};

class DrainLoop {
 public:
  // `delivery`, if given, is told of every batch before it is offered (DeliveryTracker::expect);
  // the runners report to it when they are done.
  DrainLoop(DrainOptions options, std::vector<ExporterRunner*> exporters,
            DeliveryTracker* delivery = nullptr);

  // Runs until `stop` is set, then drains every ring, takes the folds and seals a last batch.
  void run(const std::atomic<bool>& stop);

  // One pass: discovery (if due), one round over all rings, flush if due, reclaim. Returns the
  // events drained. run() is a loop of these; tests may call it directly.
  std::size_t step(bool shutting_down);

  std::vector<SourceStats> source_stats() const;
  const DrainCounters& counters() const noexcept { return counters_; }
  const DeliveryTracker* delivery() const noexcept { return delivery_; }
  // Names of quarantined segments with the reason ("<reason>: <what was seen>"), sorted by name:
  // those refused at attach and those detached since. A quarantined segment is never attached
  // again while its file exists; once the file is gone its name is forgotten.
  std::vector<std::pair<std::string, std::string>> quarantined() const;

 private:
  void discover();
  void quarantine(const std::string& name, QuarantineReason reason, const std::string& message);
  void detach_corrupt();
  void forget_vanished_quarantined();
  bool exporters_have_room() const noexcept;
  std::size_t take_tokens(std::size_t want) noexcept;
  std::size_t round(bool& pressure);
  void flush(FlushReason reason);
  void take_folds();
  void reclaim();
  void refresh_stats(bool force);

  DrainOptions options_;
  std::vector<ExporterRunner*> exporters_;
  DeliveryTracker* delivery_ = nullptr;
  Discovery discovery_;
  ClockMap clock_;
  std::vector<std::unique_ptr<Source>> sources_;
  std::unordered_set<std::string> known_;  // attached, quarantined, or reclaimed but not unlinked
  std::unordered_map<std::string, std::string> quarantine_reasons_;
  // Quarantine log lines: at most kQuarantineLogBurst per window, the rest counted in the next.
  static constexpr std::size_t kQuarantineLogBurst = 10;
  static constexpr std::chrono::seconds kQuarantineLogWindow{10};
  common::RateLimitedLog quarantine_log_{kQuarantineLogBurst, kQuarantineLogWindow};
  std::chrono::steady_clock::time_point last_quarantine_prune_{};
  std::uint64_t retired_invalid_events_ = 0;  // of sources detached or reclaimed
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> pending_since_;
  std::unique_ptr<Batch> batch_;
  std::uint64_t batch_id_ = 1;
  std::uint64_t next_origin_id_ = 1;  // model::Origin::source of the next attached segment
  double tokens_ = 0;
  std::chrono::steady_clock::time_point tokens_at_{};
  std::chrono::steady_clock::time_point batch_first_at_{};  // when the batch got its first item
  std::chrono::steady_clock::time_point last_folds_{};
  std::chrono::steady_clock::time_point last_stats_{};
  std::chrono::steady_clock::time_point last_housekeeping_{};
  DrainCounters counters_;
  mutable std::mutex stats_mutex_;
  std::vector<SourceStats> stats_;
  std::vector<std::pair<std::string, std::string>> quarantined_copy_;
};

}  // namespace shmstats::collector
