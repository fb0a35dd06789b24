#include "collector/exporters/prometheus/prometheus.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "collector/exporters/prometheus/names.h"
#include "common/endpoint.h"
#include "common/prometheus_text.h"

namespace shmstats::collector {
namespace {

namespace text = common::prometheus;
using aggregate::SeriesState;

text::MetricType type_of(model::Kind kind) noexcept {
  switch (kind) {
    case model::Kind::kCounter:
      return text::MetricType::kCounter;
    case model::Kind::kHistogram:
    case model::Kind::kTiming:
      return text::MetricType::kHistogram;
    default:
      return text::MetricType::kGauge;
  }
}

// One series as it goes on the page.
struct Entry {
  const SeriesState* state = nullptr;
  std::string family;
  text::MetricType type = text::MetricType::kGauge;
  std::vector<std::pair<std::string, std::string>> labels;  // sorted by name
  std::string labels_key;  // labels as the page writes them, joined: sorting, duplicates
  std::string original;  // service, name and tags as pushed: the tie-break
};

std::vector<std::pair<std::string, std::string>> labels_of(const model::SeriesDef& def,
                                                           const PrometheusOptions& options) {
  std::vector<std::pair<std::string, std::string>> labels;
  for (const auto& [key, value] : def.tags) {
    std::string name = prometheus::label_name(key);
    // Keys that meet after mapping: the first (in original key order) keeps the name.
    const auto taken = [&](const std::string& n) {
      return std::any_of(labels.begin(), labels.end(), [&](const auto& l) { return l.first == n; });
    };
    if (taken(name)) {
      int n = 2;
      while (taken(fmt::format("{}_{}", name, n))) ++n;
      name = fmt::format("{}_{}", name, n);
    }
    labels.emplace_back(std::move(name), value);
  }
  const auto has = [&](std::string_view n) {
    return std::any_of(labels.begin(), labels.end(), [&](const auto& l) { return l.first == n; });
  };
  if (options.service_label && !has("service")) labels.emplace_back("service", def.service);
  if (options.host_label && !has("host")) labels.emplace_back("host", options.host);
  std::sort(labels.begin(), labels.end());
  return labels;
}

std::string original_of(const model::SeriesDef& def) {
  std::string key = def.service + '\0' + def.name;
  for (const auto& [k, v] : def.tags) key += '\0' + k + '=' + v;
  return key;
}

void write_series(text::TextWriter& out, const Entry& e) {
  std::vector<text::Label> labels;
  labels.reserve(e.labels.size() + 1);
  for (const auto& [k, v] : e.labels) labels.push_back(text::Label{k, v});
  const SeriesState& s = *e.state;
  switch (s.kind) {
    case model::Kind::kCounter:
    case model::Kind::kGauge:
    case model::Kind::kGaugeDelta:
      out.sample(e.family, labels, s.value);
      return;
    case model::Kind::kSet:
      out.sample(e.family, labels, s.last_distinct);
      return;
    case model::Kind::kHistogram:
    case model::Kind::kTiming: {
      const std::string bucket = e.family + "_bucket";
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
      out.sample(e.family + "_sum", labels, s.sum);
      out.sample(e.family + "_count", labels, s.count);
      return;
    }
  }
}

}  // namespace

const char* to_string(HiddenReason reason) noexcept {
  switch (reason) {
    case HiddenReason::kKindConflict:
      return "kind_conflict";
    case HiddenReason::kReservedName:
      return "reserved_name";
    case HiddenReason::kDuplicate:
      return "duplicate";
    case HiddenReason::kCount:
      break;
  }
  return "?";
}

std::string render_page(const aggregate::Stage& stage, const PrometheusOptions& options,
                        std::uint64_t (&hidden)[kHiddenReasonCount]) {
  for (auto& h : hidden) h = 0;
  std::map<std::string, std::vector<Entry>> families;
  for (const auto& state : stage.series()) {
    Entry e;
    e.state = state.get();
    e.family = prometheus::metric_name(state->def->name, state->kind);
    e.type = type_of(state->kind);
    e.labels = labels_of(*state->def, options);
    // The key is the labels as written: values that differ only in bytes that are not UTF-8
    // are written alike (common/prometheus_text.h), so they are one series on the page.
    for (const auto& [k, v] : e.labels) {
      e.labels_key += k;
      e.labels_key += '\0';
      e.labels_key += text::escape_label_value(v);
      e.labels_key += '\0';
    }
    e.original = original_of(*state->def);
    families[e.family].push_back(std::move(e));
  }
  // One type per family: the lowest kind's.
  for (auto& [name, entries] : families) {
    const auto lowest = std::min_element(entries.begin(), entries.end(), [](auto& a, auto& b) {
      return a.state->kind < b.state->kind;
    });
    const text::MetricType type = lowest->type;
    const auto before = entries.size();
    std::erase_if(entries, [&](const Entry& e) { return e.type != type; });
    hidden[static_cast<std::size_t>(HiddenReason::kKindConflict)] += before - entries.size();
  }
  // A histogram's sample names are not free for other families.
  for (const auto& [name, entries] : families) {
    if (entries.empty() || entries.front().type != text::MetricType::kHistogram) continue;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const auto it = families.find(name + suffix);
      if (it == families.end()) continue;
      hidden[static_cast<std::size_t>(HiddenReason::kReservedName)] += it->second.size();
      it->second.clear();
    }
  }
  text::TextWriter out;
  for (auto& [name, entries] : families) {
    if (entries.empty()) continue;
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.labels_key, a.original) < std::tie(b.labels_key, b.original);
    });
    const auto first_original = std::min_element(
        entries.begin(), entries.end(), [](auto& a, auto& b) { return a.original < b.original; });
    const SeriesState& help_of = *first_original->state;
    out.family(name, entries.front().type,
               fmt::format("shmstats {} {}", shm::to_string(help_of.kind), help_of.def->name));
    const std::string* previous = nullptr;
    for (const Entry& e : entries) {
      if (previous != nullptr && *previous == e.labels_key) {
        ++hidden[static_cast<std::size_t>(HiddenReason::kDuplicate)];
        continue;
      }
      previous = &e.labels_key;
      write_series(out, e);
    }
  }
  return out.take();
}

