// End to end against the real Etsy StatsD daemon (../shared/peers): batches go through the
// DogStatsD exporter over UDP, and the values StatsD holds are read back from its admin port and
// compared exactly. StatsD's flush interval is an hour, so nothing is reset during the test.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "collector/exporters/dogstatsd/dogstatsd.h"
#include "tests/support/support.h"
#include "tests/unit/collector/batch_builder.h"
#include "tests/unit/collector/receivers.h"

#ifndef SHMSTATS_PEER_SCRIPTS_DIR
#error "SHMSTATS_PEER_SCRIPTS_DIR must name the peers directory (set by tests/e2e/CMakeLists.txt)"
#endif

namespace shmstats::collector {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using testing::BatchBuilder;
using testing::ChildProcess;
using testing::TempDir;
using testing::wait_until;

constexpr milliseconds kStartTimeout{60'000};
constexpr milliseconds kWait{20'000};
constexpr milliseconds kAdminTimeout{5'000};

// A loopback TCP port that was free a moment ago.
// One admin command: connects, sends "<command>\n", returns the text before "END".
std::string admin_query(std::uint16_t port, const std::string& command) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  std::string reply;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0) {
    const std::string line = command + "\n";
    if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size())) {
      const auto deadline = std::chrono::steady_clock::now() + kAdminTimeout;
      char buf[4096];
      while (reply.find("\nEND") == std::string::npos &&
             std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        reply.append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  ::close(fd);
  const auto end = reply.find("\nEND");
  return end == std::string::npos ? std::string() : reply.substr(0, end);
}

// The JavaScript object literal StatsD's admin port prints (Node's util.inspect): keys are
// identifiers or quoted strings, values numbers or arrays of numbers.
struct JsObject {
  std::map<std::string, double> numbers;
  std::map<std::string, std::vector<double>> arrays;
  bool ok = false;
};

class JsParser {
 public:
  explicit JsParser(std::string_view text) : s_(text) {}

  JsObject parse() {
    JsObject out;
    if (!eat('{')) return out;
    while (!eat('}')) {
      std::string key;
      if (!parse_key(key) || !eat(':')) return out;
      if (eat('[')) {
        std::vector<double> values;
        while (!eat(']')) {
          double v = 0;
          if (!parse_number(v)) return out;
          values.push_back(v);
          (void)eat(',');
        }
        out.arrays[key] = std::move(values);
      } else {
        double v = 0;
        if (!parse_number(v)) return out;
        out.numbers[key] = v;
      }
      (void)eat(',');
      if (at_end()) return out;
    }
    out.ok = true;
    return out;
  }

 private:
  void skip_space() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_])) != 0) ++i_;
  }
  bool at_end() {
    skip_space();
    return i_ >= s_.size();
  }
  bool eat(char c) {
    skip_space();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool parse_key(std::string& key) {
    skip_space();
    if (i_ >= s_.size()) return false;
    const char quote = s_[i_];
    if (quote == '\'' || quote == '"') {
      for (++i_; i_ < s_.size() && s_[i_] != quote; ++i_) {
        if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
        key += s_[i_];
      }
      return i_++ < s_.size();
    }
    while (i_ < s_.size() && s_[i_] != ':' &&
           std::isspace(static_cast<unsigned char>(s_[i_])) == 0) {
      key += s_[i_++];
    }
    return !key.empty();
  }
  bool parse_number(double& v) {
    skip_space();
    const std::string rest(s_.substr(i_, 64));
    char* end = nullptr;
    v = std::strtod(rest.c_str(), &end);
    if (end == rest.c_str()) return false;
    i_ += static_cast<std::size_t>(end - rest.c_str());
    return true;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class StatsdE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path peers = SHMSTATS_PEER_SCRIPTS_DIR;
    if (!fs::exists(peers / "start-statsd.sh") || !fs::exists(peers / "stop.sh")) {
      FAIL() << "the real StatsD peer is required: no start-statsd.sh/stop.sh in " << peers
             << " (the shared peers directory next to the source tree; install the peers with "
                "its install.sh, as CI does before the tests)";
    }
    stop_script_ = (peers / "stop.sh").string();
    udp_port_ = testing::closed_udp_port();
    admin_port_ = testing::free_tcp_port();
    ASSERT_NE(admin_port_, 0);
    start_script_ = (peers / "start-statsd.sh").string();
    pidfile_ = dir_.path() / "statsd.pid";
    ASSERT_NO_FATAL_FAILURE(start_statsd());
  }

  void TearDown() override {
    if (!started_) return;
    if (HasFailure()) std::cerr << "statsd log:\n" << read_file(log_path()) << "\n";
    stop_statsd();
  }

  // Starts StatsD on the fixture's ports (again, after stop_statsd()).
  void start_statsd() {
    // TMPDIR: the script's config file (mktemp) lands in the test's directory, removed with it.
    auto start = ChildProcess::spawn({"/bin/bash", start_script_, std::to_string(udp_port_),
                                      std::to_string(admin_port_), pidfile_.string()},
                                     {"TMPDIR=" + dir_.path().string()});
    started_ = true;
    const int status = start.wait(kStartTimeout);
    ASSERT_EQ(status, 0) << "start-statsd.sh failed; log:\n" << read_file(log_path());
  }

  void stop_statsd() {
    auto stop = ChildProcess::spawn({"/bin/bash", stop_script_, pidfile_.string()});
    started_ = false;
    EXPECT_EQ(stop.wait(kStartTimeout), 0) << "stop.sh failed";
  }

  fs::path log_path() const { return dir_.path() / "statsd.log"; }

  JsObject query(const std::string& command) const {
    return JsParser(admin_query(admin_port_, command)).parse();
  }

  std::unique_ptr<DogStatsdExporter> make_exporter() const {
    DogStatsdOptions options;
    options.destination = "127.0.0.1:" + std::to_string(udp_port_);
    auto created = DogStatsdExporter::create(options);
    EXPECT_TRUE(created) << created.error().message;
    return created ? std::move(created).value() : nullptr;
  }

  TempDir dir_;
  fs::path pidfile_;
  std::string start_script_;
  std::string stop_script_;
  std::uint16_t udp_port_ = 0;
  std::uint16_t admin_port_ = 0;
  bool started_ = false;
};

