// End to end with real processes on loopback: producers (shmstats-loadgen) -> shared memory ->
// shmstats-collector -> UDP datagrams -> shmstats-recv -> JSON Lines.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/http_client.h"
#include "shm/segment.h"
#include "tests/support/support.h"

namespace shmstats {
namespace {

using nlohmann::json;
using testing::ChildProcess;
using testing::SegmentGuard;
using testing::unique_prefix;
using testing::wait_until;
using namespace std::chrono_literals;

// Loadgen's values are multiples of 0.1; sums are compared in whole tenths so that the order of
// additions (which differs between producers, folds and the receiver) cannot matter.
struct Totals {
  std::uint64_t count = 0;
  std::int64_t sum_tenths = 0;
};

std::int64_t tenths(double v) { return std::llround(v * 10); }

std::string key_of(const json& line) {
  std::string key = line.at("name").get<std::string>();
  for (const auto& [k, v] : line.at("tags").items()) {
    if (k != "service") key += "|" + k + "=" + v.get<std::string>();
  }
  return key;
}

// A temporary directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/shmstats-e2e-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Per series: events and folded aggregates written by the receiver.
std::map<std::string, Totals> read_jsonl(const std::string& path, std::size_t* lines = nullptr) {
  std::map<std::string, Totals> out;
  std::ifstream in(path);
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;  // a line being written
    ++n;
    Totals& t = out[key_of(j)];
    if (j.contains("aggregate")) {
      t.count += j.at("aggregate").at("count").get<std::uint64_t>();
      t.sum_tenths += tenths(j.at("aggregate").at("sum").get<double>());
    } else {
      t.count += 1;
      t.sum_tenths += tenths(j.at("value").get<double>());
    }
  }
  if (lines != nullptr) *lines = n;
  return out;
}

std::uint16_t port_from(const std::string& hostport) {
  const auto colon = hostport.rfind(':');
  return static_cast<std::uint16_t>(std::stoi(hostport.substr(colon + 1)));
}

struct Receiver {
  ChildProcess process;
  std::uint16_t udp_port;
  std::uint16_t http_port;
};

Receiver start_receiver(const std::string& jsonl, std::uint16_t udp_port = 0) {
  auto p =
      ChildProcess::spawn({SHMSTATS_RECV_BIN, "--listen", "127.0.0.1:" + std::to_string(udp_port),
                           "--jsonl", jsonl, "--http", "127.0.0.1:0"});
  const std::string udp = p.read_line_starting("listening udp ", 10s);
  const std::string http = p.read_line_starting("listening http ", 10s);
  EXPECT_FALSE(udp.empty());
  EXPECT_FALSE(http.empty());
  return Receiver{std::move(p), udp.empty() ? std::uint16_t{0} : port_from(udp),
                  http.empty() ? std::uint16_t{0} : port_from(http)};
}

struct Collector {
  ChildProcess process;
  std::uint16_t http_port;
};

Collector start_collector(const std::string& prefix, std::uint16_t udp_port,
                          std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {SHMSTATS_COLLECTOR_BIN,
                                   "--shm-prefix",
                                   prefix,
                                   "--udp",
                                   "127.0.0.1:" + std::to_string(udp_port),
                                   "--http",
                                   "127.0.0.1:0",
                                   "--flush-interval",
                                   "20ms",
                                   "--log-level",
                                   "warn"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto p = ChildProcess::spawn(argv);
  const std::string http = p.read_line_starting("listening http ", 10s);
  EXPECT_FALSE(http.empty());
  return Collector{std::move(p), http.empty() ? std::uint16_t{0} : port_from(http)};
}

std::string http_get(std::uint16_t port, const std::string& path) {
  auto reply = common::http_get("127.0.0.1", port, path, std::chrono::seconds(5));
  return reply ? reply.value().body : std::string();
}

// The value of an unlabelled sample on a Prometheus text page, or -1.
double metric(const std::string& page, const std::string& name) {
  std::istringstream in(page);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

// Values per series (name|tags) in the receiver's JSONL, events only.
std::map<std::string, std::vector<double>> values_by_series(const std::string& path) {
  std::map<std::string, std::vector<double>> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || j.contains("aggregate")) continue;
    out[key_of(j)].push_back(j.at("value").get<double>());
  }
  return out;
}

// Complete lines in the file, without parsing them: the waits below poll this often while the
// file grows, so it must stay cheap (a parse each time turns quadratic under sanitizers).
std::size_t count_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::size_t lines = 0;
  char buf[1 << 16];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    lines += static_cast<std::size_t>(std::count(buf, buf + in.gcount(), '\n'));
  }
  return lines;
}

