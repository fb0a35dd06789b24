// A scenario's once-a-second measurement: Counters read from three independent sources (the
// producers' segments, the receiver's and the collector's /metrics, /proc), and one row of the
// time series (rates over the interval between two readings).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tools/loadgen/daemon.h"
#include "tools/loadgen/metrics_page.h"
#include "tools/loadgen/proc_usage.h"
#include "tools/loadgen/segment_watch.h"

namespace shmstats::tools::loadgen {

struct Counters {
  double pushed = 0;  // the workers' progress
  SegmentView segments;
  double delivered_events = 0;
  double delivered_folded = 0;
  double datagrams = 0;
  double aggregates = 0;
  Cumulative latency;
  bool recv_answered = false;
  bool collector_answered = false;
  double collector_segments_active = -1;
  std::optional<ProcUsage> collector;
  std::optional<ProcUsage> recv;
  double workers_cpu_s = 0;  // summed over the workers alive now and those seen before
};

// `v` times `scale` as JSON, null without a value.
nlohmann::ordered_json maybe(std::optional<double> v, double scale = 1);

class Sampler {
 public:
  Sampler(std::string prefix, Daemon& collector, std::uint16_t collector_http, Daemon& recv,
          std::uint16_t recv_http)
      : segments_(std::move(prefix)),
        collector_(collector),
        collector_http_(collector_http),
        recv_(recv),
        recv_http_(recv_http) {}

  Counters read(double pushed, const std::vector<pid_t>& workers);

  // One row of the time series: rates over the interval from `before` to `now`.
  nlohmann::ordered_json sample(double t_s, const Counters& now, const Counters& before,
                                double dt) const;

  const MetricsPage& last_recv_page() const { return last_recv_page_; }
  const MetricsPage& last_collector_page() const { return last_collector_page_; }

 private:
  SegmentWatch segments_;
  Daemon& collector_;
  std::uint16_t collector_http_;
  Daemon& recv_;
  std::uint16_t recv_http_;
  std::map<pid_t, double> worker_cpu_;
  MetricsPage collector_page_;
  MetricsPage last_recv_page_;
  MetricsPage last_collector_page_;
};

}  // namespace shmstats::tools::loadgen
