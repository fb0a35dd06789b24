// Hostile segments with real processes on loopback (issue #5): live segments rewritten by a
// corruptor while their producers push, and a producer that truncates its own segment under the
// collector's mapping. The collector, shm-dump and the receiver are the real binaries of this
// build (so in the ASan preset they run under ASan+UBSan, which checks that nothing reads outside
// a mapping); producers and the corruptor are tests/support/corruptor_main.cpp.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "shm/segment.h"
#include "tests/support/pipeline.h"
#include "tests/support/support.h"

namespace shmstats {
namespace {

using nlohmann::json;
using testing::ChildProcess;
using testing::file_gets;
using testing::file_text;
using testing::PipelineProcess;
using testing::SegmentGuard;
using testing::TempDir;
using testing::unique_prefix;
using testing::wait_until;
using namespace std::chrono_literals;

const std::string kCollectorBin = SHMSTATS_COLLECTOR_BIN;
const std::string kRecvBin = SHMSTATS_RECV_BIN;
const std::string kDumpBin = SHM_DUMP_BIN;
const std::string kCorruptorBin = SHMSTATS_TEST_CORRUPTOR;

// Every bounded wait; generous, because sanitizer builds on two shared cores are slow.
constexpr auto kWait = 60s;
// How long /health and /metrics may take to answer while segments are being corrupted.
constexpr auto kHttpBound = 5s;
constexpr int kPushesPerSecond = 2000;
constexpr const char* kCleanService = "clean";

std::uint32_t test_seed() {
  if (const char* env = std::getenv("SHMSTATS_TEST_SEED")) {
    return static_cast<std::uint32_t>(std::stoul(env));
  }
  return std::random_device{}();
}

// The real collector with its stderr in `log`, HTTP on a port it picks, forwarding to `udp_port`.
PipelineProcess start_logged_collector(const std::string& prefix, std::uint16_t udp_port,
                                       const std::string& log) {
  PipelineProcess p{
      ChildProcess::spawn({kCollectorBin, "--shm-prefix", prefix, "--http", "127.0.0.1:0",
                           "--log-level", "warn", "--udp", "127.0.0.1:" + std::to_string(udp_port)},
                          {}, log)};
  const std::string announced = p.process.read_line_starting("listening http 127.0.0.1:", kWait);
  p.http_port = announced.empty() ? 0 : static_cast<std::uint16_t>(std::stoul(announced));
  return p;
}

ChildProcess start_producer(const std::string& prefix, const std::string& service,
                            const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {
      kCorruptorBin, "produce", "--prefix", prefix,
      "--service",   service,   "--rate",   std::to_string(kPushesPerSecond)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return ChildProcess::spawn(argv);
}

struct DumpRun {
  int exit_code = -1;
  std::string out;
};

DumpRun run_dump(const std::string& prefix, bool as_json) {
  std::vector<std::string> argv = {kDumpBin, "--prefix", prefix, "--series"};
  if (as_json) argv.emplace_back("--json");
  auto child = ChildProcess::spawn(argv);
  DumpRun run;
  run.out = child.read_all(true);
  run.exit_code = child.wait(kWait);
  return run;
}

// Names shm-dump's JSON document lists, valid or invalid; empty if it is not one document.
std::set<std::string> dumped_names(const std::string& text) {
  std::set<std::string> names;
  const json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return names;
  for (const char* list : {"segments", "invalid"}) {
    for (const auto& s : doc.value(list, json::array())) names.insert(s.value("name", ""));
  }
  return names;
}

// /health's "quarantined" list, by segment name.
std::map<std::string, std::string> quarantined(const std::string& health) {
  std::map<std::string, std::string> out;
  const json doc = json::parse(health, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return out;
  for (const auto& q : doc.value("quarantined", json::array())) {
    out[q.value("segment", "")] = q.value("reason", "");
  }
  return out;
}

std::string health_of(const PipelineProcess& p) {
  int status = 0;
  return testing::http_get(p.http_port, "/health", kHttpBound, &status);
}

// The values the receiver wrote for counter "seq" of `service`, in file order.
std::vector<double> delivered_values(const std::string& jsonl, const std::string& service) {
  std::vector<double> values;
  std::ifstream in(jsonl);
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("service", "") != service ||
        j.value("name", "") != "seq" || !j.contains("value") || !j.at("value").is_number()) {
      continue;
    }
    values.push_back(j.at("value").get<double>());
  }
  return values;
}

::testing::AssertionResult is_sequence_from_zero(const std::vector<double>& values,
                                                 std::size_t expected) {
  if (values.size() != expected) {
    return ::testing::AssertionFailure() << values.size() << " values, expected " << expected;
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i] != static_cast<double>(i)) {
      return ::testing::AssertionFailure() << "position " << i << " holds " << values[i];
    }
  }
  return ::testing::AssertionSuccess();
}

