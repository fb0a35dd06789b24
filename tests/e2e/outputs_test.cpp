// The output seam end to end (issue #13), with the real collector, real receivers and real
// producers on loopback: several outputs of one type configured by [[exporter]] tables, the tally
// output (collector/exporters/tally) configured by its table and an environment variable, each
// output's own counters on /metrics, and the completion of every batch by every output.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/pipeline.h"
#include "tests/support/support.h"

namespace shmstats {
namespace {

using nlohmann::json;
using testing::ChildProcess;
using testing::PaceReport;
using testing::SegmentGuard;
using testing::start_collector;
using testing::start_receiver;
using testing::TempDir;
using testing::unique_prefix;
using testing::wait_until;
using namespace std::chrono_literals;

const std::string kCollectorBin = SHMSTATS_COLLECTOR_BIN;
const std::string kRecvBin = SHMSTATS_RECV_BIN;
constexpr auto kWait = 60s;

json read_json(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
}

// Per thread tag: points plus folded values the tally file holds for series "seq".
std::map<std::string, std::uint64_t> tally_by_thread(const json& doc) {
  std::map<std::string, std::uint64_t> out;
  if (doc.is_discarded() || !doc.contains("series")) return out;
  for (const auto& s : doc["series"]) {
    if (s["name"] != "seq") continue;
    out[s["tags"]["thread"].get<std::string>()] +=
        s["points"].get<std::uint64_t>() + s["folded_count"].get<std::uint64_t>();
  }
  return out;
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(OutputsTest, TwoUdpTablesAndATallyEachGetEveryAcceptedEventExactlyOnce) {
  constexpr int kThreads = 2;
  constexpr int kRatePerThread = 5000;
  constexpr int kEventsPerThread = 10000;
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  auto primary = start_receiver(kRecvBin, dir.file("primary.jsonl"));
  auto replica = start_receiver(kRecvBin, dir.file("replica.jsonl"));
  ASSERT_NE(primary.udp_port, 0);
  ASSERT_NE(replica.udp_port, 0);
  const std::string tally_path = dir.file("tally.json");
  write_file(dir.file("collector.toml"),
             "[[exporter]]\ntype = \"udp\"\nname = \"primary\"\ndestination = \"127.0.0.1:" +
                 std::to_string(primary.udp_port) +
                 "\"\n[[exporter]]\ntype = \"udp\"\nname = \"replica\"\n"
                 "destination = \"127.0.0.1:" +
                 std::to_string(replica.udp_port) +
                 "\"\n[[exporter]]\ntype = \"tally\"\nname = \"check\"\npath = \"" + tally_path +
                 "\"\n");
  // The tally's flush interval comes from the environment (a type-wide key).
  auto sut = start_collector(kCollectorBin, guard.prefix(),
                             {"--config", dir.file("collector.toml"), "--exporter-queue", "10000"},
                             {"SHMSTATS_COLLECTOR_TALLY_FLUSH_INTERVAL=50ms"});
  ASSERT_NE(sut.http_port, 0);
  auto producer = testing::start_pace(
      guard.prefix(), "outputs", kThreads, kRatePerThread,
      {"--events", std::to_string(kEventsPerThread), "--ring-capacity", "8192"});
  const PaceReport report = testing::read_report(producer, kThreads, kWait);
  ASSERT_TRUE(report.complete);
  ASSERT_EQ(producer.wait(kWait), 0);
  ASSERT_EQ(report.accepted, static_cast<std::uint64_t>(kThreads * kEventsPerThread));

  const auto accepted = static_cast<double>(report.accepted);
  std::map<std::string, std::uint64_t> tallied;
  std::string page;
  ASSERT_TRUE(wait_until(
      [&] {
        tallied = tally_by_thread(read_json(tally_path));
        std::uint64_t total = 0;
        for (const auto& [thread, n] : tallied) total += n;
        page = sut.metrics();
        return primary.metric("shmstats_recv_events_total") == accepted &&
               replica.metric("shmstats_recv_events_total") == accepted &&
               total == report.accepted &&
               testing::prom_value(page, "shmstats_collector_batches_in_flight") == 0;
      },
      kWait, [&] { return page; }));

  ASSERT_EQ(tallied.size(), report.threads.size());
  for (const auto& [thread, tally] : report.threads) {
    EXPECT_EQ(tallied[thread], tally.accepted) << "thread " << thread;
  }
  for (const char* name : {"primary", "replica"}) {
    const std::string label = std::string("exporter=\"") + name + "\"";
    EXPECT_EQ(testing::prom_value(page, "shmstats_exporter_events_sent_total", label), accepted);
    EXPECT_EQ(testing::prom_value(page, "shmstats_exporter_circuit_state", label), 0);
  }
  const std::string check = "exporter=\"check\"";
  EXPECT_EQ(testing::prom_value(page, "shmstats_exporter_events_merged_total", check), accepted);
  EXPECT_EQ(testing::prom_value(page, "shmstats_exporter_events_sent_total", check), 0);
  EXPECT_GT(
      testing::prom_value(page, "shmstats_exporter_tally_writes_total", check + ",result=\"ok\""),
      1)
      << "written on its 50 ms deadline, not only at stop";
  EXPECT_EQ(testing::prom_value(page, "shmstats_exporter_tally_series", check), kThreads);
  EXPECT_EQ(testing::prom_value(page, "shmstats_collector_batches_completed_total"),
            testing::prom_value(page, "shmstats_collector_batches_total"));
  sut.process.kill(SIGTERM);
  EXPECT_EQ(sut.process.wait(kWait), 0);
}

TEST(OutputsTest, BadOutputTableStopsStartupWithAMessageNamingIt) {
  constexpr int kConfigError = 2;
  TempDir dir;
  write_file(
      dir.file("bad.toml"),
      "[[exporter]]\ntype = \"udp\"\ndestination = \"127.0.0.1:9\"\n"
      "[[exporter]]\ntype = \"udp\"\ndestination = \"127.0.0.1:9\"\nmax_datagram_bytes = 99\n");
  const std::string log = dir.file("stderr.log");

  auto sut = ChildProcess::spawn(
      {kCollectorBin, "--config", dir.file("bad.toml"), "--http", "", "--shm-prefix", "none"}, {},
      log);

  EXPECT_EQ(sut.wait(kWait), kConfigError);
  const std::string text = testing::file_text(log);
  EXPECT_NE(text.find("max_datagram_bytes"), std::string::npos) << text;
  EXPECT_NE(text.find("[[exporter]] #2"), std::string::npos) << text;
  EXPECT_NE(text.find("\"99\""), std::string::npos) << text;
}

}  // namespace
}  // namespace shmstats
