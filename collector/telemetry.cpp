#include "collector/telemetry.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/prometheus_text.h"
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

using common::prometheus::MetricType;
using common::prometheus::TextWriter;

double d(const std::atomic<std::uint64_t>& a) {
  return static_cast<double>(a.load(std::memory_order_relaxed));
}

// The drain loop's own counters: what it took from the rings, how it sealed batches, how far
// every output has got with them, the segments it attached, reclaimed and refused.
void render_drain(TextWriter& w, const DrainCounters& c, const DeliveryTracker* delivery) {
  w.single("shmstats_collector_events_received_total", MetricType::kCounter,
           "Events drained from producer rings.", d(c.events_received));
  w.single("shmstats_collector_aggregates_received_total", MetricType::kCounter,
           "Fold aggregates taken from series accumulators.", d(c.aggregates_received));
  w.single("shmstats_collector_folded_values_received_total", MetricType::kCounter,
           "Values covered by the fold aggregates.", d(c.folded_values_received));
  w.single("shmstats_collector_batches_total", MetricType::kCounter,
           "Batches sealed and handed to exporters.", d(c.batches));
  if (delivery != nullptr) {
    w.single("shmstats_collector_batches_completed_total", MetricType::kCounter,
             "Batches every output is done with (sent, merged or dropped and counted).",
             delivery->completed_total());
    w.single("shmstats_collector_batches_in_flight", MetricType::kGauge,
             "Batches handed to outputs that not every output has finished.",
             delivery->in_flight());
  }
  w.family("shmstats_collector_flushes_total", MetricType::kCounter, "Batches sealed, by reason.");
  const char* reasons[] = {"size", "age", "pressure", "shutdown"};
  for (int i = 0; i < static_cast<int>(FlushReason::kCount); ++i) {
    w.sample("shmstats_collector_flushes_total", {{"reason", reasons[i]}}, d(c.flushes[i]));
  }
  w.single("shmstats_collector_drain_rounds_total", MetricType::kCounter,
           "Rounds of the drain loop.", d(c.rounds));
  w.single("shmstats_collector_backpressure_rounds_total", MetricType::kCounter,
           "Rounds that left events in the rings because no exporter had queue room.",
           d(c.backpressure_rounds));
  w.single("shmstats_collector_segments_attached_total", MetricType::kCounter, "Segments attached.",
           d(c.segments_attached));
  w.single("shmstats_collector_segments_reclaimed_total", MetricType::kCounter,
           "Segments drained and removed after their producer closed or died.",
           d(c.segments_reclaimed));
  w.single("shmstats_collector_segments_quarantined_total", MetricType::kCounter,
           "Segments refused (invalid, foreign owner or unsafe mode).", d(c.segments_quarantined));
  w.family("shmstats_collector_segments_quarantined_by_reason_total", MetricType::kCounter,
           "Segments refused or detached, by reason (the reasons are listed on /health).");
  for (std::size_t i = 0; i < kQuarantineReasonCount; ++i) {
    w.sample("shmstats_collector_segments_quarantined_by_reason_total",
             {{"reason", to_string(static_cast<QuarantineReason>(i))}},
             d(c.segments_quarantined_by_reason[i]));
  }
  w.single("shmstats_collector_rings_quarantined_total", MetricType::kCounter,
           "Rings whose indices broke the ring invariant (their segment is quarantined).",
           d(c.rings_quarantined));
  w.single("shmstats_collector_slot_bytes_released_total", MetricType::kCounter,
           "Bytes of drained ring slot pages unmapped from the collector (the data stays in the "
           "segment; this keeps the collector's resident memory from growing with every page an "
           "event passed through).",
           d(c.slot_bytes_released));
  w.single("shmstats_collector_mapping_faults_total", MetricType::kCounter,
           "Pages of truncated segment files read past their end (SIGBUS caught, zero page "
           "mapped).",
           static_cast<double>(shm::mapping_faults_total()));
  w.single("shmstats_collector_segments_active", MetricType::kGauge, "Segments attached now.",
           d(c.segments_active));
}

