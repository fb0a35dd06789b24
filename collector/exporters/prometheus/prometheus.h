// The prometheus output: the aggregation stage (collector/aggregate/stage.h) served as a
// Prometheus scrape endpoint on a listener of its own (GET /metrics), separate from the
// collector's self-telemetry.
//
// The page: the text exposition format 0.0.4, one family per mapped name (names.h; README has
// the table) with HELP and TYPE. Counters are `<name>_total`, gauges `<name>`, timings histograms
// `<name>_seconds` (buckets in seconds), histograms `<name>`, sets gauges `<name>` of the distinct
// members of the last complete interval. Labels: the series' tags (mapped), plus `service` and
// `host` (each switchable; a tag of the same name wins). Families and samples are sorted, so two
// scrapes of the same state are byte for byte the same.
//
// A page never holds a sample line twice, nor two types under one name. Where mapping makes
// series meet, one rule decides, the same on every scrape, and the rest are hidden and counted
// (shmstats_exporter_prometheus_hidden_series{reason}):
//   kind_conflict   one family name from series of different types: the type of the lowest
//                   kind (counter, gauge, gauge delta, histogram, timing, set) keeps the name
//   reserved_name   a family named <histogram>_bucket, _sum or _count beside that histogram
//   duplicate       two series with the same mapped name and labels: the one whose original
//                   service, name and tags sort first stays
//
// Concurrency: an Exporter. send (merge) and flush (roll) run on the runner's thread, the page is
// rendered on the listener's thread; one mutex guards the stage. describe_metrics reads atomics.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "collector/aggregate/stage.h"
#include "collector/exporter.h"
#include "collector/exporters/prometheus/view.h"
#include "common/http_server.h"
#include "shm/result.h"

namespace shmstats::collector {

struct PrometheusOptions {
  // The defaults below are the keys' defaults too (register.cpp declares them from these).
  std::string name = "prometheus";
  std::string listen;                         // required: no default
  std::chrono::milliseconds interval{10000};  // sets' and min/max intervals, expiry checks
  aggregate::StageOptions stage;
  ViewOptions view;  // labels: service, host
};

// Renders the stage as a page; `hidden` receives, per reason, the series left off it.
std::string render_page(const aggregate::Stage& stage, const PrometheusOptions& options,
                        std::uint64_t (&hidden)[kHiddenReasonCount]);

class PrometheusExporter final : public Exporter {
 public:
  // Binds the listener; an error names the address.
  static shm::Result<std::unique_ptr<PrometheusExporter>> create(PrometheusOptions options);
  ~PrometheusExporter() override;

  const std::string& name() const override { return options_.name; }
  SendResult send(const Batch& batch) override;
  SendResult flush() override;  // closes an interval of the stage
  std::chrono::milliseconds flush_interval() const override { return options_.interval; }
  void describe_metrics(std::vector<ExporterSample>& out) const override;

  std::uint16_t port() const noexcept { return server_ ? server_->port() : 0; }
  std::string listen_address() const override;
  std::string page();  // what GET /metrics answers

 private:
  explicit PrometheusExporter(PrometheusOptions options);
  void publish_counters();  // copies the stage's counters to the atomics; holds mutex_

  PrometheusOptions options_;
  std::mutex mutex_;
  aggregate::Stage stage_;
  std::unique_ptr<common::HttpServer> server_;
  struct Published {
    std::atomic<std::uint64_t> series{0};
    std::atomic<std::uint64_t> memory_bytes{0};
    std::atomic<std::uint64_t> placed_at_mean{0};
    std::atomic<std::uint64_t> series_expired{0};
    std::atomic<std::uint64_t> dropped[aggregate::kDropReasonCount] = {};
    std::atomic<std::uint64_t> hidden[kHiddenReasonCount] = {};
    std::atomic<std::uint64_t> scrapes{0};
  };
  Published published_;
};

}  // namespace shmstats::collector
