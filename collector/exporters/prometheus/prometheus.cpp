#include "collector/exporters/prometheus/prometheus.h"

#include <fmt/format.h>

#include <string>
#include <vector>

#include "common/endpoint.h"
#include "common/prometheus_text.h"

namespace shmstats::collector {
namespace {

namespace text = common::prometheus;
using aggregate::SeriesState;

void write_series(text::TextWriter& out, const std::string& family, const ViewSeries& e) {
  std::vector<text::Label> labels;
  labels.reserve(e.labels.size() + 1);
  for (const auto& [k, v] : e.labels) labels.push_back(text::Label{k, v});
  const SeriesState& s = *e.state;
  switch (s.kind) {
    case model::Kind::kCounter:
    case model::Kind::kGauge:
    case model::Kind::kGaugeDelta:
      out.sample(family, labels, s.value);
      return;
    case model::Kind::kSet:
      out.sample(family, labels, s.last_distinct);
      return;
    case model::Kind::kHistogram:
    case model::Kind::kTiming: {
      const std::string bucket = family + "_bucket";
      labels.push_back(text::Label{"le", ""});
      double cumulative = 0;
      std::string le;
      for (std::size_t i = 0; i < s.bounds->size(); ++i) {
        cumulative += s.buckets[i];
        le = text::format_value((*s.bounds)[i]);
        labels.back().value = le;
        out.sample(bucket, labels, cumulative);
      }
      labels.back().value = "+Inf";
      out.sample(bucket, labels, s.count);
      labels.pop_back();
      out.sample(family + "_sum", labels, s.sum);
      out.sample(family + "_count", labels, s.count);
      return;
    }
  }
}

}  // namespace

std::string render_page(const aggregate::Stage& stage, const PrometheusOptions& options,
                        std::uint64_t (&hidden)[kHiddenReasonCount]) {
  text::TextWriter out;
  for (const ViewFamily& family : build_view(stage, options.view, hidden)) {
    out.family(family.name, family.type, family.help);
    for (const ViewSeries& series : family.series) write_series(out, family.name, series);
  }
  return out.take();
}

shm::Result<std::unique_ptr<PrometheusExporter>> PrometheusExporter::create(
    PrometheusOptions options) {
  auto where = common::parse_listen_address(options.listen);
  if (!where) return where.error();
  std::unique_ptr<PrometheusExporter> e(new PrometheusExporter(std::move(options)));
  PrometheusExporter* self = e.get();
  auto server =
      common::HttpServer::start(where.value().host, where.value().port,
                                {common::HttpRoute{"/metrics", [self] {
                                                     return common::HttpResponse{200, self->page()};
                                                   }}});
  if (!server) {
    return shm::Error{server.error().code, fmt::format("exporter {}: listen {}: {}", e->name(),
                                                       e->options_.listen, server.error().message)};
  }
  e->server_ = std::move(server).value();
  return e;
}

std::string PrometheusExporter::listen_address() const {
  auto where = common::parse_listen_address(options_.listen);
  if (!where) return {};
  common::Endpoint bound = where.value();
  bound.port = port();
  return bound.text();
}

PrometheusExporter::PrometheusExporter(PrometheusOptions options)
    : options_(std::move(options)), stage_(options_.stage) {}

PrometheusExporter::~PrometheusExporter() {
  // The listener's thread calls page(): stop it before the stage goes.
  if (server_) server_->stop();
}

void PrometheusExporter::publish_counters() {
  const auto& c = stage_.counters();
  published_.series.store(stage_.series().size(), std::memory_order_relaxed);
  published_.placed_at_mean.store(c.placed_at_mean, std::memory_order_relaxed);
  published_.series_expired.store(c.series_expired, std::memory_order_relaxed);
  for (std::size_t i = 0; i < aggregate::kDropReasonCount; ++i) {
    published_.dropped[i].store(c.dropped[i], std::memory_order_relaxed);
  }
}

SendResult PrometheusExporter::send(const Batch& batch) {
  std::lock_guard lock(mutex_);
  const std::size_t merged = stage_.merge(batch);
  publish_counters();
  SendResult r;
  r.events_merged = merged;
  r.events_dropped = batch.size() - merged;
  return r;
}

SendResult PrometheusExporter::flush() {
  std::lock_guard lock(mutex_);
  stage_.roll();
  publish_counters();
  published_.memory_bytes.store(stage_.memory_estimate(), std::memory_order_relaxed);
  return {};
}

std::string PrometheusExporter::page() {
  std::uint64_t hidden[kHiddenReasonCount] = {};
  std::string body;
  {
    std::lock_guard lock(mutex_);
    body = render_page(stage_, options_, hidden);
  }
  for (std::size_t i = 0; i < kHiddenReasonCount; ++i) {
    published_.hidden[i].store(hidden[i], std::memory_order_relaxed);
  }
  published_.scrapes.fetch_add(1, std::memory_order_relaxed);
  return body;
}

void PrometheusExporter::describe_metrics(std::vector<ExporterSample>& out) const {
  const auto load = [](const std::atomic<std::uint64_t>& a) {
    return static_cast<double>(a.load(std::memory_order_relaxed));
  };
  out.push_back({"shmstats_exporter_prometheus_series",
                 "gauge",
                 "Series the aggregation stage holds.",
                 {},
                 load(published_.series)});
  out.push_back({"shmstats_exporter_prometheus_memory_bytes",
                 "gauge",
                 "Estimated bytes of the aggregation stage's series state (at the last interval).",
                 {},
                 load(published_.memory_bytes)});
  out.push_back({"shmstats_exporter_prometheus_series_expired_total",
                 "counter",
                 "Series removed after no update for the expiry time.",
                 {},
                 load(published_.series_expired)});
  out.push_back({"shmstats_exporter_prometheus_placed_at_mean_total",
                 "counter",
                 "Folded samples put into the bucket of their group's mean (an approximation).",
                 {},
                 load(published_.placed_at_mean)});
  for (std::size_t i = 0; i < aggregate::kDropReasonCount; ++i) {
    out.push_back({"shmstats_exporter_prometheus_dropped_events_total",
                   "counter",
                   "Events the aggregation stage refused, by reason.",
                   {{"reason", aggregate::to_string(static_cast<aggregate::DropReason>(i))}},
                   load(published_.dropped[i])});
  }
  for (std::size_t i = 0; i < kHiddenReasonCount; ++i) {
    out.push_back({"shmstats_exporter_prometheus_hidden_series",
                   "gauge",
                   "Series left off the last page, by reason (names that met after mapping).",
                   {{"reason", to_string(static_cast<HiddenReason>(i))}},
                   load(published_.hidden[i])});
  }
  out.push_back({"shmstats_exporter_prometheus_scrapes_total",
                 "counter",
                 "Pages served on the scrape endpoint.",
                 {},
                 load(published_.scrapes)});
}

}  // namespace shmstats::collector