// Waits until the receiver wrote `expected` values of the clean producer, and checks they are
// 0, 1, ..., expected-1 in order: each exactly once.
::testing::AssertionResult clean_values_all_delivered(const std::string& jsonl, int expected,
                                                      const PipelineProcess& collector) {
  std::vector<double> values;
  auto arrived = wait_until(
      [&] {
        values = delivered_values(jsonl, kCleanService);
        return values.size() >= static_cast<std::size_t>(expected);
      },
      kWait,
      [&] { return std::to_string(values.size()) + " clean values; " + collector.metrics(); });
  if (!arrived) return arrived;
  return is_sequence_from_zero(values, static_cast<std::size_t>(expected));
}

bool still_running(ChildProcess& p) { return p.wait(0ms) == -1; }

// One hostile segment per kind of corruption, so the collector meets each kind before the
// finale (a write that must get the segment quarantined) ends its life; a clean producer pushes
// alongside the whole time. shm-dump (text and JSON) and /health and /metrics are read over and
// over while the corruptors run.
TEST(HostileSegmentTest, CorruptedLiveSegmentsAreQuarantinedWhileACleanOneIsDeliveredInFull) {
  const std::uint32_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay with SHMSTATS_TEST_SEED)");
  constexpr int kCleanEvents = 6000;  // 3 s at kPushesPerSecond
  constexpr int kRounds = 150;
  constexpr int kRoundIntervalUs = 10000;
  struct Hostile {
    std::string targets;
    std::string finale;
  };
  const std::vector<Hostile> kHostile = {
      {"header", "header"}, {"rings", "ring"},   {"counters", "random"},
      {"series", "random"}, {"slots", "random"}, {"header,rings,counters,series,slots", "random"}};
  const std::set<std::string> kReasons = {"corrupt_ring", "header_changed", "corrupt_state"};
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  const std::string jsonl = dir.file("out.jsonl");
  const std::string log = dir.file("collector.log");
  auto recv = testing::start_receiver(kRecvBin, jsonl);
  ASSERT_NE(recv.udp_port, 0);
  auto sut = start_logged_collector(guard.prefix(), recv.udp_port, log);
  ASSERT_NE(sut.http_port, 0);
  auto clean =
      start_producer(guard.prefix(), kCleanService, {"--events", std::to_string(kCleanEvents)});
  ASSERT_FALSE(clean.read_line_starting("segment ", kWait).empty());
  std::vector<ChildProcess> producers;
  std::vector<std::string> names;
  for (std::size_t i = 0; i < kHostile.size(); ++i) {
    producers.push_back(start_producer(guard.prefix(), "hostile" + std::to_string(i)));
    names.push_back(producers.back().read_line_starting("segment ", kWait));
    ASSERT_FALSE(names.back().empty()) << kHostile[i].targets;
  }
  std::string page;
  ASSERT_TRUE(wait_until(
      [&] {
        page = sut.metrics();
        return testing::prom_value(page, "shmstats_collector_segments_attached_total") ==
               static_cast<double>(kHostile.size() + 1);
      },
      kWait, [&] { return page; }))
      << "every segment is valid at attach";

  std::vector<ChildProcess> corruptors;
  for (std::size_t i = 0; i < kHostile.size(); ++i) {
    corruptors.push_back(ChildProcess::spawn(
        {kCorruptorBin, "corrupt", "--segment", names[i], "--seed", std::to_string(seed + i),
         "--rounds", std::to_string(kRounds), "--interval-us", std::to_string(kRoundIntervalUs),
         "--targets", kHostile[i].targets, "--finale", kHostile[i].finale}));
  }
  int dumps = 0;
  for (bool running = true; running;) {
    running = false;
    for (auto& c : corruptors) running = running || still_running(c);
    for (const bool as_json : {false, true}) {
      const DumpRun run = run_dump(guard.prefix(), as_json);
      ASSERT_EQ(run.exit_code, 0) << run.out;
      ++dumps;
      for (const auto& name : names) {
        if (as_json) {
          EXPECT_EQ(dumped_names(run.out).count(name), 1U) << name << " in\n" << run.out;
        } else {
          EXPECT_NE(run.out.find(name), std::string::npos) << name << " in\n" << run.out;
        }
      }
    }
    ASSERT_FALSE(health_of(sut).empty()) << "/health answers within " << kHttpBound.count() << " s";
    ASSERT_FALSE(testing::http_get(sut.http_port, "/metrics", kHttpBound).empty());
    ASSERT_TRUE(still_running(sut.process)) << file_text(log);
  }
  for (std::size_t i = 0; i < corruptors.size(); ++i) {
    const std::string done = corruptors[i].read_line_starting("done ", kWait);
    EXPECT_FALSE(done.empty()) << kHostile[i].targets;
    EXPECT_EQ(corruptors[i].wait(kWait), 0) << kHostile[i].targets;
    std::printf("[ hostile  ] %s: %s\n", kHostile[i].targets.c_str(), done.c_str());
  }

  std::map<std::string, std::string> listed;
  ASSERT_TRUE(wait_until(
      [&] {
        listed = quarantined(health_of(sut));
        for (const auto& name : names) {
          if (listed.count(name) == 0) return false;
        }
        return true;
      },
      kWait, [&] { return health_of(sut); }))
      << "every hostile segment ends quarantined, with its reason on /health";
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string& reason = listed[names[i]];
    const std::string token = reason.substr(0, reason.find(':'));
    EXPECT_EQ(kReasons.count(token), 1U) << kHostile[i].targets << ": " << reason;
    EXPECT_TRUE(file_gets(log, "quarantined segment " + names[i], kWait));
    std::printf("[ hostile  ] %s: %s\n", kHostile[i].targets.c_str(), reason.c_str());
  }
  page = sut.metrics();  // after every log line, so after every count
  EXPECT_EQ(testing::prom_value(page, "shmstats_collector_segments_quarantined_total"),
            static_cast<double>(kHostile.size()))
      << page;
  double by_reason = 0;
  for (const auto& reason : kReasons) {
    by_reason +=
        testing::prom_value(page, "shmstats_collector_segments_quarantined_by_reason_total",
                            "reason=\"" + reason + "\"");
  }
  EXPECT_EQ(by_reason, static_cast<double>(kHostile.size())) << page;
  EXPECT_EQ(testing::prom_value(page, "shmstats_collector_segments_active"), 1) << page;
  std::printf("[ hostile  ] %g invalid events counted, %g rings quarantined\n",
              testing::prom_value(page, "shmstats_collector_invalid_events_total"),
              testing::prom_value(page, "shmstats_collector_rings_quarantined_total"));

  // The clean producer's events all arrive, each once and in order: the hostile ones did not
  // starve it.
  ASSERT_FALSE(clean.read_line_starting("done ", kWait).empty());
  EXPECT_TRUE(clean_values_all_delivered(jsonl, kCleanEvents, sut));
  const DumpRun last = run_dump(guard.prefix(), true);
  EXPECT_EQ(last.exit_code, 0) << last.out;
  std::printf("[ hostile  ] %d shm-dump runs, all exit 0\n", dumps);
  ASSERT_TRUE(still_running(sut.process));
  sut.process.kill(SIGTERM);
  EXPECT_EQ(sut.process.wait(kWait), 0) << file_text(log);
}

