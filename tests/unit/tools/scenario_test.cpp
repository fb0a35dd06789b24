// The load scenarios' measuring pieces as units: the histogram quantiles computed from scraped
// buckets, /proc usage, the scenario table and its arguments. The Prometheus text reader they use
// is tested in tests/unit/common/prometheus_text_test.cpp; the scenario runner itself runs end to
// end in tests/e2e/scenario_test.cpp.
#include "tools/loadgen/scenario.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/prometheus_text.h"
#include "tools/loadgen/metrics_page.h"
#include "tools/loadgen/proc_usage.h"

namespace shmstats::tools::loadgen {
namespace {

ParsedArgs parse(std::vector<std::string> args) {
  args.insert(args.begin(), "shmstats-loadgen");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_args(static_cast<int>(argv.size()), argv.data());
}

constexpr const char* kPage =
    "# HELP shmstats_recv_events_total Events in accepted datagrams.\n"
    "# TYPE shmstats_recv_events_total counter\n"
    "shmstats_recv_events_total 1234\n"
    "shmstats_recv_malformed_total{reason=\"too_short\"} 2\n"
    "shmstats_recv_malformed_total{reason=\"bad_crc\"} 3\n"
    "shmstats_lat_bucket{le=\"0.001\"} 10\n"
    "shmstats_lat_bucket{le=\"0.002\"} 30\n"
    "shmstats_lat_bucket{le=\"0.004\"} 40\n"
    "shmstats_lat_bucket{le=\"+Inf\"} 40\n"
    "broken line without a value\n"
    "shmstats_with_timestamp 7 1700000000000\n";

TEST(ScenarioPrometheusTest, ScrapedPageSumsSamplesOverTheirLabels) {
  const auto sut = common::prometheus::parse_text(kPage);

  EXPECT_EQ(common::prometheus::sum(sut, "shmstats_recv_events_total"), 1234);
  EXPECT_EQ(common::prometheus::sum(sut, "shmstats_recv_malformed_total"), 5);
  EXPECT_EQ(common::prometheus::sum(sut, "shmstats_with_timestamp"), 7);
  EXPECT_EQ(common::prometheus::sum(sut, "broken"), 0);
  EXPECT_EQ(common::prometheus::sum(sut, "absent"), 0);
}

TEST(ScenarioHistogramTest, QuantileInterpolatesInsideItsBucket) {
  const Cumulative sut =
      prom_histogram(common::prometheus::parse_text(kPage), "shmstats_lat_bucket");
  ASSERT_EQ(sut.size(), 4U);
  ASSERT_TRUE(std::isinf(sut.back().first));

  // 40 samples: rank 20 is half-way through the second bucket (10..30 over 1..2 ms).
  const auto p50 = histogram_quantile(sut, 0.5);
  ASSERT_TRUE(p50);
  EXPECT_NEAR(*p50, 0.0015, 1e-12);
  // Rank 4 is 40% into the first bucket, which starts at 0.
  const auto p10 = histogram_quantile(sut, 0.1);
  ASSERT_TRUE(p10);
  EXPECT_NEAR(*p10, 0.0004, 1e-12);
  const auto p100 = histogram_quantile(sut, 1.0);
  ASSERT_TRUE(p100);
  EXPECT_NEAR(*p100, 0.004, 1e-12);
}

TEST(ScenarioHistogramTest, QuantileInTheInfiniteBucketIsTheLastFiniteBound) {
  const Cumulative sut = {{0.001, 1}, {0.002, 1}, {HUGE_VAL, 10}};

  const auto p99 = histogram_quantile(sut, 0.99);

  ASSERT_TRUE(p99);
  EXPECT_EQ(*p99, 0.002);
}

TEST(ScenarioHistogramTest, DeltaOfTwoScrapesHoldsOnlyTheIntervalsSamples) {
  const Cumulative earlier = {{0.001, 10}, {0.002, 30}, {HUGE_VAL, 30}};
  const Cumulative later = {{0.001, 10}, {0.002, 50}, {HUGE_VAL, 50}};

  const Cumulative sut = histogram_delta(later, earlier);

  ASSERT_EQ(sut.size(), 3U);
  EXPECT_EQ(sut[0].second, 0);
  EXPECT_EQ(sut[1].second, 20);
  const auto p50 = histogram_quantile(sut, 0.5);
  ASSERT_TRUE(p50);
  EXPECT_GT(*p50, 0.001);  // every sample of the interval is in (1, 2] ms
  EXPECT_LE(*p50, 0.002);
}

TEST(ScenarioHistogramTest, EmptyHistogramHasNoQuantile) {
  EXPECT_EQ(histogram_quantile({}, 0.5), std::nullopt);
  EXPECT_EQ(histogram_quantile({{0.001, 0}, {HUGE_VAL, 0}}, 0.5), std::nullopt);
}

TEST(ScenarioProcTest, ReadsThisProcessesCpuAndMemory) {
  const auto sut = read_proc_usage(::getpid());

  ASSERT_TRUE(sut);
  EXPECT_GT(sut->rss_mb, 0);
  EXPECT_GT(sut->rss_anon_mb, 0);
  EXPECT_LE(sut->rss_anon_mb, sut->rss_mb);
  EXPECT_GE(sut->cpu_s, 0);
}

TEST(ScenarioProcTest, VanishedProcessHasNoUsage) {
  // pid_max is at most 2^22 on Linux: this pid cannot exist.
  EXPECT_EQ(read_proc_usage(1 << 23), std::nullopt);
}

TEST(ScenarioArgsTest, ScenarioSetsItsShapeAndScaleShortensTheDuration) {
  const ScenarioSpec* high = find_scenario("high");
  ASSERT_NE(high, nullptr);

  const auto sut = parse({"--scenario", "high", "--scale", "0.1"});

  ASSERT_FALSE(sut.exit_code) << sut.err;
  EXPECT_EQ(sut.config.rate, high->rate);
  EXPECT_EQ(sut.config.processes, high->processes);
  EXPECT_EQ(sut.config.threads, high->threads);
  EXPECT_EQ(sut.config.series, high->series);
  EXPECT_DOUBLE_EQ(sut.config.duration_s, high->duration_s * 0.1);
}

TEST(ScenarioArgsTest, ExplicitFlagsBeatTheScenario) {
  const auto sut = parse({"--scenario", "burst", "--processes", "3", "--rate", "2000"});

  ASSERT_FALSE(sut.exit_code) << sut.err;
  EXPECT_EQ(sut.config.processes, 3);
  EXPECT_EQ(sut.config.rate, 2000);
  EXPECT_EQ(sut.config.threads, find_scenario("burst")->threads);
}

TEST(ScenarioArgsTest, UnknownScenarioAndScenarioOnlyFlagsWithoutOneAreRefused) {
  const auto unknown = parse({"--scenario", "nonesuch"});
  const auto scale_alone = parse({"--scale", "0.5"});
  const auto with_events = parse({"--scenario", "baseline", "--events-per-thread", "10"});

  EXPECT_EQ(unknown.exit_code, kExitBadArguments);
  EXPECT_EQ(scale_alone.exit_code, kExitBadArguments);
  EXPECT_EQ(with_events.exit_code, kExitBadArguments);
  EXPECT_FALSE(unknown.err.empty());
}

TEST(ScenarioTableTest, HasTheFourLoadScenariosAndTheSegmentsOne) {
  for (const char* name : {"baseline", "high", "stress", "burst", "segments"}) {
    const ScenarioSpec* sut = find_scenario(name);
    ASSERT_NE(sut, nullptr) << name;
    EXPECT_GT(sut->rate, 0) << name;
    EXPECT_GT(sut->duration_s, 0) << name;
    EXPECT_GE(sut->processes * sut->threads, 2) << name << ": several producers";
  }
  EXPECT_EQ(find_scenario("burst")->rate, 1'000'000);
  EXPECT_EQ(find_scenario("segments")->processes, 64);
}

}  // namespace
}  // namespace shmstats::tools::loadgen