// A labelled sample's value, e.g. metric_labelled(page, "x", "exporter=\"udp\"").
double metric_labelled(const std::string& page, const std::string& name,
                       const std::string& labels) {
  return metric(page, name + "{" + labels + "}");
}

// A UDP port on 127.0.0.1 with nothing listening (bound, read back, closed).
std::uint16_t closed_udp_port() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

ChildProcess start_producer(const std::string& prefix, int threads, int rate_per_thread,
                            const std::string& overflow = "drop_newest",
                            const std::string& capacity = "65536") {
  return ChildProcess::spawn({testing::helper_path(), "produce", "--prefix", prefix, "--threads",
                              std::to_string(threads), "--forever", "--rate",
                              std::to_string(rate_per_thread), "--ring-capacity", capacity,
                              "--overflow", overflow});
}

json run_loadgen(const std::string& prefix, const std::string& out_file, int processes, int threads,
                 int series, int events_per_thread, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {SHMSTATS_LOADGEN_BIN,
                                   "--prefix",
                                   prefix,
                                   "--processes",
                                   std::to_string(processes),
                                   "--threads",
                                   std::to_string(threads),
                                   "--series",
                                   std::to_string(series),
                                   "--events-per-thread",
                                   std::to_string(events_per_thread),
                                   "--json-out",
                                   out_file};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto p = ChildProcess::spawn(argv);
  const std::string out = p.read_all(true);
  EXPECT_EQ(p.wait(120s), 0) << out;
  std::ifstream in(out_file);
  return json::parse(in, nullptr, false);
}

// 3 producer processes x 4 threads push known events; per series, the count and sum in the
// receiver's JSONL equal what the producers report accepted (pushed - dropped), exactly.
TEST(PipelineTest, ThreeProducersOfFourThreadsArriveExactlyInJsonl) {
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  auto recv = start_receiver(dir.file("out.jsonl"));
  ASSERT_NE(recv.udp_port, 0);
  auto collector = start_collector(guard.prefix(), recv.udp_port);
  ASSERT_NE(collector.http_port, 0);
  constexpr int kProcesses = 3;
  constexpr int kThreads = 4;
  constexpr int kSeries = 8;
  // Per thread and series; 3 * 4 * 8 * 500 = 48,000 events at a rate every build (sanitizers
  // included) sustains on two cores, so nothing may be dropped anywhere.
  constexpr int kEventsPerThread = 500;
  const std::string kSustainedRate = "24000";
  const json report = run_loadgen(
      guard.prefix(), dir.file("loadgen.json"), kProcesses, kThreads, kSeries, kEventsPerThread,
      {"--ring-capacity", "65536", "--hold-ms", "200", "--rate", kSustainedRate});
  ASSERT_TRUE(report.is_object()) << "loadgen wrote no report";
  std::map<std::string, Totals> expected;
  std::uint64_t expected_events = 0;
  for (const auto& s : report.at("series")) {
    std::string key = s.at("name").get<std::string>();
    for (const auto& [k, v] : s.at("tags").items()) key += "|" + k + "=" + v.get<std::string>();
    expected[key].count += s.at("accepted").get<std::uint64_t>();
    expected[key].sum_tenths += tenths(s.at("accepted_sum").get<double>());
    expected_events += s.at("accepted").get<std::uint64_t>();
  }
  ASSERT_EQ(expected.size(), static_cast<std::size_t>(kSeries));
  EXPECT_EQ(report.at("totals").at("refused").get<std::uint64_t>(), 0U)
      << "at this rate nothing should be dropped";
  std::map<std::string, Totals> got;
  ASSERT_TRUE(wait_until(
      [&] {
        got = read_jsonl(dir.file("out.jsonl"));
        std::uint64_t n = 0;
        for (const auto& [k, t] : got) n += t.count;
        return n >= expected_events;
      },
      60s, [&] { return std::to_string(got.size()) + " series so far"; }));
  for (const auto& [key, want] : expected) {
    ASSERT_TRUE(got.count(key)) << key;
    EXPECT_EQ(got[key].count, want.count) << key;
    EXPECT_EQ(got[key].sum_tenths, want.sum_tenths) << key;
  }
  EXPECT_EQ(got.size(), expected.size());
  // The producers exited: their segments are drained and removed.
  EXPECT_TRUE(
      wait_until([&] { return shm::list_segments(guard.prefix()).empty(); }, 20s,
                 [&] { return std::to_string(shm::list_segments(guard.prefix()).size()); }));
  const std::string recv_metrics = http_get(recv.http_port, "/metrics");
  EXPECT_EQ(metric(recv_metrics, "shmstats_recv_lost_total"), 0) << recv_metrics;
  collector.process.kill(SIGTERM);
  EXPECT_EQ(collector.process.wait(10s), 0);
  recv.process.kill(SIGTERM);
  EXPECT_EQ(recv.process.wait(10s), 0);
}