shm::Result<std::unique_ptr<PrometheusExporter>> PrometheusExporter::create(
    PrometheusOptions options) {
  auto where = common::parse_listen_address(options.listen);
  if (!where) return where.error();
  std::unique_ptr<PrometheusExporter> e(new PrometheusExporter(std::move(options)));
  PrometheusExporter* self = e.get();
  auto server = common::HttpServer::start(
      where.value().host, where.value().port,
      {common::HttpRoute{"/metrics", [self] { return common::HttpResponse{200, self->page()}; }}});
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
  out.push_back({"shmstats_exporter_prometheus_series", "gauge",
                 "Series the aggregation stage holds.", {}, load(published_.series)});
  out.push_back({"shmstats_exporter_prometheus_memory_bytes", "gauge",
                 "Estimated bytes of the aggregation stage's series state (at the last interval).",
                 {}, load(published_.memory_bytes)});
  out.push_back({"shmstats_exporter_prometheus_series_expired_total", "counter",
                 "Series removed after no update for the expiry time.", {},
                 load(published_.series_expired)});
  out.push_back({"shmstats_exporter_prometheus_placed_at_mean_total", "counter",
                 "Folded samples put into the bucket of their group's mean (an approximation).",
                 {}, load(published_.placed_at_mean)});
  for (std::size_t i = 0; i < aggregate::kDropReasonCount; ++i) {
    out.push_back({"shmstats_exporter_prometheus_dropped_events_total", "counter",
                   "Events the aggregation stage refused, by reason.",
                   {{"reason", aggregate::to_string(static_cast<aggregate::DropReason>(i))}},
                   load(published_.dropped[i])});
  }
  for (std::size_t i = 0; i < kHiddenReasonCount; ++i) {
    out.push_back({"shmstats_exporter_prometheus_hidden_series", "gauge",
                   "Series left off the last page, by reason (names that met after mapping).",
                   {{"reason", to_string(static_cast<HiddenReason>(i))}},
                   load(published_.hidden[i])});
  }
  out.push_back({"shmstats_exporter_prometheus_scrapes_total", "counter",
                 "Pages served on the scrape endpoint.", {}, load(published_.scrapes)});
}

}  // namespace shmstats::collector
