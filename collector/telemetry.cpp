#include "collector/telemetry.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "shm/mapping_guard.h"

namespace shmstats::collector {

std::string HealthReport::to_json() const {
  nlohmann::json j;
  j["status"] = status;
  j["reasons"] = reasons;
  j["quarantined"] = nlohmann::json::array();
  for (const auto& [segment, reason] : quarantined) {
    j["quarantined"].push_back({{"segment", segment}, {"reason", reason}});
  }
  j["quarantined_total"] = quarantined_total;
  // Segment names and reasons quote untrusted bytes: replace what is not UTF-8.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

HealthReport Health::evaluate(const DrainLoop& drain, const std::vector<ExporterRunner*>& exporters,
                              const LatencyHistogram& latency) {
  std::lock_guard lock(mutex_);
  HealthReport r;
  bool unhealthy = false;
  std::uint64_t pushed = 0;
  std::uint64_t dropped = 0;
  for (const auto& s : drain.source_stats()) {
    pushed += s.pushed;
    dropped += s.dropped;
    for (const auto& ring : s.rings) {
      const double fill = static_cast<double>(ring.stats.fill()) / s.ring_capacity;
      if (fill > thresholds_.ring_fill) {
        r.reasons.push_back(fmt::format("segment {} ring {} is {:.0f}% full (over {:.0f}%)", s.name,
                                        ring.index, fill * 100, thresholds_.ring_fill * 100));
      }
      if (ring.quarantined) {
        r.reasons.push_back(fmt::format("segment {} ring {} is quarantined", s.name, ring.index));
      }
    }
    if (s.unaccounted != 0) {
      r.reasons.push_back(
          fmt::format("segment {}: ledger does not close (pushed {} but {} unaccounted)", s.name,
                      s.pushed, s.unaccounted));
    }
  }
  auto quarantined = drain.quarantined();
  r.quarantined_total = quarantined.size();
  if (!quarantined.empty()) {
    r.reasons.push_back(fmt::format("{} segment{} quarantined (see \"quarantined\")",
                                    quarantined.size(), quarantined.size() == 1 ? "" : "s"));
    if (quarantined.size() > HealthReport::kMaxListedQuarantined) {
      quarantined.resize(HealthReport::kMaxListedQuarantined);
    }
    r.quarantined = std::move(quarantined);
  }
  const std::uint64_t d_pushed = pushed - std::min(pushed, last_pushed_);
  const std::uint64_t d_dropped = dropped - std::min(dropped, last_dropped_);
  if (d_pushed > 0 &&
      static_cast<double>(d_dropped) > thresholds_.drop_rate * static_cast<double>(d_pushed)) {
    r.reasons.push_back(
        fmt::format("producers dropped {} of {} events since the last check "
                    "(over {:.1f}%)",
                    d_dropped, d_pushed, thresholds_.drop_rate * 100));
  }
  last_pushed_ = pushed;
  last_dropped_ = dropped;

  std::uint64_t sent = 0;
  std::uint64_t errors = 0;
  std::size_t open_breakers = 0;
  for (const ExporterRunner* e : exporters) {
    sent += e->counters().requests.load(std::memory_order_relaxed);
    errors += e->counters().send_errors.load(std::memory_order_relaxed);
    const BreakerState state = e->breaker().state;
    if (state == BreakerState::kOpen || state == BreakerState::kHalfOpen) {
      ++open_breakers;
      r.reasons.push_back(
          fmt::format("exporter {}: circuit breaker {}", e->name(), to_string(state)));
    }
  }
  const std::uint64_t d_sent = sent - std::min(sent, last_sent_);
  const std::uint64_t d_errors = errors - std::min(errors, last_errors_);
  if (d_errors > 0 && static_cast<double>(d_errors) >
                          thresholds_.send_error_rate * static_cast<double>(d_sent + d_errors)) {
    r.reasons.push_back(fmt::format("send errors {} of {} attempts since the last check", d_errors,
                                    d_sent + d_errors));
  }
  last_sent_ = sent;
  last_errors_ = errors;
  const double p99 = latency.quantile_seconds(0.99);
  if (p99 > thresholds_.latency_p99_seconds) {
    r.reasons.push_back(fmt::format("end-to-end latency p99 is {} s (bound {} s)", p99,
                                    thresholds_.latency_p99_seconds));
  }
  // The drain loop must keep turning; if it has not moved for 5 s the collector is stuck.
  const auto now = std::chrono::steady_clock::now();
  const std::uint64_t rounds = drain.counters().rounds.load(std::memory_order_relaxed);
  if (rounds != last_rounds_) {
    last_rounds_ = rounds;
    last_round_change_ = now;
  } else if (now - last_round_change_ > std::chrono::seconds(5)) {
    unhealthy = true;
    r.reasons.push_back("the drain loop has not run for over 5 s");
  }
  if (!exporters.empty() && open_breakers == exporters.size()) {
    unhealthy = true;
    r.reasons.push_back("no exporter can send (every circuit breaker is open)");
  }
  r.status = unhealthy ? "unhealthy" : (r.reasons.empty() ? "healthy" : "degraded");
  return r;
}

namespace {

// Prometheus label values escape backslash, double quote and newline.
std::string label(std::string_view v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

class Page {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    text_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(std::string_view name, std::string_view labels, double value) {
    if (labels.empty()) {
      text_ += fmt::format("{} {}\n", name, value);
    } else {
      text_ += fmt::format("{}{{{}}} {}\n", name, labels, value);
    }
  }
  void counter(std::string_view name, std::string_view help, double value) {
    family(name, "counter", help);
    sample(name, "", value);
  }
  void gauge(std::string_view name, std::string_view help, double value) {
    family(name, "gauge", help);
    sample(name, "", value);
  }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
};

double d(const std::atomic<std::uint64_t>& a) {
  return static_cast<double>(a.load(std::memory_order_relaxed));
}

}  // namespace

std::string render_metrics(const DrainLoop& drain, const std::vector<ExporterRunner*>& exporters,
                           const LatencyHistogram& latency, const HealthReport& health) {
  Page p;
  const DrainCounters& c = drain.counters();
  p.counter("shmstats_collector_events_received_total", "Events drained from producer rings.",
            d(c.events_received));
  p.counter("shmstats_collector_aggregates_received_total",
            "Fold aggregates taken from series accumulators.", d(c.aggregates_received));
  p.counter("shmstats_collector_folded_values_received_total",
            "Values covered by the fold aggregates.", d(c.folded_values_received));
  p.counter("shmstats_collector_batches_total", "Batches sealed and handed to exporters.",
            d(c.batches));
  if (const DeliveryTracker* delivery = drain.delivery(); delivery != nullptr) {
    p.counter("shmstats_collector_batches_completed_total",
              "Batches every output is done with (sent, merged or dropped and counted).",
              static_cast<double>(delivery->completed_total()));
    p.gauge("shmstats_collector_batches_in_flight",
            "Batches handed to outputs that not every output has finished.",
            static_cast<double>(delivery->in_flight()));
  }
  p.family("shmstats_collector_flushes_total", "counter", "Batches sealed, by reason.");
  const char* reasons[] = {"size", "age", "pressure", "shutdown"};
  for (int i = 0; i < static_cast<int>(FlushReason::kCount); ++i) {
    p.sample("shmstats_collector_flushes_total", fmt::format("reason=\"{}\"", reasons[i]),
             d(c.flushes[i]));
  }
  p.counter("shmstats_collector_drain_rounds_total", "Rounds of the drain loop.", d(c.rounds));
  p.counter("shmstats_collector_backpressure_rounds_total",
            "Rounds that left events in the rings because no exporter had queue room.",
            d(c.backpressure_rounds));
  p.counter("shmstats_collector_segments_attached_total", "Segments attached.",
            d(c.segments_attached));
  p.counter("shmstats_collector_segments_reclaimed_total",
            "Segments drained and removed after their producer closed or died.",
            d(c.segments_reclaimed));
  p.counter("shmstats_collector_segments_quarantined_total",
            "Segments refused (invalid, foreign owner or unsafe mode).", d(c.segments_quarantined));
  p.family("shmstats_collector_segments_quarantined_by_reason_total", "counter",
           "Segments refused or detached, by reason (the reasons are listed on /health).");
  for (std::size_t i = 0; i < kQuarantineReasonCount; ++i) {
    p.sample("shmstats_collector_segments_quarantined_by_reason_total",
             fmt::format("reason=\"{}\"", to_string(static_cast<QuarantineReason>(i))),
             d(c.segments_quarantined_by_reason[i]));
  }
  p.counter("shmstats_collector_rings_quarantined_total",
            "Rings whose indices broke the ring invariant (their segment is quarantined).",
            d(c.rings_quarantined));
  p.counter("shmstats_collector_slot_bytes_released_total",
            "Bytes of drained ring slot pages unmapped from the collector (the data stays in the "
            "segment; this keeps the collector's resident memory from growing with every page an "
            "event passed through).",
            d(c.slot_bytes_released));
  p.counter("shmstats_collector_mapping_faults_total",
            "Pages of truncated segment files read past their end (SIGBUS caught, zero page "
            "mapped).",
            static_cast<double>(shm::mapping_faults_total()));
  p.gauge("shmstats_collector_segments_active", "Segments attached now.", d(c.segments_active));

  const auto sources = drain.source_stats();
  p.family("shmstats_segment_pushed_total", "counter", "Push attempts into the segment's rings.");
  for (const auto& s : sources) {
    p.sample("shmstats_segment_pushed_total",
             fmt::format("segment=\"{}\",service=\"{}\"", label(s.name), label(s.service)),
             static_cast<double>(s.pushed));
  }
  p.family("shmstats_segment_dropped_total", "counter",
           "Events producers dropped, by segment and reason.");
  for (const auto& s : sources) {
    std::array<std::uint64_t, shm::kDropReasonCount> by_reason{};
    for (const auto& ring : s.rings) {
      for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) by_reason[i] += ring.stats.dropped[i];
    }
    for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) by_reason[i] += s.counters.dropped[i];
    for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) {
      p.sample("shmstats_segment_dropped_total",
               fmt::format("segment=\"{}\",reason=\"{}\"", label(s.name),
                           shm::to_string(static_cast<shm::DropReason>(i))),
               static_cast<double>(by_reason[i]));
    }
  }
  p.family("shmstats_segment_folded_total", "counter",
           "Values producers folded into series accumulators.");
  for (const auto& s : sources) {
    p.sample("shmstats_segment_folded_total", fmt::format("segment=\"{}\"", label(s.name)),
             static_cast<double>(s.folded + s.counters.folded_no_ring));
  }
  p.family("shmstats_segment_waiting_events", "gauge", "Events waiting in the segment's rings.");
  for (const auto& s : sources) {
    p.sample("shmstats_segment_waiting_events", fmt::format("segment=\"{}\"", label(s.name)),
             static_cast<double>(s.waiting));
  }
  p.family("shmstats_segment_ledger_unaccounted", "gauge",
           "pushed - (drained + folded + dropped + waiting) over quiet rings; 0 when it closes.");
  for (const auto& s : sources) {
    p.sample("shmstats_segment_ledger_unaccounted", fmt::format("segment=\"{}\"", label(s.name)),
             static_cast<double>(s.unaccounted));
  }
  p.family("shmstats_ring_fill_ratio", "gauge", "Waiting events / capacity, per ring in use.");
  for (const auto& s : sources) {
    for (const auto& ring : s.rings) {
      p.sample("shmstats_ring_fill_ratio",
               fmt::format("segment=\"{}\",ring=\"{}\"", label(s.name), ring.index),
               static_cast<double>(ring.stats.fill()) / s.ring_capacity);
    }
  }
  p.family("shmstats_ring_high_water_ratio", "gauge", "Largest fill seen / capacity, per ring.");
  for (const auto& s : sources) {
    for (const auto& ring : s.rings) {
      p.sample("shmstats_ring_high_water_ratio",
               fmt::format("segment=\"{}\",ring=\"{}\"", label(s.name), ring.index),
               static_cast<double>(ring.stats.high_water) / s.ring_capacity);
    }
  }
  p.counter("shmstats_collector_invalid_events_total",
            "Events whose series or kind did not validate (dropped), over every segment ever "
            "attached.",
            d(c.invalid_events));