// Each value 0, 1, 2, ... of a series appears exactly once.
::testing::AssertionResult contiguous_from_zero(const std::vector<double>& values) {
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (sorted[i] != static_cast<double>(i)) {
      return ::testing::AssertionFailure()
             << "position " << i << " holds " << sorted[i] << " (" << sorted.size() << " values)";
    }
  }
  return ::testing::AssertionSuccess();
}

// A producer SIGKILLed mid-stream: every event it committed arrives, and the collector removes
// its segment once drained.
TEST(PipelineFaultTest, SigkilledProducerDeliversEveryCommittedEventAndIsReclaimed) {
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  auto recv = start_receiver(dir.file("out.jsonl"));
  auto collector = start_collector(guard.prefix(), recv.udp_port);
  constexpr int kThreads = 2;
  auto producer = start_producer(guard.prefix(), kThreads, 1500);
  const std::string name = producer.read_line_starting("segment ", 10s);
  ASSERT_FALSE(name.empty());
  // Mapped before the kill, so the tails can be read after the collector unlinks it.
  auto watch = shm::Segment::attach(name, shm::Segment::Access::kReadOnly);
  ASSERT_TRUE(watch) << watch.error().message;
  ASSERT_TRUE(wait_until([&] { return count_lines(dir.file("out.jsonl")) >= 2000; }, 30s,
                         [&] { return std::to_string(count_lines(dir.file("out.jsonl"))); }));
  producer.kill(SIGKILL);
  ASSERT_EQ(producer.wait(10s), 128 + SIGKILL);
  std::uint64_t committed = 0;
  for (std::uint32_t r = 0; r < watch.value().geometry().ring_count; ++r) {
    committed += watch.value().ring_stats(r).tail;
  }
  ASSERT_TRUE(wait_until([&] { return shm::list_segments(guard.prefix()).empty(); }, 20s,
                         [] { return std::string("segment still present"); }))
      << "the dead producer's segment is reclaimed";
  std::map<std::string, std::vector<double>> values;
  ASSERT_TRUE(wait_until(
      [&] {
        values = values_by_series(dir.file("out.jsonl"));
        std::uint64_t n = 0;
        for (const auto& [k, v] : values) n += v.size();
        return n >= committed;
      },
      30s, [&] { return "committed " + std::to_string(committed); }));
  std::uint64_t received = 0;
  for (const auto& [key, v] : values) {
    EXPECT_TRUE(contiguous_from_zero(v)) << key;
    received += v.size();
  }
  EXPECT_EQ(received, committed);
  EXPECT_EQ(values.size(), static_cast<std::size_t>(kThreads));
}