std::string describe(const JsObject& o) {
  std::string out = o.ok ? "" : "(unparsed) ";
  for (const auto& [k, v] : o.numbers) out += k + "=" + std::to_string(v) + " ";
  for (const auto& [k, v] : o.arrays) out += k + "=[" + std::to_string(v.size()) + " values] ";
  return out;
}

// The number StatsD holds under `key`; a missing key fails the test and reads as NaN.
double number(const JsObject& o, const std::string& key) {
  const auto it = o.numbers.find(key);
  if (it == o.numbers.end()) {
    ADD_FAILURE() << "StatsD holds no number for \"" << key << "\"; it holds: " << describe(o);
    return std::numeric_limits<double>::quiet_NaN();
  }
  return it->second;
}

std::vector<double> array(const JsObject& o, const std::string& key) {
  const auto it = o.arrays.find(key);
  if (it == o.arrays.end()) {
    ADD_FAILURE() << "StatsD holds no values for \"" << key << "\"; it holds: " << describe(o);
    return {};
  }
  return it->second;
}

TEST_F(StatsdE2eTest, StatsdHoldsExactlyWhatTheDogStatsdExporterSent) {
  auto sut = make_exporter();
  ASSERT_NE(sut, nullptr);
  // StatsD is up once its admin port answers; wait until its UDP side counts a packet too.
  BatchBuilder warmup;
  warmup.point(warmup.series("e2e.warmup", shm::Kind::kCounter), 1);
  JsObject counters;
  ASSERT_TRUE(wait_until(
      [&] {
        (void)sut->send(warmup.batch());
        counters = query("counters");
        return counters.ok && counters.numbers.count("e2e.warmup") == 1;
      },
      kWait, [&] { return describe(counters); }));
  const double lines_before = number(counters, "statsd.metrics_received");

  BatchBuilder b;
  const std::string svc = "checkout";
  const auto* requests =
      b.series("e2e.requests", shm::Kind::kCounter, {{"env", "test"}, {"region", "eu"}}, svc);
  const auto* sampled = b.series("e2e.sampled", shm::Kind::kCounter, {}, svc);
  const auto* plain = b.series("e2e.plain", shm::Kind::kCounter);
  const auto* depth = b.series("e2e.depth", shm::Kind::kGauge, {{"pool", "a"}}, svc);
  const auto* temp = b.series("e2e.temp", shm::Kind::kGauge, {}, svc);
  const auto* latency = b.series("e2e.latency", shm::Kind::kTiming, {{"route", "home"}}, svc);
  b.point(requests, 1).point(requests, 2).point(requests, 3);
  b.point(sampled, 1, 0.5F).point(sampled, 3, 0.25F);
  b.point(plain, 0.5).point(plain, 0.25);
  b.point(depth, 10)
      .point(depth, shm::Kind::kGaugeDelta, 5)
      .point(depth, shm::Kind::kGaugeDelta, -3);
  b.point(temp, -7);
  b.point(latency, 1.5).point(latency, 20).point(latency, 300);
  b.aggregate(requests, 4, 40, 10, 10, 10);
  b.aggregate(latency, 4, 10, 1, 4, 2);
  // How many lines StatsD must count for this batch.
  DogStatsdFormatter formatter(sut->options().max_payload_bytes, true, false);
  std::vector<std::string> datagrams;
  std::vector<std::uint64_t> events;
  (void)formatter.format(b.batch(), datagrams, events);
  double lines = 0;
  for (const auto& d : datagrams) lines += static_cast<double>(testing::split_lines(d).size());

  const SendResult r = sut->send(b.batch());

  EXPECT_EQ(r.events_sent, b.batch().size());
  EXPECT_EQ(r.events_dropped, 0U);
  EXPECT_EQ(r.send_errors, 0U);
  ASSERT_TRUE(wait_until(
      [&] {
        counters = query("counters");
        return counters.ok && counters.numbers.count("statsd.metrics_received") == 1 &&
               counters.numbers.at("statsd.metrics_received") == lines_before + lines;
      },
      kWait, [&] { return describe(counters); }));
  const JsObject gauges = query("gauges");
  const JsObject timers = query("timers");
  ASSERT_TRUE(gauges.ok) << describe(gauges);
  ASSERT_TRUE(timers.ok) << describe(timers);
  EXPECT_EQ(number(counters, "statsd.bad_lines_seen"), 0);
  EXPECT_EQ(number(counters, "e2e.requests;env=test;region=eu;service=checkout"), 1 + 2 + 3 + 40);
  EXPECT_EQ(number(counters, "e2e.sampled;service=checkout"), 1 / 0.5 + 3 / 0.25);
  EXPECT_EQ(number(counters, "e2e.plain"), 0.75);
  EXPECT_EQ(number(counters, "e2e.latency.folded_sum;route=home;service=checkout"), 10);
  EXPECT_EQ(number(counters, "e2e.latency.folded_count;route=home;service=checkout"), 4);
  EXPECT_EQ(number(gauges, "e2e.depth;pool=a;service=checkout"), 10 + 5 - 3);
  EXPECT_EQ(number(gauges, "e2e.temp;service=checkout"), -7);
  EXPECT_EQ(number(gauges, "e2e.latency.folded_min;route=home;service=checkout"), 1);
  EXPECT_EQ(number(gauges, "e2e.latency.folded_max;route=home;service=checkout"), 4);
  EXPECT_EQ(array(timers, "e2e.latency;route=home;service=checkout"),
            (std::vector<double>{1.5, 20, 300}));
}

