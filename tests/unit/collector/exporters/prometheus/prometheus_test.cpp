#include "collector/exporters/prometheus/prometheus.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "collector/exporters/prometheus/names.h"
#include "common/http_client.h"
#include "tests/unit/collector/batch_builder.h"

namespace shmstats::collector {
namespace {

using aggregate::Stage;
using testing::BatchBuilder;

struct Rendered {
  std::string page;
  std::uint64_t hidden[kHiddenReasonCount] = {};
  std::uint64_t count(HiddenReason r) const { return hidden[static_cast<std::size_t>(r)]; }
};

Rendered render(const Stage& stage, PrometheusOptions options = {}) {
  Rendered r;
  options.view.host = "h1";
  r.page = render_page(stage, options, r.hidden);
  return r;
}

bool has_line(const std::string& page, const std::string& line) {
  return page.find("\n" + line + "\n") != std::string::npos || page.starts_with(line + "\n");
}

TEST(PrometheusNamesTest, MetricNamesFollowTheMappingTable) {
  using model::Kind;
  EXPECT_EQ(prometheus::metric_name("http.requests", Kind::kCounter), "http_requests_total");
  EXPECT_EQ(prometheus::metric_name("jobs_total", Kind::kCounter), "jobs_total");
  EXPECT_EQ(prometheus::metric_name("cacheHits", Kind::kCounter), "cache_hits_total");
  EXPECT_EQ(prometheus::metric_name("HTTPErrors", Kind::kGauge), "http_errors");
  EXPECT_EQ(prometheus::metric_name("db.query.ms", Kind::kTiming), "db_query_seconds");
  EXPECT_EQ(prometheus::metric_name("db.latency", Kind::kTiming), "db_latency_seconds");
  EXPECT_EQ(prometheus::metric_name("render-time_msec", Kind::kTiming), "render_time_seconds");
  EXPECT_EQ(prometheus::metric_name("ms", Kind::kTiming), "unnamed_seconds");
  EXPECT_EQ(prometheus::metric_name("5xx", Kind::kCounter), "n_5xx_total");
  EXPECT_EQ(prometheus::metric_name("a..b--c", Kind::kGauge), "a_b_c");
  EXPECT_EQ(prometheus::metric_name("queue.depth", Kind::kGaugeDelta), "queue_depth");
  EXPECT_EQ(prometheus::metric_name("payload.size", Kind::kHistogram), "payload_size");
}

// promtool lints a counter family named just "total" ("counter metrics should have "_total"
// suffix"): the suffix is a word after the name, not the whole name.
TEST(PrometheusNamesTest, CounterNamedTotalStillGetsTheSuffix) {
  EXPECT_EQ(prometheus::metric_name("total", model::Kind::kCounter), "total_total");
  EXPECT_EQ(prometheus::metric_name("Total", model::Kind::kCounter), "total_total");
}

TEST(PrometheusNamesTest, LabelNamesAvoidReservedAndInvalidForms) {
  EXPECT_EQ(prometheus::label_name("route"), "route");
  EXPECT_EQ(prometheus::label_name("http.method"), "http_method");
  EXPECT_EQ(prometheus::label_name("userId"), "user_id");
  EXPECT_EQ(prometheus::label_name("2fa"), "tag_2fa");
  EXPECT_EQ(prometheus::label_name("__name__"), "tag_name");
  EXPECT_EQ(prometheus::label_name("le"), "tag_le");
  EXPECT_EQ(prometheus::label_name("quantile"), "tag_quantile");
  EXPECT_EQ(prometheus::label_name("caf\xC3\xA9"), "caf");
  EXPECT_EQ(prometheus::label_name("\xC3\xA9"), "tag");
}

TEST(PrometheusPageTest, CounterGaugeAndSetCarryServiceAndHostLabels) {
  Stage stage({});
  BatchBuilder b;
  b.point(b.series("hits", model::Kind::kCounter, {{"route", "/a"}}, "shop"), 4)
      .point(b.series("depth", model::Kind::kGauge, {}, "shop"), 7)
      .point(b.series("users", model::Kind::kSet, {}, "shop"), 1);
  (void)stage.merge(b.batch());
  stage.roll();

  const Rendered r = render(stage);

  EXPECT_TRUE(has_line(r.page, "# TYPE hits_total counter")) << r.page;
  EXPECT_TRUE(has_line(r.page, "# HELP hits_total shmstats counter hits")) << r.page;
  EXPECT_TRUE(has_line(r.page, "hits_total{host=\"h1\",route=\"/a\",service=\"shop\"} 4"))
      << r.page;
  EXPECT_TRUE(has_line(r.page, "depth{host=\"h1\",service=\"shop\"} 7")) << r.page;
  EXPECT_TRUE(has_line(r.page, "# TYPE users gauge")) << r.page;
  EXPECT_TRUE(has_line(r.page, "users{host=\"h1\",service=\"shop\"} 1")) << r.page;
}

TEST(PrometheusPageTest, TimingIsAHistogramInSecondsWithCumulativeBuckets) {
  aggregate::StageOptions options;
  options.default_bounds = {0.01, 0.1};
  Stage stage(options);
  BatchBuilder b;
  const auto* t = b.series("db.ms", model::Kind::kTiming, {}, "svc");
  b.point(t, 5).point(t, 50).point(t, 500);
  (void)stage.merge(b.batch());
  PrometheusOptions page_options;
  page_options.view.host_label = false;

  const Rendered r = render(stage, page_options);

  EXPECT_TRUE(has_line(r.page, "# TYPE db_seconds histogram")) << r.page;
  EXPECT_TRUE(has_line(r.page, "db_seconds_bucket{service=\"svc\",le=\"0.01\"} 1")) << r.page;
  EXPECT_TRUE(has_line(r.page, "db_seconds_bucket{service=\"svc\",le=\"0.1\"} 2")) << r.page;
  EXPECT_TRUE(has_line(r.page, "db_seconds_bucket{service=\"svc\",le=\"+Inf\"} 3")) << r.page;
  EXPECT_TRUE(has_line(r.page, "db_seconds_sum{service=\"svc\"} 0.555")) << r.page;
  EXPECT_TRUE(has_line(r.page, "db_seconds_count{service=\"svc\"} 3")) << r.page;
}

TEST(PrometheusPageTest, OwnServiceTagWinsAndLabelsCanBeSwitchedOff) {
  Stage stage({});
  BatchBuilder b;
  b.point(b.series("hits", model::Kind::kCounter, {{"service", "own"}}, "segment"), 1);
  (void)stage.merge(b.batch());
  PrometheusOptions no_host;
  no_host.view.host_label = false;

  const Rendered r = render(stage, no_host);

  EXPECT_TRUE(has_line(r.page, "hits_total{service=\"own\"} 1")) << r.page;
}

TEST(PrometheusPageTest, TagKeysThatMeetAfterMappingAreNumberedInOriginalOrder) {
  Stage stage({});
  BatchBuilder b;
  // Sorted by original key: "a-b" < "a.b" < "a_b".
  b.point(b.series("hits", model::Kind::kCounter, {{"a-b", "1"}, {"a.b", "2"}, {"a_b", "3"}}), 1);
  (void)stage.merge(b.batch());
  PrometheusOptions bare;
  bare.view.host_label = bare.view.service_label = false;

  const Rendered r = render(stage, bare);

  EXPECT_TRUE(has_line(r.page, "hits_total{a_b=\"1\",a_b_2=\"2\",a_b_3=\"3\"} 1")) << r.page;
}

TEST(PrometheusPageTest, NameUsedWithTwoKindsKeepsTheLowerKindAndCountsTheOther) {
  Stage stage({});
  BatchBuilder b;
  // "x.total" as a gauge and "x" as a counter both map to x_total.
  b.point(b.series("x.total", model::Kind::kGauge), 5)
      .point(b.series("x", model::Kind::kCounter), 2);
  (void)stage.merge(b.batch());

  const Rendered first = render(stage);
  const Rendered second = render(stage);

  EXPECT_TRUE(has_line(first.page, "# TYPE x_total counter")) << first.page;
  EXPECT_EQ(first.page.find("} 5"), std::string::npos) << first.page;
  EXPECT_EQ(first.count(HiddenReason::kKindConflict), 1U);
  EXPECT_EQ(first.page, second.page) << "deterministic";
}

TEST(PrometheusPageTest, RenderingAgainReplacesTheHiddenCountsItWasGiven) {
  constexpr std::uint64_t kStale = 99;
  Stage stage({});
  BatchBuilder b;
  b.point(b.series("x.total", model::Kind::kGauge), 5)
      .point(b.series("x", model::Kind::kCounter), 2);
  (void)stage.merge(b.batch());
  std::uint64_t hidden[kHiddenReasonCount] = {kStale, kStale, kStale};

  (void)render_page(stage, PrometheusOptions{}, hidden);

  EXPECT_EQ(hidden[static_cast<std::size_t>(HiddenReason::kKindConflict)], 1U);
  EXPECT_EQ(hidden[static_cast<std::size_t>(HiddenReason::kReservedName)], 0U);
  EXPECT_EQ(hidden[static_cast<std::size_t>(HiddenReason::kDuplicate)], 0U);
}

TEST(PrometheusPageTest, HistogramReservesItsSampleNames) {
  Stage stage({});
  BatchBuilder b;
  b.point(b.series("size", model::Kind::kHistogram), 5)
      .point(b.series("size.count", model::Kind::kGauge), 9);
  (void)stage.merge(b.batch());

  const Rendered r = render(stage);

  EXPECT_EQ(r.page.find("# TYPE size_count gauge"), std::string::npos) << r.page;
  EXPECT_EQ(r.count(HiddenReason::kReservedName), 1U);
}

TEST(PrometheusPageTest, SeriesThatMeetAfterMappingAppearOnceAndTheRestAreCounted) {
  Stage stage({});
  BatchBuilder b;
  b.point(b.series("cache.hits", model::Kind::kCounter, {}, "s"), 1)
      .point(b.series("cache_hits", model::Kind::kCounter, {}, "s"), 2)
      .point(b.series("cacheHits", model::Kind::kCounter, {}, "s"), 3);
  (void)stage.merge(b.batch());

  const Rendered r = render(stage);

  std::size_t lines = 0;
  for (std::size_t pos = 0; (pos = r.page.find("\ncache_hits_total{", pos)) != std::string::npos;
       ++pos) {
    ++lines;
  }
  EXPECT_EQ(lines, 1U) << r.page;
  EXPECT_TRUE(has_line(r.page, "cache_hits_total{host=\"h1\",service=\"s\"} 1"))
      << "\"cache.hits\" sorts first: " << r.page;
  EXPECT_EQ(r.count(HiddenReason::kDuplicate), 2U);
}

TEST(PrometheusPageTest, LabelValuesAreEscaped) {
  Stage stage({});
  BatchBuilder b;
  b.point(b.series("hits", model::Kind::kCounter, {{"q", "a\"b\\c"}}), 1);
  (void)stage.merge(b.batch());
  PrometheusOptions bare;
  bare.view.host_label = bare.view.service_label = false;

  const Rendered r = render(stage, bare);

  EXPECT_TRUE(has_line(r.page, "hits_total{q=\"a\\\"b\\\\c\"} 1")) << r.page;
}

// A service name is untrusted bytes (a segment's header): two that differ only in bytes that are
// not UTF-8 are written as the same label value, so they are one series on the page.
TEST(PrometheusPageTest, ServicesThatEscapeAlikeAppearOnceAndTheRestAreCounted) {
  Stage stage({});
  BatchBuilder b;
  b.point(b.series("hits", model::Kind::kCounter, {}, "bad\xFF"), 1)
      .point(b.series("hits", model::Kind::kCounter, {}, "bad\xFE"), 2);
  (void)stage.merge(b.batch());
  PrometheusOptions no_host;
  no_host.view.host_label = false;

  const Rendered r = render(stage, no_host);

  const std::string line = "hits_total{service=\"bad\xEF\xBF\xBD\"} ";
  std::size_t lines = 0;
  for (std::size_t at = r.page.find(line); at != std::string::npos;
       at = r.page.find(line, at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 1U) << r.page;
  EXPECT_EQ(r.count(HiddenReason::kDuplicate), 1U);
}

TEST(PrometheusExporterTest, SendReportsEventsTheStageRefusedAsDropped) {
  PrometheusOptions options;
  options.listen = "127.0.0.1:0";
  options.stage.max_series = 1;
  auto sut = PrometheusExporter::create(options);
  ASSERT_TRUE(sut) << sut.error().message;
  BatchBuilder b;
  b.point(b.series("kept", model::Kind::kCounter), 1)
      .point(b.series("refused", model::Kind::kCounter), 1)
      .point(b.series("kept", model::Kind::kCounter), -1);

  const SendResult r = sut.value()->send(b.batch());

  EXPECT_EQ(r.events_merged, 1U);
  EXPECT_EQ(r.events_dropped, 2U) << "one beyond the cap, one negative counter increment";
  EXPECT_EQ(r.events_sent, 0U);
}

double hidden_series(const std::vector<ExporterSample>& samples, const std::string& reason) {
  for (const auto& s : samples) {
    if (s.name == "shmstats_exporter_prometheus_hidden_series" && s.labels.size() == 1 &&
        s.labels[0].second == reason) {
      return s.value;
    }
  }
  ADD_FAILURE() << "no hidden_series sample with reason " << reason;
  return -1;
}

TEST(PrometheusExporterTest, ScrapePublishesWhatItsPageHidOnTheCollectorsMetrics) {
  constexpr std::chrono::milliseconds kTimeout{10'000};
  PrometheusOptions options;
  options.listen = "127.0.0.1:0";
  options.view.host = "h1";
  auto sut = PrometheusExporter::create(options);
  ASSERT_TRUE(sut) << sut.error().message;
  BatchBuilder b;
  b.point(b.series("cache.hits", model::Kind::kCounter, {}, "s"), 1)
      .point(b.series("cache_hits", model::Kind::kCounter, {}, "s"), 2)
      .point(b.series("x.total", model::Kind::kGauge), 5)
      .point(b.series("x", model::Kind::kCounter), 2);
  (void)sut.value()->send(b.batch());

  const auto reply = common::http_get("127.0.0.1", sut.value()->port(), "/metrics", kTimeout);

  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply.value().status, 200);
  std::vector<ExporterSample> samples;
  sut.value()->describe_metrics(samples);
  EXPECT_EQ(hidden_series(samples, "duplicate"), 1);
  EXPECT_EQ(hidden_series(samples, "kind_conflict"), 1);
  EXPECT_EQ(hidden_series(samples, "reserved_name"), 0);
}

}  // namespace
}  // namespace shmstats::collector