// The collector SIGKILLed while producers push, then restarted: the events that waited in the
// rings arrive, and the receiver sees a sender restart, not loss.
TEST(PipelineFaultTest, RestartedCollectorDeliversEventsThatWaitedInRings) {
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  auto recv = start_receiver(dir.file("out.jsonl"));
  auto first = start_collector(guard.prefix(), recv.udp_port);
  constexpr int kThreads = 2;
  auto producer = start_producer(guard.prefix(), kThreads, 1500);
  const std::string name = producer.read_line_starting("segment ", 10s);
  ASSERT_FALSE(name.empty());
  auto watch = shm::Segment::attach(name, shm::Segment::Access::kReadOnly);
  ASSERT_TRUE(watch);
  const shm::Segment& seg = watch.value();
  ASSERT_TRUE(wait_until([&] { return count_lines(dir.file("out.jsonl")) >= 1000; }, 30s,
                         [&] { return std::to_string(count_lines(dir.file("out.jsonl"))); }));
  first.process.kill(SIGKILL);
  ASSERT_EQ(first.process.wait(10s), 128 + SIGKILL);
  // What the dead collector had taken from each ring; everything after it must arrive.
  std::map<std::string, std::uint64_t> head_at_kill;  // series key -> ring head
  auto series_key = [&](std::uint32_t ring) {
    const auto info = seg.read_series(seg.ring_slots(ring)[0].series_id);
    if (!info) return std::string();
    std::string key = info.value().name;
    for (const auto& [k, v] : info.value().tags) key += "|" + k + "=" + v;
    return key;
  };
  std::uint64_t tails_at_kill = 0;
  for (std::uint32_t r = 0; r < seg.geometry().ring_count; ++r) {
    const auto st = seg.ring_stats(r);
    if (st.claims == 0) continue;
    head_at_kill[series_key(r)] = st.head;
    tails_at_kill += st.tail;
  }
  ASSERT_EQ(head_at_kill.size(), static_cast<std::size_t>(kThreads));
  // Let events pile up in the rings with no collector running.
  auto total_tail = [&] {
    std::uint64_t t = 0;
    for (std::uint32_t r = 0; r < seg.geometry().ring_count; ++r) t += seg.ring_stats(r).tail;
    return t;
  };
  ASSERT_TRUE(wait_until([&] { return total_tail() >= tails_at_kill + 2000; }, 30s,
                         [&] { return std::to_string(total_tail()); }));
  auto second = start_collector(guard.prefix(), recv.udp_port);
  ASSERT_TRUE(wait_until([&] { return total_tail() >= tails_at_kill + 4000; }, 30s,
                         [&] { return std::to_string(total_tail()); }));
  producer.kill(SIGKILL);
  ASSERT_EQ(producer.wait(10s), 128 + SIGKILL);
  std::map<std::string, std::uint64_t> final_tail;
  for (std::uint32_t r = 0; r < seg.geometry().ring_count; ++r) {
    if (seg.ring_stats(r).claims > 0) final_tail[series_key(r)] = seg.ring_stats(r).tail;
  }
  ASSERT_TRUE(wait_until([&] { return shm::list_segments(guard.prefix()).empty(); }, 20s,
                         [] { return std::string("segment still present"); }));
  std::map<std::string, std::vector<double>> values;
  ASSERT_TRUE(wait_until(
      [&] {
        values = values_by_series(dir.file("out.jsonl"));
        for (const auto& [key, tail] : final_tail) {
          if (values[key].empty() || values[key].size() < tail - head_at_kill[key]) return false;
          if (*std::max_element(values[key].begin(), values[key].end()) + 1 <
              static_cast<double>(tail)) {
            return false;
          }
        }
        return true;
      },
      30s, [&] { return std::string("waiting for the rings' backlog"); }));
  for (const auto& [key, tail] : final_tail) {
    const std::set<double> seen(values[key].begin(), values[key].end());
    EXPECT_EQ(seen.size(), values[key].size()) << key << ": no value twice";
    std::uint64_t missing = 0;
    for (std::uint64_t v = head_at_kill[key]; v < tail; ++v)
      missing += seen.count(static_cast<double>(v)) ? 0 : 1;
    EXPECT_EQ(missing, 0U) << key << ": events that waited in the ring from " << head_at_kill[key];
  }
  const std::string page = http_get(recv.http_port, "/metrics");
  EXPECT_EQ(metric(page, "shmstats_recv_sender_restarts_total"), 1) << page;
  EXPECT_EQ(metric(page, "shmstats_recv_lost_total"), 0) << page;
  second.process.kill(SIGTERM);
  EXPECT_EQ(second.process.wait(10s), 0);
}

