// shmstats-loadgen: the library's arguments, series, tallies and merge in-process, and the real
// binary (parent plus worker processes) against real /dev/shm segments, whose rings the test then
// drains to check that the reported accepted counts and sums are exactly what the rings hold.
#include "tools/loadgen/loadgen.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "shm/segment.h"
#include "tests/support/support.h"

namespace shmstats::tools::loadgen {
namespace {

using nlohmann::json;
using shmstats::testing::ChildProcess;
using shmstats::testing::SegmentGuard;
using shmstats::testing::unique_prefix;
using namespace std::chrono_literals;

constexpr auto kRunTimeout = 60s;
constexpr std::size_t kPollBatch = 4096;

struct LoadgenRun {
  int exit_code = -1;
  std::string out;
};

LoadgenRun run_loadgen(const std::vector<std::string>& args) {
  std::vector<std::string> argv{LOADGEN_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = ChildProcess::spawn(argv);
  LoadgenRun run;
  run.out = child.read_all(true);
  run.exit_code = child.wait(kRunTimeout);
  return run;
}

ParsedArgs parse(std::vector<std::string> args) {
  args.insert(args.begin(), "shmstats-loadgen");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_args(static_cast<int>(argv.size()), argv.data());
}

std::uint64_t tenths_of(double value) {
  return static_cast<std::uint64_t>(std::llround(value * 10));
}

// What one thread pushes to a series of `kind` with --events-per-thread `events`, in tenths.
std::uint64_t thread_sum_tenths(shm::Kind kind, std::uint64_t events) {
  std::uint64_t sum = 0;
  for (std::uint64_t round = 0; round < events; ++round) sum += value_tenths(kind, round);
  return sum;
}

WorkerReport report_with(int index, std::uint64_t base) {
  constexpr std::size_t kSeries = 2;
  WorkerReport r;
  r.index = index;
  r.pid = 1000 + index;
  r.segment = "shmstats.test." + std::to_string(index);
  r.elapsed_s = 0.5;
  for (std::size_t k = 0; k < kSeries; ++k) {
    r.series.push_back(
        SeriesTally{base + k, base + k - 1, 1, 10 * (base + k), 10 * (base + k) - 5});
  }
  r.producer = ProducerTotals{base, 2, 3};
  r.dropped_by_reason[static_cast<std::size_t>(shm::DropReason::kRingFull)] = base;
  r.dropped_by_reason[static_cast<std::size_t>(shm::DropReason::kNoRing)] = 1;
  return r;
}

// ------------------------------------------------------------------------------------------------
// Library

TEST(LoadgenSeriesTest, KindsCycleCounterTimingHistogramGaugeWithShardTags) {
  Config config;
  config.series = 6;

  const auto sut = make_series(config);

  ASSERT_EQ(sut.size(), 6u);
  const std::array<shm::Kind, 6> expected = {shm::Kind::kCounter,   shm::Kind::kTiming,
                                             shm::Kind::kHistogram, shm::Kind::kGauge,
                                             shm::Kind::kCounter,   shm::Kind::kTiming};
  for (std::size_t k = 0; k < sut.size(); ++k) {
    EXPECT_EQ(sut[k].name, "loadgen.s" + std::to_string(k));
    EXPECT_EQ(sut[k].shard, std::to_string(k % 4));
    EXPECT_EQ(sut[k].kind, expected[k]) << k;
  }
}

TEST(LoadgenSeriesTest, KindsCounterMakesEverySeriesACounter) {
  Config config;
  config.series = 5;
  config.kinds = "counter";

  const auto sut = make_series(config);

  ASSERT_EQ(sut.size(), 5u);
  for (const auto& s : sut) EXPECT_EQ(s.kind, shm::Kind::kCounter) << s.name;
}

TEST(LoadgenSeriesTest, ValuesAreWholeTenthsInTheirRanges) {
  EXPECT_EQ(value_tenths(shm::Kind::kCounter, 0), 10u);
  EXPECT_EQ(value_tenths(shm::Kind::kCounter, 99), 1000u);
  EXPECT_EQ(value_tenths(shm::Kind::kCounter, 100), 10u);
  EXPECT_EQ(value_tenths(shm::Kind::kTiming, 7), 7u);
  EXPECT_EQ(value_tenths(shm::Kind::kHistogram, 1003), 3u);
  EXPECT_EQ(value_tenths(shm::Kind::kGauge, 501), 10u);
}

TEST(LoadgenMergeTest, SumsTalliesProducerStatsAndDropsAcrossWorkers) {
  const std::vector<WorkerReport> reports = {report_with(1, 100), report_with(0, 10)};
  constexpr double kElapsed = 2.0;

  auto sut = merge(reports, 2, kElapsed);

  ASSERT_TRUE(sut) << sut.error().message;
  const Summary& s = sut.value();
  ASSERT_EQ(s.series.size(), 2u);
  EXPECT_EQ(s.series[0], (SeriesTally{110, 108, 2, 1100, 1090}));
  EXPECT_EQ(s.series[1], (SeriesTally{112, 110, 2, 1120, 1110}));
  EXPECT_EQ(s.producer, (ProducerTotals{110, 4, 6}));
  EXPECT_EQ(s.dropped_by_reason[static_cast<std::size_t>(shm::DropReason::kRingFull)], 110u);
  EXPECT_EQ(s.dropped_by_reason[static_cast<std::size_t>(shm::DropReason::kNoRing)], 2u);
  EXPECT_EQ(s.segments, (std::vector<std::string>{"shmstats.test.0", "shmstats.test.1"}));
  EXPECT_EQ(s.elapsed_s, kElapsed);
}

TEST(LoadgenMergeTest, RejectsReportWithWrongSeriesCount) {
  const std::vector<WorkerReport> reports = {report_with(0, 10)};

  auto sut = merge(reports, 3, 1.0);

  ASSERT_FALSE(sut);
  EXPECT_NE(sut.error().message.find("expected 3"), std::string::npos) << sut.error().message;
}

TEST(LoadgenMergeTest, RejectsTwoReportsFromOneWorker) {
  const std::vector<WorkerReport> reports = {report_with(0, 10), report_with(0, 20)};

  auto sut = merge(reports, 2, 1.0);

  EXPECT_FALSE(sut);
}

TEST(LoadgenMergeTest, SummaryJsonTotalsSeriesAndNamesEveryDropReason) {
  Config config;
  config.processes = 2;
  config.series = 2;
  config.events_per_thread = 7;
  const std::vector<WorkerReport> reports = {report_with(0, 10), report_with(1, 100)};
  auto merged = merge(reports, 2, 2.0);
  ASSERT_TRUE(merged);

  const json sut = json::parse(summary_json(config, merged.value()).dump());

  EXPECT_EQ(sut["processes"], 2);
  EXPECT_TRUE(sut["duration_s"].is_null());
  EXPECT_EQ(sut["events_per_thread"], 7);
  ASSERT_EQ(sut["series"].size(), 2u);
  EXPECT_EQ(sut["series"][1]["name"], "loadgen.s1");
  EXPECT_EQ(sut["series"][1]["tags"], (json{{"shard", "1"}}));
  EXPECT_EQ(sut["series"][1]["kind"], "timing");
  EXPECT_EQ(sut["series"][0]["accepted_sum"], 109.0);
  EXPECT_EQ(sut["series"][0]["pushed_sum"], 110.0);
  EXPECT_EQ(sut["totals"]["pushed"], 222);
  EXPECT_EQ(sut["totals"]["accepted"], 218);
  EXPECT_EQ(sut["totals"]["refused"], 4);
  EXPECT_EQ(sut["totals"]["offered_rate"], 111.0);
  EXPECT_EQ(sut["producer_stats"]["folded"], 4);
  EXPECT_EQ(sut["dropped_by_reason"].size(), shm::kDropReasonCount);
  EXPECT_EQ(sut["dropped_by_reason"]["ring_full"], 110);
  EXPECT_EQ(sut["dropped_by_reason"]["no_ring"], 2);
  EXPECT_EQ(sut["segments"].size(), 2u);
}

TEST(LoadgenReportTest, ReportRoundTripsThroughJson) {
  const WorkerReport original = report_with(3, 42);

  auto sut = parse_report(report_json(original).dump());

  ASSERT_TRUE(sut) << sut.error().message;
  EXPECT_EQ(sut.value(), original);
}

TEST(LoadgenReportTest, ParseRejectsMissingFieldAndNegativeCount) {
  json missing = report_json(report_with(0, 10));
  missing.erase("producer");
  json negative = report_json(report_with(0, 10));
  negative["series"][0]["pushed"] = -1;

  auto without_producer = parse_report(missing.dump());
  auto with_negative = parse_report(negative.dump());
  auto not_json = parse_report("{\"index\":");

  ASSERT_FALSE(without_producer);
  EXPECT_NE(without_producer.error().message.find("producer"), std::string::npos);
  ASSERT_FALSE(with_negative);
  EXPECT_NE(with_negative.error().message.find("pushed"), std::string::npos);
  EXPECT_FALSE(not_json);
}

TEST(LoadgenArgsTest, WorkerArgsParseBackToTheSameConfig) {
  Config config;
  config.processes = 3;
  config.threads = 2;
  config.rate = 1234.5;
  config.duration_s = 0.25;
  config.series = 9;
  config.kinds = "gauge";
  config.prefix = "lgtest";
  config.ring_capacity = 1024;
  config.rings = 4;
  config.overflow = "drop_oldest";
  config.hold_ms = 50;
  constexpr int kIndex = 2;

  auto sut = parse(worker_args(config, kIndex));

  ASSERT_FALSE(sut.exit_code) << sut.err;
  Config expected = config;
  expected.worker = true;
  expected.worker_index = kIndex;
  EXPECT_EQ(sut.config, expected);
}

TEST(LoadgenArgsTest, EventsPerThreadWithoutRateIsUnpaced) {
  auto sut = parse({"--events-per-thread", "10"});

  ASSERT_FALSE(sut.exit_code) << sut.err;
  EXPECT_EQ(sut.config.events_per_thread, 10u);
  EXPECT_EQ(sut.config.rate, 0.0);
}

TEST(LoadgenArgsTest, BadArgumentsExitTwoWithOneLine) {
  const std::vector<std::vector<std::string>> bad = {
      {"--processes", "0"},
      {"--threads", "abc"},
      {"--rate", "-1"},
      {"--series", "5000"},
      {"--duration", "0"},
      {"--duration", "1", "--events-per-thread", "5"},
      {"--ring-capacity", "1000"},
      {"--overflow", "sometimes"},
      {"--kinds", "set"},
      {"--prefix", "a/b"},
      {"--hold-ms", "-5"},
      {"--events-per-thread", "-1"},
      {"--no-such-flag"},
  };
  for (const auto& args : bad) {
    auto sut = parse(args);

    ASSERT_TRUE(sut.exit_code) << args[0];
    EXPECT_EQ(*sut.exit_code, kExitBadArguments) << args[0];
    EXPECT_FALSE(sut.err.empty()) << args[0];
    EXPECT_EQ(sut.err.find('\n'), std::string::npos) << sut.err;
  }
}

TEST(LoadgenParentTest, FailsWhenAWorkerCannotStart) {
  Config config;
  config.processes = 2;
  config.events_per_thread = 1;

  const int sut = run_parent(config, "/nonexistent/shmstats-loadgen");

  EXPECT_NE(sut, 0);
}

TEST(LoadgenParentTest, FailsWhenAWorkerExitsWithoutAResult) {
  Config config;
  config.processes = 2;
  config.events_per_thread = 1;

  // /bin/true ignores the worker arguments and exits 0 without writing a report.
  const int sut = run_parent(config, "/bin/true");

  EXPECT_NE(sut, 0);
}

// ------------------------------------------------------------------------------------------------
// The real binary

TEST(LoadgenBinaryTest, ReportsExactTotalsThatTheSegmentsHold) {
  const std::string prefix = unique_prefix();
  SegmentGuard guard(prefix);
  constexpr int kProcesses = 2;
  constexpr int kThreads = 2;
  constexpr int kSeries = 8;
  constexpr std::uint64_t kEventsPerThread = 1000;  // per thread and series
  constexpr std::uint64_t kPushesPerSeries = kProcesses * kThreads * kEventsPerThread;
  constexpr std::uint64_t kRingCapacity = 65536;  // > kSeries * kEventsPerThread: nothing folds

  const LoadgenRun run = run_loadgen(
      {"--processes", std::to_string(kProcesses), "--threads", std::to_string(kThreads), "--series",
       std::to_string(kSeries), "--events-per-thread", std::to_string(kEventsPerThread),
       "--ring-capacity", std::to_string(kRingCapacity), "--prefix", prefix});

  ASSERT_EQ(run.exit_code, 0) << run.out;
  const json doc = json::parse(run.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << run.out;
  EXPECT_EQ(doc["processes"], kProcesses);
  EXPECT_EQ(doc["threads"], kThreads);
  EXPECT_EQ(doc["totals"]["pushed"], kPushesPerSeries * kSeries);
  EXPECT_EQ(doc["totals"]["accepted"], kPushesPerSeries * kSeries);
  EXPECT_EQ(doc["totals"]["refused"], 0);
  EXPECT_EQ(doc["producer_stats"]["folded"], 0);
  EXPECT_EQ(doc["producer_stats"]["dropped"], 0);
  for (const auto& [reason, count] : doc["dropped_by_reason"].items())
    EXPECT_EQ(count, 0) << reason;

  Config config;
  config.series = kSeries;
  const auto specs = make_series(config);
  ASSERT_EQ(doc["series"].size(), specs.size());
  std::map<std::string, std::uint64_t> accepted_by_name;
  std::map<std::string, std::uint64_t> accepted_tenths_by_name;
  for (std::size_t k = 0; k < specs.size(); ++k) {
    const json& s = doc["series"][k];
    EXPECT_EQ(s["name"], specs[k].name);
    EXPECT_EQ(s["kind"], shm::to_string(specs[k].kind));
    EXPECT_EQ(s["tags"]["shard"], specs[k].shard);
    EXPECT_EQ(s["pushed"], kPushesPerSeries) << specs[k].name;
    EXPECT_EQ(s["accepted"].get<std::uint64_t>() + s["refused"].get<std::uint64_t>(),
              s["pushed"].get<std::uint64_t>())
        << specs[k].name;
    const std::uint64_t expected_tenths =
        kProcesses * kThreads * thread_sum_tenths(specs[k].kind, kEventsPerThread);
    EXPECT_EQ(tenths_of(s["pushed_sum"].get<double>()), expected_tenths) << specs[k].name;
    EXPECT_EQ(tenths_of(s["accepted_sum"].get<double>()), expected_tenths) << specs[k].name;
    accepted_by_name[specs[k].name] = s["accepted"].get<std::uint64_t>();
    accepted_tenths_by_name[specs[k].name] = tenths_of(s["accepted_sum"].get<double>());
  }

  // Drain every ring of every listed segment: exactly the accepted events are there.
  ASSERT_EQ(doc["segments"].size(), static_cast<std::size_t>(kProcesses));
  std::map<std::string, std::uint64_t> drained_by_name;
  std::map<std::string, std::uint64_t> drained_tenths_by_name;
  for (const auto& name : doc["segments"]) {
    const std::string segment_name = name.get<std::string>();
    EXPECT_EQ(segment_name.rfind(prefix + ".", 0), 0u) << segment_name;
    auto segment = shm::Segment::attach(segment_name, shm::Segment::Access::kReadWrite);
    ASSERT_TRUE(segment) << segment_name << ": " << segment.error().message;
    EXPECT_EQ(segment.value().state(), shm::SegmentState::kClosed) << segment_name;
    std::map<std::uint32_t, std::string> names;
    for (std::uint32_t id = 0; id < segment.value().series_count(); ++id) {
      auto info = segment.value().read_series(id);
      ASSERT_TRUE(info) << info.error().message;
      names[id] = info.value().name;
    }
    std::vector<shm::Event> events(kPollBatch);
    for (std::uint32_t r = 0; r < segment.value().geometry().ring_count; ++r) {
      auto reader = segment.value().ring_reader(r);
      for (;;) {
        const shm::PollResult polled = reader.poll(events);
        ASSERT_FALSE(polled.corrupt) << segment_name << " ring " << r;
        if (polled.count == 0) break;
        for (std::size_t i = 0; i < polled.count; ++i) {
          ASSERT_TRUE(names.count(events[i].series_id)) << events[i].series_id;
          const std::string& series = names[events[i].series_id];
          ++drained_by_name[series];
          drained_tenths_by_name[series] += tenths_of(events[i].value);
        }
      }
    }
  }
  EXPECT_EQ(drained_by_name, accepted_by_name);
  EXPECT_EQ(drained_tenths_by_name, accepted_tenths_by_name);
}

TEST(LoadgenBinaryTest, DurationRunAccountsForEveryPush) {
  const std::string prefix = unique_prefix();
  SegmentGuard guard(prefix);
  constexpr std::uint64_t kRingCapacity = 64;  // small and undrained: some pushes are refused

  const LoadgenRun run =
      run_loadgen({"--processes", "2", "--threads", "2", "--series", "4", "--rate", "4000",
                   "--duration", "0.3", "--ring-capacity", std::to_string(kRingCapacity),
                   "--overflow", "drop_newest", "--prefix", prefix});

  ASSERT_EQ(run.exit_code, 0) << run.out;
  const json doc = json::parse(run.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << run.out;
  std::uint64_t refused = 0;
  for (const auto& s : doc["series"]) {
    EXPECT_EQ(s["accepted"].get<std::uint64_t>() + s["refused"].get<std::uint64_t>(),
              s["pushed"].get<std::uint64_t>())
        << s["name"];
    refused += s["refused"].get<std::uint64_t>();
  }
  EXPECT_GT(doc["totals"]["pushed"].get<std::uint64_t>(), 0u);
  // Every refusal is a drop the producers counted, by reason, in their segments.
  EXPECT_EQ(doc["dropped_by_reason"]["ring_full"].get<std::uint64_t>(), refused);
  EXPECT_EQ(doc["producer_stats"]["dropped"].get<std::uint64_t>(), refused);
  EXPECT_EQ(doc["segments"].size(), 2u);
}

TEST(LoadgenBinaryTest, BadArgumentsExitNonZeroWithoutStartingWorkers) {
  const std::string prefix = unique_prefix();
  SegmentGuard guard(prefix);

  const LoadgenRun zero_processes = run_loadgen({"--processes", "0", "--prefix", prefix});
  const LoadgenRun bad_capacity = run_loadgen({"--ring-capacity", "3", "--prefix", prefix});
  const LoadgenRun unknown_flag = run_loadgen({"--bogus"});

  EXPECT_EQ(zero_processes.exit_code, kExitBadArguments);
  EXPECT_EQ(bad_capacity.exit_code, kExitBadArguments);
  EXPECT_EQ(unknown_flag.exit_code, kExitBadArguments);
  EXPECT_TRUE(zero_processes.out.empty()) << zero_processes.out;
  EXPECT_TRUE(shm::list_segments(prefix).empty());
}

}  // namespace
}  // namespace shmstats::tools::loadgen
