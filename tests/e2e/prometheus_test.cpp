// The prometheus output against the real Prometheus 2.42 (../shared/peers/start-prometheus.sh,
// scraping the collector's --prometheus endpoint every second): loadgen producers with known
// per-series totals, folded traffic included, and what Prometheus' query API then returns; the
// page passes promtool; expiry and the cardinality cap show on the collector's /metrics.
#include "collector/exporters/prometheus/prometheus.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/peers.h"
#include "tests/support/pipeline.h"
#include "tests/support/support.h"
#include "tests/unit/collector/batch_builder.h"

namespace shmstats {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::add_report;
using testing::ChildProcess;
using testing::http_get;
using testing::Pushed;
using testing::run_loadgen;
using testing::SegmentGuard;
using testing::TempDir;
using testing::unique_prefix;
using testing::wait_until;
using namespace std::chrono_literals;

constexpr auto kWait = 90s;

// A collector with a prometheus output on a port the kernel picks.
struct Collector {
  ChildProcess process;
  std::uint16_t scrape_port = 0;
  std::uint16_t http_port = 0;
};

std::uint16_t port_of(const std::string& host_port) {
  const auto colon = host_port.rfind(':');
  return colon == std::string::npos
             ? 0
             : static_cast<std::uint16_t>(std::stoul(host_port.substr(colon + 1)));
}

Collector start_collector(const std::string& prefix, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {SHMSTATS_COLLECTOR_BIN, "--shm-prefix", prefix, "--http",
                                   "127.0.0.1:0",          "--log-level",  "warn", "--prometheus",
                                   "127.0.0.1:0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  Collector c{ChildProcess::spawn(argv)};
  const std::string scrape = c.process.read_line_starting("listening prometheus ", 10s);
  const std::string http = c.process.read_line_starting("listening http ", 10s);
  c.scrape_port = scrape.empty() ? 0 : port_of(scrape);
  c.http_port = http.empty() ? 0 : port_of(http);
  return c;
}

std::string promtool_check(const std::string& page, const TempDir& dir) {
  const std::string file = dir.file("page.txt");
  std::ofstream(file) << page;
  const std::string cmd = "promtool check metrics < " + file + " 2>&1; echo exit=$?";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  std::string output;
  if (pipe == nullptr) return "popen failed";
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  ::pclose(pipe);
  return output;
}

// Loadgen series loadgen.s<k> of kind k % 4 (counter, timing, histogram, gauge) pushed by several
// processes, then a second run with small rings so counters, timings and histograms fold: the
// totals Prometheus holds are the producers' own, per series, to the last event.
TEST(PrometheusOutputTest, RealPrometheusHoldsExactlyWhatTheProducersPushed) {
  constexpr int kEventsPerThread = 300;
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  // A queue of many batches: under the sanitizers the stage can lag the drain, and a full queue
  // would drop (and count) batches the exact comparison must see.
  auto collector = start_collector(guard.prefix(),
                                   {"--prometheus-interval", "500ms", "--exporter-queue", "10000"});
  ASSERT_NE(collector.scrape_port, 0);
  ASSERT_NE(collector.http_port, 0);
  testing::Peer prometheus("start-prometheus.sh",
                           "127.0.0.1:" + std::to_string(collector.scrape_port), dir, "prometheus");
  ASSERT_TRUE(prometheus.started());

  std::map<std::string, Pushed> pushed;
  // Run 1: 3 processes x 2 threads, 8 series, rings large enough that nothing folds.
  const json paced = run_loadgen(
      SHMSTATS_LOADGEN_BIN, guard.prefix(), dir.file("paced.json"),
      {"--processes", "3", "--threads", "2", "--series", "8", "--events-per-thread",
       std::to_string(kEventsPerThread), "--rate", "20000", "--ring-capacity", "65536"});
  ASSERT_NO_FATAL_FAILURE(add_report(paced, pushed));
  ASSERT_EQ(paced.at("totals").at("refused").get<std::uint64_t>(), 0U);
  // Run 2: series s0..s2 only (no gauge), unpaced into 64-slot rings: many values fold.
  const json folded =
      run_loadgen(SHMSTATS_LOADGEN_BIN, guard.prefix(), dir.file("folded.json"),
                  {"--processes", "2", "--threads", "2", "--series", "3", "--events-per-thread",
                   "20000", "--ring-capacity", "64", "--overflow", "fold"});
  ASSERT_NO_FATAL_FAILURE(add_report(folded, pushed));
  ASSERT_EQ(folded.at("totals").at("refused").get<std::uint64_t>(), 0U);

  const double gauge_last = (kEventsPerThread - 1) % 500;
  std::string last;
  ASSERT_TRUE(
      wait_until([&] { return testing::store_holds_counts(prometheus, pushed, gauge_last, last); },
                 kWait, [&] { return last; }));
  testing::expect_sums(prometheus, pushed);
  // One series per name, with the labels the README promises.
  const json series = prometheus.query("loadgen_s0_total");
  ASSERT_EQ(series["data"]["result"].size(), 1U) << series.dump();
  const json& labels = series["data"]["result"][0]["metric"];
  EXPECT_EQ(labels.value("service", ""), "loadgen");
  EXPECT_EQ(labels.value("shard", ""), "0");
  EXPECT_FALSE(labels.value("host", "").empty());
  // Folds happened, and their samples were placed at their means (counted).
  const std::string metrics = http_get(collector.http_port, "/metrics");
  EXPECT_GT(testing::prom_value(metrics, "shmstats_collector_folded_values_received_total"), 0);
  EXPECT_GT(testing::prom_value(metrics, "shmstats_exporter_prometheus_placed_at_mean_total",
                                "exporter=\"prometheus\""),
            0);
  // The page parses and lints clean.
  const std::string lint = promtool_check(http_get(collector.scrape_port, "/metrics"), dir);
  EXPECT_NE(lint.find("exit=0"), std::string::npos) << lint;
  collector.process.kill(SIGTERM);
  EXPECT_EQ(collector.process.wait(30s), 0);
}

// Series beyond --prometheus-max-series are refused and counted; series idle for
// --prometheus-expiry leave the page, counted.
TEST(PrometheusOutputTest, CardinalityCapAndExpiryShowOnTheCollectorsMetrics) {
  constexpr int kCap = 5;
  constexpr int kSeries = 8;
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  auto collector = start_collector(
      guard.prefix(), {"--prometheus-max-series", std::to_string(kCap), "--prometheus-expiry", "1s",
                       "--prometheus-interval", "200ms"});
  ASSERT_NE(collector.scrape_port, 0);
  const json report =
      run_loadgen(SHMSTATS_LOADGEN_BIN, guard.prefix(), dir.file("run.json"),
                  {"--processes", "1", "--threads", "1", "--series", std::to_string(kSeries),
                   "--events-per-thread", "10", "--kinds", "counter", "--ring-capacity", "1024"});
  ASSERT_TRUE(report.contains("totals"));
  const std::string label = "exporter=\"prometheus\"";
  std::string metrics;
  ASSERT_TRUE(wait_until(
      [&] {
        metrics = http_get(collector.http_port, "/metrics");
        return testing::prom_value(metrics, "shmstats_exporter_prometheus_dropped_events_total",
                                   label + ",reason=\"cardinality_cap\"") == (kSeries - kCap) * 10;
      },
      kWait, [&] { return metrics; }));
  EXPECT_EQ(testing::prom_value(metrics, "shmstats_exporter_prometheus_series", label), kCap);
  ASSERT_TRUE(wait_until(
      [&] {
        metrics = http_get(collector.http_port, "/metrics");
        return testing::prom_value(metrics, "shmstats_exporter_prometheus_series_expired_total",
                                   label) == kCap;
      },
      kWait, [&] { return metrics; }));
  EXPECT_EQ(testing::prom_value(metrics, "shmstats_exporter_prometheus_series", label), 0);
  const std::string page = http_get(collector.scrape_port, "/metrics");
  EXPECT_EQ(page.find("loadgen_"), std::string::npos) << page;
  collector.process.kill(SIGTERM);
  EXPECT_EQ(collector.process.wait(30s), 0);
}

// Names and tags that need every rule of the mapping table, and series that meet after mapping:
// promtool finds no parse error and no lint problem on the page.
TEST(PrometheusOutputTest, MappedNamesPassPromtoolWithoutLintProblems) {
  TempDir dir;
  collector::aggregate::Stage stage({});
  testing::BatchBuilder b;
  const std::vector<std::pair<std::string, model::Kind>> names = {
      {"http.requests", model::Kind::kCounter},
      {"cacheHits", model::Kind::kCounter},
      {"HTTPErrors", model::Kind::kGauge},
      {"db.query.ms", model::Kind::kTiming},
      {"render-time_msec", model::Kind::kTiming},
      {"5xx", model::Kind::kCounter},
      {"queue.depth", model::Kind::kGaugeDelta},
      {"payload.size", model::Kind::kHistogram},
      {"active.users", model::Kind::kSet},
      {"jobs_total", model::Kind::kCounter},
      {"x", model::Kind::kCounter},
      {"x.total", model::Kind::kGauge},
      {"size", model::Kind::kHistogram},
      {"size.count", model::Kind::kGauge},
      {"cache.hits", model::Kind::kCounter},
      {"a..batch", model::Kind::kGauge}};
  for (const auto& [name, kind] : names) {
    b.point(b.series(name, kind,
                     {{"2fa", "on"},
                      {"__name__", "x"},
                      {"a-b", "1"},
                      {"a.b", "2"},
                      {"le", "0.5"},
                      {"userId", "caf\xC3\xA9 \"q\"\\"}},
                     "svc"),
            1);
  }
  (void)stage.merge(b.batch());
  stage.roll();
  collector::PrometheusOptions options;
  options.view.host = "host-1";
  std::uint64_t hidden[collector::kHiddenReasonCount] = {};

  const std::string page = collector::render_page(stage, options, hidden);
  const std::string lint = promtool_check(page, dir);

  EXPECT_NE(lint.find("exit=0"), std::string::npos) << lint << "\n" << page;
  EXPECT_EQ(lint.find("exit=0"), 0U) << "no finding at all: " << lint;
}

}  // namespace
}  // namespace shmstats