// Against a closed port the breaker opens and drops are counted; when a receiver starts on that
// port the breaker closes and delivery resumes.
TEST(PipelineFaultTest, BreakerOpensAgainstClosedPortAndRecoversWhenReceiverStarts) {
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  const std::uint16_t port = closed_udp_port();
  auto collector = start_collector(guard.prefix(), port, {"--breaker-open", "300ms"});
  auto producer = start_producer(guard.prefix(), 1, 2000);
  ASSERT_FALSE(producer.read_line_starting("segment ", 10s).empty());
  std::string page;
  const std::string udp = "exporter=\"udp\"";
  ASSERT_TRUE(wait_until(
      [&] {
        page = http_get(collector.http_port, "/metrics");
        return metric_labelled(page, "shmstats_exporter_circuit_state", udp) == 1 &&
               metric_labelled(page, "shmstats_exporter_events_dropped_total", udp) > 0;
      },
      30s, [&] { return page; }));
  EXPECT_NE(http_get(collector.http_port, "/health").find("circuit breaker"), std::string::npos);
  auto recv = start_receiver(dir.file("out.jsonl"), port);
  ASSERT_EQ(recv.udp_port, port);
  ASSERT_TRUE(wait_until(
      [&] {
        page = http_get(collector.http_port, "/metrics");
        return metric_labelled(page, "shmstats_exporter_circuit_state", udp) == 0 &&
               count_lines(dir.file("out.jsonl")) > 100;
      },
      30s, [&] { return page; }));
}

// /metrics is valid Prometheus text (promtool, from Debian's prometheus package), and /health
// turns degraded, naming the ring, when a ring stays over 90% full.
TEST(PipelineFaultTest, MetricsPassPromtoolAndHealthDegradesWhenRingStaysFull) {
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  auto recv = start_receiver(dir.file("out.jsonl"));
  // The collector may drain only 200 events/s; the producer pushes 20,000/s into a small ring.
  auto collector = start_collector(guard.prefix(), recv.udp_port, {"--max-drain-rate", "200"});
  auto producer = start_producer(guard.prefix(), 1, 20000, "fold", "1024");
  ASSERT_FALSE(producer.read_line_starting("segment ", 10s).empty());
  std::string health;
  ASSERT_TRUE(wait_until(
      [&] {
        health = http_get(collector.http_port, "/health");
        return health.find("\"degraded\"") != std::string::npos &&
               health.find("full") != std::string::npos;
      },
      30s, [&] { return health; }));
  const std::string page = http_get(collector.http_port, "/metrics");
  const std::string page_file = dir.file("metrics.txt");
  std::ofstream(page_file) << page;
  const std::string cmd =
      std::string(SHMSTATS_PROMTOOL) + " check metrics < " + page_file + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), pipe) != nullptr) output += buf;
  const int status = ::pclose(pipe);
  EXPECT_EQ(status, 0) << output << "\n" << page;
  EXPECT_NE(page.find("shmstats_ring_fill_ratio{"), std::string::npos);
  producer.kill(SIGKILL);
  producer.wait(10s);
}

}  // namespace
}  // namespace shmstats
