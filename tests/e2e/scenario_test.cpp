// The load-scenario runner end to end: shmstats-loadgen --scenario starts the real collector and
// receiver, real worker processes push through real /dev/shm segments, and the result file must
// hold a closed ledger (every push delivered, refused or dropped with a counted reason), a sample
// per second with every measurement, and the plot inputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "shm/segment.h"
#include "tests/support/support.h"

namespace shmstats {
namespace {

using nlohmann::json;
using testing::ChildProcess;
using namespace std::chrono_literals;

constexpr auto kRunTimeout = 120s;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/shmstats-scenario-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct ScenarioRun {
  int exit_code = -1;
  std::string out;
  json result;
};

ScenarioRun run_scenario(const TempDir& dir, const std::string& name, const std::string& scale,
                         const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {SHMSTATS_LOADGEN_BIN,
                                   "--scenario",
                                   name,
                                   "--scale",
                                   scale,
                                   "--out-dir",
                                   dir.path(),
                                   "--collector",
                                   SHMSTATS_COLLECTOR_BIN,
                                   "--recv",
                                   SHMSTATS_RECV_BIN};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto child = ChildProcess::spawn(argv);
  ScenarioRun run;
  run.out = child.read_all(true);
  run.exit_code = child.wait(kRunTimeout);
  std::ifstream in(dir.file(name + ".json"));
  run.result = json::parse(in, nullptr, false);
  return run;
}

TEST(ScenarioE2eTest, BaselineAtSmallScaleClosesTheLedgerAndSamplesEverySecond) {
  TempDir dir;
  // 10 k/s for 30 s * 0.1 = 3 s: about 30 k events, 3 samples while pushing.
  const ScenarioRun sut = run_scenario(dir, "baseline", "0.1");

  ASSERT_EQ(sut.exit_code, 0) << sut.out;
  ASSERT_FALSE(sut.result.is_discarded()) << "no result file; output: " << sut.out;
  const json& t = sut.result.at("totals");
  const auto pushed = t.at("pushed").get<double>();
  EXPECT_GT(pushed, 20'000);
  EXPECT_EQ(t.at("accepted").get<double>() + t.at("refused").get<double>(), pushed);
  // Loopback at 10 k/s loses nothing: every accepted value arrives, as an event or folded.
  EXPECT_EQ(t.at("lost_datagrams").get<double>(), 0);
  EXPECT_EQ(t.at("unaccounted").get<double>(), 0) << t.dump(2);
  EXPECT_EQ(t.at("delivered").get<double>(), t.at("accepted").get<double>());
  EXPECT_TRUE(t.at("settled").get<bool>());
  EXPECT_EQ(t.at("collector").at("exit_status"), 0);
  EXPECT_EQ(t.at("receiver").at("exit_status"), 0);
  ASSERT_TRUE(t.at("latency_ms").at("p99").is_number()) << t.dump(2);
  EXPECT_GT(t.at("latency_ms").at("p99").get<double>(), 0);
  EXPECT_GE(t.at("latency_ms").at("p99").get<double>(), t.at("latency_ms").at("p50").get<double>());
  EXPECT_GT(t.at("events_per_datagram").get<double>(), 1);
  EXPECT_GT(t.at("collector").at("rss_mb_max").get<double>(), 0);
  EXPECT_GT(t.at("producers").at("cpu_seconds").get<double>(), 0);
  EXPECT_GT(t.at("producers").at("push_seconds").get<double>(), 0);

  const json& samples = sut.result.at("samples");
  ASSERT_GE(samples.size(), 3U);
  double offered_peak = 0;
  for (const auto& s : samples) {
    for (const char* key : {"t_s", "offered_eps", "delivered_eps", "dropped_eps", "ring_fill_max",
                            "datagrams_ps", "producer_cpu_pct", "dropped_eps_by_reason"}) {
      EXPECT_TRUE(s.contains(key)) << key << " missing in " << s.dump();
    }
    offered_peak = std::max(offered_peak, s.at("offered_eps").get<double>());
  }
  // Paced at 10 k/s: a one-second sample sees roughly that.
  EXPECT_GT(offered_peak, 5'000);
  EXPECT_LT(offered_peak, 20'000);
  EXPECT_TRUE(std::filesystem::exists(dir.file("baseline.tsv")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("baseline.gp")));
  // The collector reclaimed every segment of the run.
  const auto prefix = sut.result.at("config").at("prefix").get<std::string>();
  ASSERT_FALSE(prefix.empty());
  EXPECT_TRUE(shm::list_segments(prefix).empty());
}

TEST(ScenarioE2eTest, ProducerDropsShowByReasonInTheLedger) {
  TempDir dir;
  // Tiny rings of drop-newest gauges at 200 k/s overflow: the refusals must all be counted.
  const ScenarioRun sut =
      run_scenario(dir, "baseline", "0.05",
                   {"--rate", "200000", "--kinds", "gauge", "--ring-capacity", "64",
                    "--collector-arg", "--max-drain-rate", "--collector-arg", "20000"});

  ASSERT_EQ(sut.exit_code, 0) << sut.out;
  ASSERT_FALSE(sut.result.is_discarded()) << sut.out;
  const json& t = sut.result.at("totals");
  const auto refused = t.at("refused").get<double>();
  EXPECT_GT(refused, 0) << t.dump(2);
  double by_reason = 0;
  for (const auto& [reason, n] : t.at("dropped_by_reason").items()) by_reason += n.get<double>();
  EXPECT_EQ(by_reason, refused);
  EXPECT_EQ(t.at("unaccounted").get<double>(), 0) << t.dump(2);
}

TEST(ScenarioE2eTest, MissingCollectorBinaryFailsWithOneLine) {
  TempDir dir;
  auto child = ChildProcess::spawn(
      {SHMSTATS_LOADGEN_BIN, "--scenario", "baseline", "--scale", "0.01", "--out-dir", dir.path(),
       "--collector", "/nonexistent/shmstats-collector", "--recv", SHMSTATS_RECV_BIN});
  (void)child.read_all(true);

  EXPECT_EQ(child.wait(kRunTimeout), 1);
}

}  // namespace
}  // namespace shmstats
