// The collector's view of itself: an end-to-end latency histogram, the Prometheus text page for
// GET /metrics, and the health verdict for GET /health.
//
// Concurrency: LatencyHistogram::record is called by exporter threads (relaxed atomics);
// render_metrics and Health::evaluate by the HTTP thread. Health keeps the previous totals to
// compute rates over the interval between two evaluations (serialised by its own mutex).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "collector/drain.h"
#include "collector/exporter.h"
#include "collector/latency.h"

namespace shmstats::collector {

struct HealthThresholds {
  double ring_fill = 0.9;         // a ring fuller than this
  double drop_rate = 0.01;        // dropped / pushed over the interval
  double send_error_rate = 0.05;  // send errors / send attempts over the interval
  double latency_p99_seconds = 1.0;
};

struct HealthReport {
  std::string status;  // healthy | degraded | unhealthy
  std::vector<std::string> reasons;
  // Quarantined segments (name, reason), the first kMaxListedQuarantined of them.
  std::vector<std::pair<std::string, std::string>> quarantined;
  std::size_t quarantined_total = 0;
  static constexpr std::size_t kMaxListedQuarantined = 32;
  // {"status": ..., "reasons": [...], "quarantined": [{"segment": ..., "reason": ...}],
  //  "quarantined_total": n}
  std::string to_json() const;
};

class Health {
 public:
  explicit Health(HealthThresholds thresholds) : thresholds_(thresholds) {}
  HealthReport evaluate(const DrainLoop& drain, const std::vector<ExporterRunner*>& exporters,
                        const LatencyHistogram& latency);

 private:
  HealthThresholds thresholds_;
  std::mutex mutex_;
  std::uint64_t last_pushed_ = 0;
  std::uint64_t last_dropped_ = 0;
  std::uint64_t last_sent_ = 0;
  std::uint64_t last_errors_ = 0;
  std::uint64_t last_rounds_ = 0;
  std::chrono::steady_clock::time_point last_round_change_ = std::chrono::steady_clock::now();
};

// The Prometheus text exposition (version 0.0.4) of every collector counter.
std::string render_metrics(const DrainLoop& drain, const std::vector<ExporterRunner*>& exporters,
                           const LatencyHistogram& latency, const HealthReport& health);

}  // namespace shmstats::collector