// Per segment and per ring: what the producers pushed, dropped and folded, what waits, whether
// the ledger closes; then the events that did not validate, over every segment ever attached.
void render_sources(TextWriter& w, const std::vector<SourceStats>& sources,
                    const DrainCounters& c) {
  w.family("shmstats_segment_pushed_total", MetricType::kCounter,
           "Push attempts into the segment's rings.");
  for (const auto& s : sources) {
    w.sample("shmstats_segment_pushed_total", {{"segment", s.name}, {"service", s.service}},
             static_cast<double>(s.pushed));
  }
  w.family("shmstats_segment_dropped_total", MetricType::kCounter,
           "Events producers dropped, by segment and reason.");
  for (const auto& s : sources) {
    std::array<std::uint64_t, shm::kDropReasonCount> by_reason{};
    for (const auto& ring : s.rings) {
      for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) by_reason[i] += ring.stats.dropped[i];
    }
    for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) by_reason[i] += s.counters.dropped[i];
    for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) {
      w.sample("shmstats_segment_dropped_total",
               {{"segment", s.name}, {"reason", shm::to_string(static_cast<shm::DropReason>(i))}},
               static_cast<double>(by_reason[i]));
    }
  }
  w.family("shmstats_segment_folded_total", MetricType::kCounter,
           "Values producers folded into series accumulators.");
  for (const auto& s : sources) {
    w.sample("shmstats_segment_folded_total", {{"segment", s.name}},
             static_cast<double>(s.folded + s.counters.folded_no_ring));
  }
  w.family("shmstats_segment_waiting_events", MetricType::kGauge,
           "Events waiting in the segment's rings.");
  for (const auto& s : sources) {
    w.sample("shmstats_segment_waiting_events", {{"segment", s.name}},
             static_cast<double>(s.waiting));
  }
  w.family("shmstats_segment_ledger_unaccounted", MetricType::kGauge,
           "pushed - (drained + folded + dropped + waiting) over quiet rings; 0 when it closes.");
  for (const auto& s : sources) {
    w.sample("shmstats_segment_ledger_unaccounted", {{"segment", s.name}},
             static_cast<double>(s.unaccounted));
  }
  w.family("shmstats_ring_fill_ratio", MetricType::kGauge,
           "Waiting events / capacity, per ring in use.");
  for (const auto& s : sources) {
    for (const auto& ring : s.rings) {
      w.sample("shmstats_ring_fill_ratio",
               {{"segment", s.name}, {"ring", std::to_string(ring.index)}},
               static_cast<double>(ring.stats.fill()) / s.ring_capacity);
    }
  }
  w.family("shmstats_ring_high_water_ratio", MetricType::kGauge,
           "Largest fill seen / capacity, per ring.");
  for (const auto& s : sources) {
    for (const auto& ring : s.rings) {
      w.sample("shmstats_ring_high_water_ratio",
               {{"segment", s.name}, {"ring", std::to_string(ring.index)}},
               static_cast<double>(ring.stats.high_water) / s.ring_capacity);
    }
  }
  w.single("shmstats_collector_invalid_events_total", MetricType::kCounter,
           "Events whose series or kind did not validate (dropped), over every segment ever "
           "attached.",
           d(c.invalid_events));
}

// Each output's own samples (Exporter::describe_metrics), one family per name whatever instance
// they come from, each sample labelled with its exporter.
void render_exporter_samples(TextWriter& w, const std::vector<ExporterRunner*>& exporters) {
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
  std::vector<common::prometheus::Label> labels;
  for (const auto& name : family_order) {
    bool first = true;
    for (const auto& [e, s] : own) {
      if (s.name != name) continue;
      if (first) {
        w.family(s.name, s.type == "counter" ? MetricType::kCounter : MetricType::kGauge, s.help);
      }
      first = false;
      labels.clear();
      labels.push_back({"exporter", e->name()});
      for (const auto& [k, v] : s.labels) labels.push_back({k, v});
      w.sample(s.name, labels, s.value);
    }
  }
}