// A producer ftruncates its own segment to 4 KiB while the collector drains it, and shm-dump
// reads it over and over meanwhile: neither dies of SIGBUS, the segment is quarantined as
// truncated, and the collector keeps delivering another producer's events.
TEST(HostileSegmentTest, ProducerTruncatingItsSegmentIsQuarantinedAndKillsNoReader) {
  constexpr int kCleanEvents = 4000;
  constexpr int kPushesBeforeTruncation = 1000;
  constexpr int kTruncatedBytes = 4096;
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  const std::string jsonl = dir.file("out.jsonl");
  const std::string log = dir.file("collector.log");
  auto recv = testing::start_receiver(kRecvBin, jsonl);
  ASSERT_NE(recv.udp_port, 0);
  auto sut = start_logged_collector(guard.prefix(), recv.udp_port, log);
  ASSERT_NE(sut.http_port, 0);
  auto clean =
      start_producer(guard.prefix(), kCleanService, {"--events", std::to_string(kCleanEvents)});
  ASSERT_FALSE(clean.read_line_starting("segment ", kWait).empty());
  auto shrinker = start_producer(guard.prefix(), "shrinker",
                                 {"--truncate-after", std::to_string(kPushesBeforeTruncation),
                                  "--truncate-to", std::to_string(kTruncatedBytes)});
  const std::string name = shrinker.read_line_starting("segment ", kWait);
  ASSERT_FALSE(name.empty());

  // shm-dump runs back to back across the truncation (each attaches anew), and a few times after.
  constexpr int kDumpsAfter = 3;
  int dumps = 0;
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  bool truncated = false;
  for (int dumps_after = 0; dumps_after < kDumpsAfter;) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the producer never truncated";
    const DumpRun run = run_dump(guard.prefix(), true);
    ASSERT_EQ(run.exit_code, 0) << run.out;
    ++dumps;
    if (truncated) {
      ++dumps_after;
    } else {
      truncated =
          shrinker.read_line_starting("truncated ", 20ms) == std::to_string(kTruncatedBytes);
    }
  }

  std::map<std::string, std::string> listed;
  ASSERT_TRUE(wait_until(
      [&] {
        listed = quarantined(health_of(sut));
        return listed.count(name) == 1;
      },
      kWait, [&] { return health_of(sut); }));
  EXPECT_EQ(listed[name].rfind("truncated: ", 0), 0U) << listed[name];
  // The log line follows the counters, so once it is there the page shows them.
  EXPECT_TRUE(file_gets(log, "quarantined segment " + name + " (truncated)", kWait));
  const std::string page = sut.metrics();
  EXPECT_EQ(testing::prom_value(page, "shmstats_collector_segments_quarantined_by_reason_total",
                                "reason=\"truncated\""),
            1)
      << page;
  std::printf("[ truncate ] %s; %g pages read past the end\n", listed[name].c_str(),
              testing::prom_value(page, "shmstats_collector_mapping_faults_total"));
  ASSERT_FALSE(clean.read_line_starting("done ", kWait).empty());
  EXPECT_TRUE(clean_values_all_delivered(jsonl, kCleanEvents, sut));
  std::printf("[ truncate ] %d shm-dump runs, all exit 0\n", dumps);
  const DumpRun last = run_dump(guard.prefix(), true);
  ASSERT_EQ(last.exit_code, 0) << last.out;
  const json doc = json::parse(last.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << last.out;
  bool listed_invalid = false;
  for (const auto& bad : doc.at("invalid")) listed_invalid |= bad.value("name", "") == name;
  EXPECT_TRUE(listed_invalid) << last.out;
  ASSERT_TRUE(still_running(sut.process));
  sut.process.kill(SIGTERM);
  EXPECT_EQ(sut.process.wait(kWait), 0) << file_text(log);
}

}  // namespace
}  // namespace shmstats