// StatsD goes away and the exporter's breaker opens; while it is down each half-open probe (an
// empty datagram) fails and no event is counted sent. StatsD comes back on the same port: the
// probe that closes the breaker is skipped by StatsD (no bad line), and every event counted sent
// from then on is in StatsD.
TEST_F(StatsdE2eTest, BreakerProbeIsNoBadLineAndDeliveryResumesWhenStatsdReturns) {
  DogStatsdOptions options;
  options.destination = "127.0.0.1:" + std::to_string(udp_port_);
  options.breaker_failures = 1;
  options.breaker_open = std::chrono::milliseconds(50);
  auto created = DogStatsdExporter::create(options);
  ASSERT_TRUE(created) << created.error().message;
  auto sut = std::move(created).value();
  BatchBuilder b;
  b.point(b.series("e2e.resumed", shm::Kind::kCounter), 1);
  stop_statsd();
  auto state = [&] { return "breaker " + std::string(to_string(sut->breaker().state)); };
  ASSERT_TRUE(wait_until(
      [&] {
        (void)sut->send(b.batch());
        return std::string(to_string(sut->breaker().state)) == "open";
      },
      kWait, state));
  std::uint64_t sent_while_down = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        sent_while_down += sut->send(b.batch()).events_sent;
        return sut->breaker().probes_failed >= 2;
      },
      kWait, state));
  EXPECT_EQ(sent_while_down, 0U);

  ASSERT_NO_FATAL_FAILURE(start_statsd());
  std::uint64_t sent = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        sent += sut->send(b.batch()).events_sent;
        return std::string(to_string(sut->breaker().state)) == "closed";
      },
      kWait, state));
  ASSERT_GE(sent, 1U);
  JsObject counters;
  ASSERT_TRUE(wait_until(
      [&] {
        counters = query("counters");
        return counters.ok && counters.numbers.count("e2e.resumed") == 1 &&
               counters.numbers.at("e2e.resumed") == static_cast<double>(sent);
      },
      kWait, [&] { return "sent " + std::to_string(sent) + ": " + describe(counters); }));
  EXPECT_EQ(number(counters, "statsd.bad_lines_seen"), 0);
  // The closing probe and the batch after it, both received.
  EXPECT_GE(number(counters, "statsd.packets_received"), 2);
  EXPECT_EQ(sut->breaker().probes_sent, sut->breaker().probes_failed + 1);
}