// Per exporter: its counters, its circuit breaker and the breaker's probes.
void render_exporters(TextWriter& w, const std::vector<ExporterRunner*>& exporters) {
  struct ExporterMetric {
    const char* name;
    const char* help;
    std::atomic<std::uint64_t> ExporterCounters::*field;
    MetricType type;
  };
  const ExporterMetric metrics[] = {
      {"shmstats_exporter_events_sent_total", "Events sent.", &ExporterCounters::events_sent,
       MetricType::kCounter},
      {"shmstats_exporter_events_dropped_total",
       "Events an exporter dropped (open breaker, send "
       "error, unsendable value).",
       &ExporterCounters::events_dropped_exporter, MetricType::kCounter},
      {"shmstats_exporter_queue_dropped_events_total",
       "Events dropped because the exporter's queue was full.",
       &ExporterCounters::events_dropped_queue_full, MetricType::kCounter},
      {"shmstats_exporter_queue_dropped_batches_total",
       "Batches dropped because the exporter's queue was full.",
       &ExporterCounters::batches_dropped_queue_full, MetricType::kCounter},
      {"shmstats_exporter_events_merged_total",
       "Events taken into an aggregating output's state (sent by its flush).",
       &ExporterCounters::events_merged, MetricType::kCounter},
      {"shmstats_exporter_requests_total", "Datagrams or requests sent.",
       &ExporterCounters::requests, MetricType::kCounter},
      {"shmstats_exporter_datagrams_total",
       "Datagrams or requests sent (the older name of shmstats_exporter_requests_total).",
       &ExporterCounters::requests, MetricType::kCounter},
      {"shmstats_exporter_flushes_total", "Flushes of the output (on its deadline and at stop).",
       &ExporterCounters::flushes, MetricType::kCounter},
      {"shmstats_exporter_bytes_total", "Bytes sent.", &ExporterCounters::bytes,
       MetricType::kCounter},
      {"shmstats_exporter_send_errors_total", "Failed sends.", &ExporterCounters::send_errors,
       MetricType::kCounter},
      {"shmstats_exporter_exceptions_total", "Exceptions caught from the exporter.",
       &ExporterCounters::exceptions, MetricType::kCounter},
      {"shmstats_exporter_exception_dropped_events_total",
       "Events of batches dropped because sending them threw.",
       &ExporterCounters::events_dropped_exception, MetricType::kCounter},
      {"shmstats_exporter_queue_depth", "Batches waiting in the exporter's queue.",
       &ExporterCounters::queue_depth, MetricType::kGauge},
  };
  for (const auto& m : metrics) {
    w.family(m.name, m.type, m.help);
    for (const ExporterRunner* e : exporters) {
      w.sample(m.name, {{"exporter", e->name()}}, d(e->counters().*(m.field)));
    }
  }
  w.family("shmstats_exporter_circuit_state", MetricType::kGauge,
           "Circuit breaker state: 0 closed, 1 open, 2 half open.");
  for (const ExporterRunner* e : exporters) {
    const BreakerState st = e->breaker().state;
    if (st == BreakerState::kNone) continue;
    w.sample("shmstats_exporter_circuit_state", {{"exporter", e->name()}}, static_cast<int>(st));
  }
  w.family("shmstats_exporter_breaker_probes_total", MetricType::kCounter,
           "Empty probe datagrams a half-open breaker sent, by result (a failed probe re-opens it "
           "and the batch is dropped instead of sent to a destination that is still down).");
  for (const ExporterRunner* e : exporters) {
    const BreakerStatus b = e->breaker();
    if (b.state == BreakerState::kNone) continue;
    w.sample("shmstats_exporter_breaker_probes_total", {{"exporter", e->name()}, {"result", "ok"}},
             b.probes_sent > b.probes_failed ? b.probes_sent - b.probes_failed : 0);
    w.sample("shmstats_exporter_breaker_probes_total",
             {{"exporter", e->name()}, {"result", "failed"}}, b.probes_failed);
  }
  render_exporter_samples(w, exporters);
}

// The end-to-end latency histogram, from the producer's timestamp to the exporter's send.
void render_latency(TextWriter& w, const LatencyHistogram& latency) {
  w.family("shmstats_end_to_end_latency_seconds", MetricType::kHistogram,
           "From the event's timestamp in the producer to its hand-off by the first output (sent, "
           "or merged into an aggregating output's state).");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < LatencyHistogram::kBounds.size(); ++i) {
    cumulative += latency.bucket(i);
    w.sample("shmstats_end_to_end_latency_seconds_bucket",
             {{"le", common::prometheus::format_value(LatencyHistogram::kBounds[i])}},
             static_cast<double>(cumulative));
  }
  cumulative += latency.bucket(LatencyHistogram::kBounds.size());
  w.sample("shmstats_end_to_end_latency_seconds_bucket", {{"le", "+Inf"}},
           static_cast<double>(cumulative));
  w.sample("shmstats_end_to_end_latency_seconds_sum", latency.sum_seconds());
  w.sample("shmstats_end_to_end_latency_seconds_count", static_cast<double>(cumulative));
}

void render_health(TextWriter& w, const HealthReport& health) {
  w.family("shmstats_collector_health", MetricType::kGauge,
           "1 for the current health status (healthy, degraded, unhealthy).");
  for (const char* s : {"healthy", "degraded", "unhealthy"}) {
    w.sample("shmstats_collector_health", {{"status", s}}, health.status == s ? 1 : 0);
  }
}

}  // namespace

std::string render_metrics(const DrainLoop& drain, const std::vector<ExporterRunner*>& exporters,
                           const LatencyHistogram& latency, const HealthReport& health) {
  TextWriter w;
  render_drain(w, drain.counters(), drain.delivery());
  render_sources(w, drain.source_stats(), drain.counters());
  render_exporters(w, exporters);
  render_latency(w, latency);
  render_health(w, health);
  return w.take();
}

}  // namespace shmstats::collector