  struct ExporterMetric {
    const char* name;
    const char* help;
    std::atomic<std::uint64_t> ExporterCounters::*field;
    const char* type;
  };
  const ExporterMetric metrics[] = {
      {"shmstats_exporter_events_sent_total", "Events sent.", &ExporterCounters::events_sent,
       "counter"},
      {"shmstats_exporter_events_dropped_total",
       "Events an exporter dropped (open breaker, send "
       "error, unsendable value).",
       &ExporterCounters::events_dropped_exporter, "counter"},
      {"shmstats_exporter_queue_dropped_events_total",
       "Events dropped because the exporter's queue was full.",
       &ExporterCounters::events_dropped_queue_full, "counter"},
      {"shmstats_exporter_queue_dropped_batches_total",
       "Batches dropped because the exporter's queue was full.",
       &ExporterCounters::batches_dropped_queue_full, "counter"},
      {"shmstats_exporter_events_merged_total",
       "Events taken into an aggregating output's state (sent by its flush).",
       &ExporterCounters::events_merged, "counter"},
      {"shmstats_exporter_requests_total", "Datagrams or requests sent.",
       &ExporterCounters::requests, "counter"},
      {"shmstats_exporter_datagrams_total",
       "Datagrams or requests sent (the older name of shmstats_exporter_requests_total).",
       &ExporterCounters::requests, "counter"},
      {"shmstats_exporter_flushes_total", "Flushes of the output (on its deadline and at stop).",
       &ExporterCounters::flushes, "counter"},
      {"shmstats_exporter_bytes_total", "Bytes sent.", &ExporterCounters::bytes, "counter"},
      {"shmstats_exporter_send_errors_total", "Failed sends.", &ExporterCounters::send_errors,
       "counter"},
      {"shmstats_exporter_exceptions_total", "Exceptions caught from the exporter.",
       &ExporterCounters::exceptions, "counter"},
      {"shmstats_exporter_exception_dropped_events_total",
       "Events of batches dropped because sending them threw.",
       &ExporterCounters::events_dropped_exception, "counter"},
      {"shmstats_exporter_queue_depth", "Batches waiting in the exporter's queue.",
       &ExporterCounters::queue_depth, "gauge"},
  };
  for (const auto& m : metrics) {
    p.family(m.name, m.type, m.help);
    for (const ExporterRunner* e : exporters) {
      p.sample(m.name, fmt::format("exporter=\"{}\"", label(e->name())),
               d(e->counters().*(m.field)));
    }
  }
  p.family("shmstats_exporter_circuit_state", "gauge",
           "Circuit breaker state: 0 closed, 1 open, 2 half open.");
  for (const ExporterRunner* e : exporters) {
    const BreakerState st = e->breaker().state;
    if (st == BreakerState::kNone) continue;
    p.sample("shmstats_exporter_circuit_state", fmt::format("exporter=\"{}\"", label(e->name())),
             static_cast<int>(st));
  }
  p.family("shmstats_exporter_breaker_probes_total", "counter",
           "Empty probe datagrams a half-open breaker sent, by result (a failed probe re-opens it "
           "and the batch is dropped instead of sent to a destination that is still down).");
  for (const ExporterRunner* e : exporters) {
    const BreakerStatus b = e->breaker();
    if (b.state == BreakerState::kNone) continue;
    const std::string exporter = label(e->name());
    p.sample("shmstats_exporter_breaker_probes_total",
             fmt::format("exporter=\"{}\",result=\"ok\"", exporter),
             static_cast<double>(b.probes_sent > b.probes_failed ? b.probes_sent - b.probes_failed
                                                                 : 0));
    p.sample("shmstats_exporter_breaker_probes_total",
             fmt::format("exporter=\"{}\",result=\"failed\"", exporter),
             static_cast<double>(b.probes_failed));
  }
  // Each output's own samples, one family per name whatever instance they come from.
  std::vector<std::pair<const ExporterRunner*, ExporterSample>> own;
  for (const ExporterRunner* e : exporters) {
    std::vector<ExporterSample> samples;
    e->describe_metrics(samples);
    for (auto& s : samples) own.emplace_back(e, std::move(s));
  }
  std::vector<std::string> family_order;
  for (const auto& [e, s] : own) {
    if (std::find(family_order.begin(), family_order.end(), s.name) == family_order.end()) {
      family_order.push_back(s.name);
    }
  }
  for (const auto& name : family_order) {
    bool first = true;
    for (const auto& [e, s] : own) {
      if (s.name != name) continue;
      if (first) p.family(s.name, s.type, s.help);
      first = false;
      std::string labels = fmt::format("exporter=\"{}\"", label(e->name()));
      for (const auto& [k, v] : s.labels) labels += fmt::format(",{}=\"{}\"", k, label(v));
      p.sample(s.name, labels, s.value);
    }
  }

  p.family("shmstats_end_to_end_latency_seconds", "histogram",
           "From the event's timestamp in the producer to its send by an exporter.");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < LatencyHistogram::kBounds.size(); ++i) {
    cumulative += latency.bucket(i);
    p.sample("shmstats_end_to_end_latency_seconds_bucket",
             fmt::format("le=\"{}\"", LatencyHistogram::kBounds[i]),
             static_cast<double>(cumulative));
  }
  cumulative += latency.bucket(LatencyHistogram::kBounds.size());
  p.sample("shmstats_end_to_end_latency_seconds_bucket", "le=\"+Inf\"",
           static_cast<double>(cumulative));
  p.sample("shmstats_end_to_end_latency_seconds_sum", "", latency.sum_seconds());
  p.sample("shmstats_end_to_end_latency_seconds_count", "", static_cast<double>(cumulative));

  p.family("shmstats_collector_health", "gauge",
           "1 for the current health status (healthy, degraded, unhealthy).");
  for (const char* s : {"healthy", "degraded", "unhealthy"}) {
    p.sample("shmstats_collector_health", fmt::format("status=\"{}\"", s),
             health.status == s ? 1 : 0);
  }
  return p.take();
}

}  // namespace shmstats::collector
