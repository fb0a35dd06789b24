// shm-dump against real segments: producer processes (tests/support/helper_main.cpp "produce"),
// alive and killed, segments corrupted in-test, and the real shm-dump binary as a child process.
// The library (tools/shm_dump/dump.h) is also exercised directly for what no helper can produce.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "shm/result.h"
#include "shm/segment.h"
#include "tests/support/support.h"
#include "tools/shm_dump/dump.h"

namespace shmstats::tools {
namespace {

using nlohmann::json;
using shm::Segment;
using shmstats::testing::ChildProcess;
using shmstats::testing::helper_path;
using shmstats::testing::SegmentGuard;
using shmstats::testing::unique_prefix;
using shmstats::testing::wait_until;
using namespace std::chrono_literals;

constexpr auto kStartTimeout = 10s;
constexpr auto kExitTimeout = 30s;
constexpr int kThreads = 2;
constexpr std::uint64_t kEventsPerThread = 100;
constexpr std::uint64_t kRingCapacity = 64;
constexpr std::uint64_t kHelperRings = 16;  // the helper's default --rings
// Nobody drains, so each thread's ring fills up and the rest of its events overflow.
constexpr std::uint64_t kOverflowPerThread = kEventsPerThread - kRingCapacity;
constexpr int kExitBadArguments = 2;
constexpr int kKilledBySigkill = 128 + SIGKILL;

// A helper producer: kThreads threads push kEventsPerThread values into counter "seq" tagged
// thread:<t>, then the process waits to be killed.
ChildProcess spawn_producer(const std::string& prefix, const std::string& overflow) {
  return ChildProcess::spawn({helper_path(), "produce", "--prefix", prefix, "--threads",
                              std::to_string(kThreads), "--events",
                              std::to_string(kEventsPerThread), "--ring-capacity",
                              std::to_string(kRingCapacity), "--overflow", overflow, "--hold"});
}

struct DumpRun {
  int exit_code = -1;
  std::string out;
};

// Runs the real shm-dump binary to completion.
DumpRun run_dump(const std::vector<std::string>& args) {
  std::vector<std::string> argv{SHM_DUMP_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = ChildProcess::spawn(argv);
  DumpRun run;
  run.out = child.read_all(true);
  run.exit_code = child.wait(kExitTimeout);
  return run;
}

// Null if `text` is not one JSON document.
json parse(const std::string& text) {
  json doc = json::parse(text, nullptr, false);
  return doc.is_discarded() ? json() : doc;
}

std::uint64_t dropped_total(const json& dropped) {
  std::uint64_t sum = 0;
  for (const auto& [reason, count] : dropped.items()) sum += count.get<std::uint64_t>();
  return sum;
}

// The helper's two series, as "name thread=<t>" strings.
std::set<std::string> series_names(const json& series) {
  std::set<std::string> out;
  for (const auto& e : series) {
    if (!e.contains("name")) continue;
    std::string s = e.at("name").get<std::string>();
    for (const auto& [key, value] : e.at("tags").items())
      s += " " + key + "=" + value.get<std::string>();
    out.insert(s);
  }
  return out;
}

const std::set<std::string> kHelperSeries = {"seq thread=0", "seq thread=1"};

shm::SegmentOptions small_options(const std::string& prefix) {
  shm::SegmentOptions o;
  o.prefix = prefix;
  o.service = "dump-test";
  o.ring_count = 2;
  o.ring_capacity = 16;
  o.series_capacity = 8;
  o.strings_size = static_cast<std::uint32_t>(shm::kMaxSeriesTextBytes);
  return o;
}

const json* find_named(const json& list, const std::string& name) {
  for (const auto& e : list) {
    if (e.at("name") == name) return &e;
  }
  return nullptr;
}

TEST(ShmDumpTest, JsonReportsLiveProducerSegmentFieldByField) {
  SegmentGuard guard(unique_prefix());
  auto producer = spawn_producer(guard.prefix(), "fold");
  const std::string name = producer.read_line_starting("segment ", kStartTimeout);
  ASSERT_FALSE(name.empty()) << "producer did not report its segment";
  const std::string done = producer.read_line_starting("done ", kStartTimeout);
  ASSERT_FALSE(done.empty()) << "producer did not finish pushing";

  const DumpRun run = run_dump({"--json", "--prefix", guard.prefix(), "--series"});

  ASSERT_EQ(run.exit_code, 0) << run.out;
  const json doc = parse(run.out);
  ASSERT_TRUE(doc.is_object()) << run.out;
  EXPECT_EQ(doc.at("tool"), "shm-dump");
  EXPECT_TRUE(doc.at("invalid").empty()) << doc.at("invalid").dump();
  ASSERT_EQ(doc.at("segments").size(), 1U) << run.out;
  const json& s = doc.at("segments").at(0);
  EXPECT_EQ(s.at("name"), name);
  EXPECT_EQ(s.at("pid"), producer.pid());
  EXPECT_EQ(s.at("alive"), true);
  EXPECT_EQ(s.at("service"), "test-helper");
  EXPECT_EQ(s.at("state"), "active");
  EXPECT_EQ(s.at("layout_version"), shm::kLayoutVersion);
  EXPECT_GE(s.at("age_s").get<double>(), 0.0);
  EXPECT_GT(s.at("size_bytes").get<std::uint64_t>(), 0U);
  EXPECT_EQ(s.at("ring_count"), kHelperRings);
  EXPECT_EQ(s.at("ring_capacity"), kRingCapacity);
  // The pushing threads have exited, which retires their rings: none is owned any more.
  EXPECT_EQ(s.at("rings_in_use"), 0U);
  EXPECT_EQ(s.at("pushed"), kThreads * kEventsPerThread);
  EXPECT_EQ(s.at("pushed"), shmstats::testing::line_field(done, "pushed"));
  EXPECT_EQ(s.at("folded"), kThreads * kOverflowPerThread);
  EXPECT_EQ(s.at("folded"), shmstats::testing::line_field(done, "folded"));
  EXPECT_EQ(dropped_total(s.at("dropped")), 0U) << s.at("dropped").dump();
  EXPECT_EQ(dropped_total(s.at("dropped")), shmstats::testing::line_field(done, "dropped"));
  EXPECT_EQ(s.at("dropped").size(), shm::kDropReasonCount);
  // Nothing drained yet: every push is folded or still waiting, and the ledger closes.
  const json& ledger = s.at("ledger");
  EXPECT_EQ(ledger.at("pushed"), kThreads * kEventsPerThread);
  EXPECT_EQ(ledger.at("drained"), 0U);
  EXPECT_EQ(ledger.at("folded"), kThreads * kOverflowPerThread);
  EXPECT_EQ(ledger.at("waiting"), kThreads * (kEventsPerThread - kOverflowPerThread));
  EXPECT_EQ(ledger.at("unaccounted"), 0) << ledger.dump();
  ASSERT_EQ(s.at("rings").size(), static_cast<std::size_t>(kThreads)) << s.at("rings").dump();
  for (const auto& r : s.at("rings")) {
    EXPECT_EQ(r.at("state"), "retired") << r.dump();
    EXPECT_NE(r.at("owner_tid"), 0U) << r.dump();
    EXPECT_EQ(r.at("fill"), kRingCapacity) << r.dump();
    EXPECT_EQ(r.at("high_water"), kRingCapacity) << r.dump();
    EXPECT_EQ(r.at("pushed"), kEventsPerThread) << r.dump();
    EXPECT_EQ(r.at("folded"), kOverflowPerThread) << r.dump();
    EXPECT_EQ(dropped_total(r.at("dropped")), 0U) << r.dump();
  }
  EXPECT_EQ(s.at("segment_counters").at("folded_no_ring"), 0U);
  EXPECT_EQ(dropped_total(s.at("segment_counters").at("dropped")), 0U);
  EXPECT_EQ(s.at("series_count"), static_cast<std::uint64_t>(kThreads));
  ASSERT_TRUE(s.contains("series"));
  EXPECT_EQ(series_names(s.at("series")), kHelperSeries) << s.at("series").dump();
  for (const auto& e : s.at("series")) EXPECT_EQ(e.at("kind"), "counter") << e.dump();
}

TEST(ShmDumpTest, JsonReportsDeadProducerSegmentFieldByField) {
  SegmentGuard guard(unique_prefix());
  auto producer = spawn_producer(guard.prefix(), "drop_oldest");
  const std::string name = producer.read_line_starting("segment ", kStartTimeout);
  ASSERT_FALSE(name.empty()) << "producer did not report its segment";
  const std::string done = producer.read_line_starting("done ", kStartTimeout);
  ASSERT_FALSE(done.empty()) << "producer did not finish pushing";
  const pid_t pid = producer.pid();
  producer.kill(SIGKILL);
  ASSERT_EQ(producer.wait(kExitTimeout), kKilledBySigkill);

  const DumpRun run = run_dump({"--json", "--prefix", guard.prefix(), "--series"});

  ASSERT_EQ(run.exit_code, 0) << run.out;
  const json doc = parse(run.out);
  ASSERT_TRUE(doc.is_object()) << run.out;
  EXPECT_EQ(doc.at("tool"), "shm-dump");
  EXPECT_TRUE(doc.at("invalid").empty()) << doc.at("invalid").dump();
  ASSERT_EQ(doc.at("segments").size(), 1U) << run.out;
  const json& s = doc.at("segments").at(0);
  EXPECT_EQ(s.at("name"), name);
  EXPECT_EQ(s.at("pid"), pid);
  EXPECT_EQ(s.at("alive"), false);
  EXPECT_EQ(s.at("service"), "test-helper");
  // SIGKILL gave the producer no chance to close its segment.
  EXPECT_EQ(s.at("state"), "active");
  EXPECT_EQ(s.at("rings_in_use"), 0U);
  EXPECT_EQ(s.at("pushed"), kThreads * kEventsPerThread);
  EXPECT_EQ(s.at("pushed"), shmstats::testing::line_field(done, "pushed"));
  EXPECT_EQ(s.at("folded"), 0U);
  EXPECT_EQ(s.at("folded"), shmstats::testing::line_field(done, "folded"));
  EXPECT_EQ(s.at("dropped").at("oldest_overwritten"), kThreads * kOverflowPerThread);
  EXPECT_EQ(dropped_total(s.at("dropped")), kThreads * kOverflowPerThread)
      << s.at("dropped").dump();
  EXPECT_EQ(dropped_total(s.at("dropped")), shmstats::testing::line_field(done, "dropped"));
  // Discarded oldest events count as dropped, not drained; the ledger still closes.
  EXPECT_EQ(s.at("ledger").at("drained"), 0U) << s.at("ledger").dump();
  EXPECT_EQ(s.at("ledger").at("dropped"), kThreads * kOverflowPerThread);
  EXPECT_EQ(s.at("ledger").at("waiting"), kThreads * kRingCapacity);
  EXPECT_EQ(s.at("ledger").at("unaccounted"), 0) << s.at("ledger").dump();
  ASSERT_EQ(s.at("rings").size(), static_cast<std::size_t>(kThreads)) << s.at("rings").dump();
  for (const auto& r : s.at("rings")) {
    EXPECT_EQ(r.at("fill"), kRingCapacity) << r.dump();
    EXPECT_EQ(r.at("high_water"), kRingCapacity) << r.dump();
    EXPECT_EQ(r.at("pushed"), kEventsPerThread) << r.dump();
    EXPECT_EQ(r.at("dropped").at("oldest_overwritten"), kOverflowPerThread) << r.dump();
  }
  EXPECT_EQ(s.at("series_count"), static_cast<std::uint64_t>(kThreads));
  ASSERT_TRUE(s.contains("series"));
  EXPECT_EQ(series_names(s.at("series")), kHelperSeries) << s.at("series").dump();
}

TEST(ShmDumpTest, JsonCountsRingsOwnedByRunningThreads) {
  SegmentGuard guard(unique_prefix());
  auto producer =
      ChildProcess::spawn({helper_path(), "produce", "--prefix", guard.prefix(), "--threads",
                           std::to_string(kThreads), "--forever", "--rings", "4", "--ring-capacity",
                           std::to_string(kRingCapacity), "--overflow", "drop_oldest"});
  const std::string name = producer.read_line_starting("segment ", kStartTimeout);
  ASSERT_FALSE(name.empty()) << "producer did not report its segment";
  json last;
  ASSERT_TRUE(wait_until(
      [&] {
        last = snapshot_json({name}, false);
        return last.at("segments").size() == 1 &&
               last.at("segments").at(0).at("rings_in_use") == kThreads;
      },
      kStartTimeout, [&] { return last.dump(); }));

  const DumpRun run = run_dump({"--json", "--segment", name});

  ASSERT_EQ(run.exit_code, 0) << run.out;
  const json doc = parse(run.out);
  ASSERT_TRUE(doc.is_object()) << run.out;
  ASSERT_EQ(doc.at("segments").size(), 1U) << run.out;
  const json& s = doc.at("segments").at(0);
  EXPECT_EQ(s.at("alive"), true);
  EXPECT_EQ(s.at("rings_in_use"), kThreads);
  EXPECT_FALSE(s.contains("series")) << "series are listed only with --series";
  ASSERT_EQ(s.at("rings").size(), static_cast<std::size_t>(kThreads)) << s.at("rings").dump();
  std::set<std::uint64_t> owners;
  for (const auto& r : s.at("rings")) {
    EXPECT_EQ(r.at("state"), "owned") << r.dump();
    EXPECT_GT(r.at("pushed").get<std::uint64_t>(), 0U) << r.dump();
    owners.insert(r.at("owner_tid").get<std::uint64_t>());
  }
  EXPECT_EQ(owners.size(), static_cast<std::size_t>(kThreads)) << "one ring per thread";
}

TEST(ShmDumpTest, CorruptSegmentsAreListedAsInvalidWithReason) {
  SegmentGuard guard(unique_prefix());
  auto bad_magic = Segment::create(small_options(guard.prefix()), 0);
  ASSERT_TRUE(bad_magic) << bad_magic.error().message;
  auto bad_capacity = Segment::create(small_options(guard.prefix()), 1);
  ASSERT_TRUE(bad_capacity) << bad_capacity.error().message;
  constexpr std::uint64_t kWrongMagic = 0x0BAD'0BAD'0BAD'0BADULL;
  constexpr std::uint32_t kNotPowerOfTwo = 3;
  bad_magic.value().header().magic.store(kWrongMagic, std::memory_order_release);
  bad_capacity.value().header().ring_capacity = kNotPowerOfTwo;

  const DumpRun run = run_dump({"--json", "--prefix", guard.prefix()});

  ASSERT_EQ(run.exit_code, 0) << run.out;
  const json doc = parse(run.out);
  ASSERT_TRUE(doc.is_object()) << run.out;
  EXPECT_TRUE(doc.at("segments").empty()) << run.out;
  ASSERT_EQ(doc.at("invalid").size(), 2U) << run.out;
  const json* magic_entry = find_named(doc.at("invalid"), bad_magic.value().name());
  ASSERT_NE(magic_entry, nullptr) << run.out;
  EXPECT_NE(magic_entry->at("error").get<std::string>().find("magic"), std::string::npos)
      << magic_entry->dump();
  const json* capacity_entry = find_named(doc.at("invalid"), bad_capacity.value().name());
  ASSERT_NE(capacity_entry, nullptr) << run.out;
  EXPECT_NE(capacity_entry->at("error").get<std::string>().find("ring capacity is 3"),
            std::string::npos)
      << capacity_entry->dump();
}

TEST(ShmDumpTest, TextReportsInvalidSegmentAndExitsZero) {
  SegmentGuard guard(unique_prefix());
  auto sut = Segment::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut) << sut.error().message;
  sut.value().header().magic.store(0x1234, std::memory_order_release);

  const DumpRun run = run_dump({"--prefix", guard.prefix()});

  ASSERT_EQ(run.exit_code, 0) << run.out;
  EXPECT_NE(run.out.find("INVALID " + sut.value().name() + ": "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("not a shmstats segment"), std::string::npos) << run.out;
}

TEST(ShmDumpTest, TextShowsHeaderLineAndRingTableOfLiveProducer) {
  SegmentGuard guard(unique_prefix());
  auto producer = spawn_producer(guard.prefix(), "fold");
  const std::string name = producer.read_line_starting("segment ", kStartTimeout);
  ASSERT_FALSE(name.empty()) << "producer did not report its segment";
  ASSERT_FALSE(producer.read_line_starting("done ", kStartTimeout).empty());

  const DumpRun run = run_dump({"--prefix", guard.prefix(), "--series"});

  ASSERT_EQ(run.exit_code, 0) << run.out;
  std::istringstream lines(run.out);
  std::string header;
  ASSERT_TRUE(std::getline(lines, header)) << run.out;
  EXPECT_EQ(header.rfind(name + "  pid " + std::to_string(producer.pid()) + " alive", 0), 0U)
      << header;
  EXPECT_NE(header.find("service \"test-helper\""), std::string::npos) << header;
  EXPECT_NE(header.find("state active"), std::string::npos) << header;
  EXPECT_NE(run.out.find("pushed 200  folded 72  dropped 0"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("fill/cap"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("64/64"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("seq thread=1"), std::string::npos) << run.out;
}

TEST(ShmDumpTest, SegmentOptionShowsOnlyThatSegment) {
  SegmentGuard guard(unique_prefix());
  auto first = Segment::create(small_options(guard.prefix()), 0);
  ASSERT_TRUE(first) << first.error().message;
  auto second = Segment::create(small_options(guard.prefix()), 1);
  ASSERT_TRUE(second) << second.error().message;

  const DumpRun run = run_dump({"--json", "--segment", second.value().name()});

  ASSERT_EQ(run.exit_code, 0) << run.out;
  const json doc = parse(run.out);
  ASSERT_TRUE(doc.is_object()) << run.out;
  EXPECT_TRUE(doc.at("invalid").empty()) << run.out;
  ASSERT_EQ(doc.at("segments").size(), 1U) << run.out;
  EXPECT_EQ(doc.at("segments").at(0).at("name"), second.value().name());
  EXPECT_EQ(doc.at("segments").at(0).at("service"), "dump-test");
}

TEST(ShmDumpTest, SnapshotNamesSegmentCountersByReason) {
  SegmentGuard guard(unique_prefix());
  auto sut = Segment::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut) << sut.error().message;
  constexpr std::uint64_t kNoRingDrops = 3;
  constexpr std::uint64_t kFoldedNoRing = 5;
  constexpr std::uint64_t kInvalidNames = 2;
  constexpr std::uint64_t kTableFull = 1;
  auto& h = sut.value().header();
  h.dropped[static_cast<std::size_t>(shm::DropReason::kNoRing)].store(kNoRingDrops);
  h.folded_no_ring.store(kFoldedNoRing);
  h.series_rejected[static_cast<std::size_t>(shm::Errc::kInvalidName)].store(kInvalidNames);
  h.series_rejected[static_cast<std::size_t>(shm::Errc::kSeriesTableFull)].store(kTableFull);

  const json doc = snapshot_json({sut.value().name()}, false);

  ASSERT_EQ(doc.at("segments").size(), 1U) << doc.dump();
  const json& s = doc.at("segments").at(0);
  const json& c = s.at("segment_counters");
  EXPECT_EQ(c.at("dropped").at("no_ring"), kNoRingDrops);
  EXPECT_EQ(dropped_total(c.at("dropped")), kNoRingDrops);
  EXPECT_EQ(c.at("folded_no_ring"), kFoldedNoRing);
  EXPECT_EQ(c.at("series_rejected").at("invalid_name"), kInvalidNames);
  EXPECT_EQ(c.at("series_rejected").at("series_table_full"), kTableFull);
  EXPECT_EQ(c.at("series_rejected").at("version_mismatch"), 0U);
  // Segment totals include what threads without a ring did.
  EXPECT_EQ(s.at("dropped").at("no_ring"), kNoRingDrops);
  EXPECT_EQ(s.at("folded"), kFoldedNoRing);
  EXPECT_EQ(s.at("alive"), true);
  EXPECT_TRUE(s.at("rings").empty()) << "no ring was ever claimed";
  const std::string text = render_text(doc);
  EXPECT_NE(text.find("invalid_name=2 series_table_full=1"), std::string::npos) << text;
  EXPECT_NE(text.find("without a ring: dropped 3 (no_ring=3)  folded 5"), std::string::npos)
      << text;
}

TEST(ShmDumpTest, SnapshotReportsUnreadableSeriesWithItsError) {
  SegmentGuard guard(unique_prefix());
  auto sut = Segment::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut) << sut.error().message;
  // A count that claims one series whose entry was never published.
  sut.value().header().series_count.store(1, std::memory_order_release);

  const json doc = snapshot_json({sut.value().name()}, true);

  ASSERT_EQ(doc.at("segments").size(), 1U) << doc.dump();
  const json& series = doc.at("segments").at(0).at("series");
  ASSERT_EQ(series.size(), 1U) << series.dump();
  EXPECT_EQ(series.at(0).at("id"), 0U);
  EXPECT_NE(series.at(0).at("error").get<std::string>().find("not published"), std::string::npos)
      << series.dump();
  EXPECT_NE(render_text(doc).find("unreadable: series 0 is not published"), std::string::npos)
      << render_text(doc);
}

TEST(ShmDumpTest, ErrcNameIsReadableAndUnknownIndexIsNumbered) {
  EXPECT_EQ(errc_name(static_cast<std::size_t>(shm::Errc::kInvalidName)), "invalid_name");
  EXPECT_EQ(errc_name(static_cast<std::size_t>(shm::Errc::kVersionMismatch)), "version_mismatch");
  EXPECT_EQ(errc_name(static_cast<std::size_t>(shm::Errc::kSeriesTooLarge)), "series_too_large");
  EXPECT_EQ(errc_name(static_cast<std::size_t>(shm::Errc::kNotReady)), "not_ready");
  constexpr std::size_t kUnnamedIndex = 40;  // past every Errc
  EXPECT_EQ(errc_name(kUnnamedIndex), "errc_40");
}

TEST(ShmDumpTest, WatchWithCountPrintsOneJsonDocumentPerRefresh) {
  SegmentGuard guard(unique_prefix());
  constexpr int kRefreshes = 3;

  const DumpRun run = run_dump({"--json", "--prefix", guard.prefix(), "--watch", "0.01", "--count",
                                std::to_string(kRefreshes)});

  ASSERT_EQ(run.exit_code, 0) << run.out;
  std::istringstream lines(run.out);
  int documents = 0;
  for (std::string line; std::getline(lines, line);) {
    const json doc = parse(line);
    ASSERT_TRUE(doc.is_object()) << line;
    EXPECT_EQ(doc.at("tool"), "shm-dump");
    ++documents;
  }
  EXPECT_EQ(documents, kRefreshes) << run.out;
}

void expect_watch_stops_on(int sig) {
  SegmentGuard guard(unique_prefix());
  auto sut =
      ChildProcess::spawn({SHM_DUMP_BIN, "--json", "--prefix", guard.prefix(), "--watch", "0.05"});
  // The first document is printed after the stop signals are blocked.
  ASSERT_FALSE(sut.read_line_starting("{", kStartTimeout).empty());

  sut.kill(sig);

  EXPECT_EQ(sut.wait(kExitTimeout), 0);
}

TEST(ShmDumpTest, WatchExitsZeroOnSigterm) { expect_watch_stops_on(SIGTERM); }

TEST(ShmDumpTest, WatchExitsZeroOnSigint) { expect_watch_stops_on(SIGINT); }

TEST(ShmDumpTest, RejectsNonNumericWatch) {
  const DumpRun run = run_dump({"--watch", "abc"});
  EXPECT_EQ(run.exit_code, kExitBadArguments);
  EXPECT_TRUE(run.out.empty()) << "the message goes to stderr: " << run.out;
}

TEST(ShmDumpTest, RejectsUnknownFlag) {
  const DumpRun run = run_dump({"--no-such-flag"});
  EXPECT_EQ(run.exit_code, kExitBadArguments);
  EXPECT_TRUE(run.out.empty()) << run.out;
}

TEST(ShmDumpTest, RejectsCountWithoutWatch) {
  const DumpRun run = run_dump({"--count", "2"});
  EXPECT_EQ(run.exit_code, kExitBadArguments);
}

TEST(ShmDumpTest, RejectsPrefixWithSlash) {
  const DumpRun run = run_dump({"--prefix", "../etc"});
  EXPECT_EQ(run.exit_code, kExitBadArguments);
}

}  // namespace
}  // namespace shmstats::tools