// The whole way: producer processes -> shared memory -> shmstats-collector --dogstatsd -> the
// real StatsD daemon. Counters, gauges and timers read back exactly what the producers pushed.
TEST_F(StatsdE2eTest, ProducersThroughCollectorArriveExactlyInStatsd) {
  testing::SegmentGuard guard(testing::unique_prefix());
  auto collector =
      ChildProcess::spawn({SHMSTATS_COLLECTOR_BIN, "--shm-prefix", guard.prefix(), "--dogstatsd",
                           "127.0.0.1:" + std::to_string(udp_port_), "--http", "127.0.0.1:0",
                           "--flush-interval", "20ms", "--log-level", "warn"});
  ASSERT_FALSE(collector.read_line_starting("listening http ", std::chrono::seconds(10)).empty());
  // One producer thread, so the last gauge value is known: loadgen's gauge value is
  // (push index % 500), the last of kEvents pushes is (kEvents - 1) % 500. Fewer than 100 events
  // per series: StatsD's admin port prints at most 100 values of a timer.
  constexpr int kEvents = 90;
  const std::string report_file = (dir_.path() / "loadgen.json").string();
  auto loadgen = ChildProcess::spawn(
      {SHMSTATS_LOADGEN_BIN, "--prefix", guard.prefix(), "--processes", "1", "--threads", "1",
       "--series", "4", "--events-per-thread", std::to_string(kEvents), "--rate", "2000",
       "--ring-capacity", "65536", "--hold-ms", "200", "--json-out", report_file});
  const std::string loadgen_out = loadgen.read_all(true);
  ASSERT_EQ(loadgen.wait(std::chrono::seconds(60)), 0) << loadgen_out;
  std::ifstream in(report_file);
  const auto report = nlohmann::json::parse(in, nullptr, false);
  ASSERT_TRUE(report.is_object());
  ASSERT_EQ(report.at("totals").at("refused").get<std::uint64_t>(), 0U);
  std::map<std::string, nlohmann::json> by_kind;
  for (const auto& series : report.at("series")) by_kind[series.at("kind")] = series;
  const std::string counter_key = "loadgen.s0;service=loadgen;shard=0";
  const std::string timer_key = "loadgen.s1;service=loadgen;shard=1";
  const std::string gauge_key = "loadgen.s3;service=loadgen;shard=3";
  JsObject counters;
  JsObject timers;
  JsObject gauges;
  ASSERT_TRUE(wait_until(
      [&] {
        counters = query("counters");
        timers = query("timers");
        gauges = query("gauges");
        return counters.numbers.count(counter_key) == 1 && timers.arrays.count(timer_key) == 1 &&
               gauges.numbers.count(gauge_key) == 1 &&
               gauges.numbers.at(gauge_key) == (kEvents - 1) % 500 &&
               counters.numbers.at(counter_key) ==
                   by_kind.at("counter").at("accepted_sum").get<double>() &&
               timers.arrays.at(timer_key).size() ==
                   by_kind.at("timing").at("accepted").get<std::size_t>();
      },
      kWait,
      [&] { return describe(counters) + " / " + describe(timers) + " / " + describe(gauges); }));
  EXPECT_EQ(number(counters, "statsd.bad_lines_seen"), 0);
  EXPECT_EQ(number(counters, counter_key), by_kind.at("counter").at("accepted_sum").get<double>());
  std::int64_t timer_tenths = 0;
  for (const double v : array(timers, timer_key)) timer_tenths += std::llround(v * 10);
  EXPECT_EQ(timer_tenths, std::llround(by_kind.at("timing").at("accepted_sum").get<double>() * 10));
  EXPECT_EQ(number(gauges, gauge_key), (kEvents - 1) % 500);
  collector.kill(SIGTERM);
  EXPECT_EQ(collector.wait(std::chrono::seconds(10)), 0);
}

}  // namespace
}  // namespace shmstats::collector
