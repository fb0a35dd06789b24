#include "tools/loadgen/sampler.h"

namespace shmstats::tools::loadgen {
namespace {

using ojson = nlohmann::ordered_json;
namespace prom = common::prometheus;

double per_s(double now, double before, double dt) { return dt > 0 ? (now - before) / dt : 0; }

double total_dropped(const DropCounts& d) {
  double sum = 0;
  for (const auto v : d) sum += static_cast<double>(v);
  return sum;
}

}  // namespace

ojson maybe(std::optional<double> v, double scale) {
  return v ? ojson(*v * scale) : ojson(nullptr);
}

Counters Sampler::read(double pushed, const std::vector<pid_t>& workers) {
  Counters c;
  c.pushed = pushed;
  c.segments = segments_.look();
  const auto recv_page = scrape(recv_http_);
  c.recv_answered = !recv_page.empty();
  c.delivered_events = prom::sum(recv_page, "shmstats_recv_events_total");
  c.delivered_folded = prom::sum(recv_page, "shmstats_recv_aggregated_values_total");
  c.aggregates = prom::sum(recv_page, "shmstats_recv_aggregates_total");
  c.datagrams = prom::sum(recv_page, "shmstats_recv_datagrams_total");
  c.latency = prom_histogram(recv_page, "shmstats_recv_event_latency_seconds_bucket");
  collector_page_ = scrape(collector_http_);
  c.collector_answered = !collector_page_.empty();
  if (c.collector_answered) {
    c.collector_segments_active = prom::sum(collector_page_, "shmstats_collector_segments_active");
  }
  c.collector = read_proc_usage(collector_.pid());
  c.recv = read_proc_usage(recv_.pid());
  for (const pid_t pid : workers) {
    if (const auto u = read_proc_usage(pid)) worker_cpu_[pid] = u->cpu_s;
  }
  for (const auto& [pid, cpu] : worker_cpu_) c.workers_cpu_s += cpu;
  if (!recv_page.empty()) last_recv_page_ = recv_page;
  if (!collector_page_.empty()) last_collector_page_ = collector_page_;
  return c;
}

ojson Sampler::sample(double t_s, const Counters& now, const Counters& before, double dt) const {
  ojson s;
  s["t_s"] = t_s;
  s["offered_eps"] = per_s(now.pushed, before.pushed, dt);
  const double delivered = now.delivered_events + now.delivered_folded;
  s["delivered_eps"] = per_s(delivered, before.delivered_events + before.delivered_folded, dt);
  s["delivered_events_eps"] = per_s(now.delivered_events, before.delivered_events, dt);
  s["folded_eps"] = per_s(static_cast<double>(now.segments.totals.folded),
                          static_cast<double>(before.segments.totals.folded), dt);
  s["dropped_eps"] = per_s(total_dropped(now.segments.totals.dropped),
                           total_dropped(before.segments.totals.dropped), dt);
  ojson by_reason = ojson::object();
  for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) {
    by_reason[shm::to_string(static_cast<shm::DropReason>(i))] =
        per_s(static_cast<double>(now.segments.totals.dropped[i]),
              static_cast<double>(before.segments.totals.dropped[i]), dt);
  }
  s["dropped_eps_by_reason"] = std::move(by_reason);
  s["ring_fill_max"] = now.segments.fill_max;
  s["ring_high_water_max"] = now.segments.high_water_max;
  s["segments"] = now.segments.attached;
  const Cumulative interval = histogram_delta(now.latency, before.latency);
  s["latency_p50_ms"] = maybe(histogram_quantile(interval, 0.50), 1e3);
  s["latency_p99_ms"] = maybe(histogram_quantile(interval, 0.99), 1e3);
  const double datagrams = now.datagrams - before.datagrams;
  s["datagrams_ps"] = per_s(now.datagrams, before.datagrams, dt);
  const double items =
      (now.delivered_events + now.aggregates) - (before.delivered_events + before.aggregates);
  s["events_per_datagram"] = datagrams > 0 ? ojson(items / datagrams) : ojson(nullptr);
  const auto cpu_pct = [dt](const std::optional<ProcUsage>& a, const std::optional<ProcUsage>& b) {
    return a && b && dt > 0 ? ojson(100.0 * (a->cpu_s - b->cpu_s) / dt) : ojson(nullptr);
  };
  s["collector_cpu_pct"] = cpu_pct(now.collector, before.collector);
  s["collector_rss_mb"] = now.collector ? ojson(now.collector->rss_mb) : ojson(nullptr);
  s["collector_rss_anon_mb"] = now.collector ? ojson(now.collector->rss_anon_mb) : ojson(nullptr);
  s["collector_rss_shmem_mb"] = now.collector ? ojson(now.collector->rss_shmem_mb) : ojson(nullptr);
  s["recv_cpu_pct"] = cpu_pct(now.recv, before.recv);
  s["recv_rss_mb"] = now.recv ? ojson(now.recv->rss_mb) : ojson(nullptr);
  s["producer_cpu_pct"] = dt > 0 ? 100.0 * (now.workers_cpu_s - before.workers_cpu_s) / dt : 0.0;
  return s;
}

}  // namespace shmstats::tools::loadgen
