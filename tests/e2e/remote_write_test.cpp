// The remote_write output against the real Prometheus 2.42 (its remote-write receiver) and the
// real VictoriaMetrics 1.112 (../shared/peers): exact per-series totals from loadgen producers,
// two collectors (two hosts) into one store, every interval after an outage, a rejected request
// not retried, and TLS with a certificate the test makes.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/peers.h"
#include "tests/support/pipeline.h"
#include "tests/support/support.h"

namespace shmstats {
namespace {

using nlohmann::json;
using testing::add_report;
using testing::ChildProcess;
using testing::Peer;
using testing::Pushed;
using testing::run_loadgen;
using testing::SegmentGuard;
using testing::TempDir;
using testing::unique_prefix;
using testing::wait_until;
using namespace std::chrono_literals;

constexpr auto kWait = 90s;
constexpr int kEventsPerThread = 300;

std::string write_url(const Peer& peer, const std::string& path) {
  return "http://127.0.0.1:" + std::to_string(peer.port()) + path;
}

// A queue of many batches per output: under the sanitizers an aggregating output can lag the
// drain by seconds, and a full queue would drop (and count) batches that the exact comparisons
// below must see.
constexpr const char* kExporterQueue = "10000";

testing::PipelineProcess collector_for(const std::string& prefix, std::vector<std::string> args,
                                       const std::vector<std::string>& env = {}) {
  args.insert(args.end(), {"--exporter-queue", kExporterQueue});
  return testing::start_collector(SHMSTATS_COLLECTOR_BIN, prefix, args, env);
}

// A paced run of 3 processes x 2 threads over 8 series of every kind (nothing folds).
json paced_run(const std::string& prefix, const TempDir& dir, const std::string& name) {
  return run_loadgen(
      SHMSTATS_LOADGEN_BIN, prefix, dir.file(name + ".json"),
      {"--processes", "3", "--threads", "2", "--series", "8", "--events-per-thread",
       std::to_string(kEventsPerThread), "--rate", "20000", "--ring-capacity", "65536"});
}

// One collector writing to Prometheus and to VictoriaMetrics at once (two remote_write outputs):
// each store holds exactly what the producers pushed, folded values included.
TEST(RemoteWriteTest, PrometheusAndVictoriaMetricsHoldExactlyWhatTheProducersPushed) {
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  Peer prometheus("start-prometheus.sh", "-", dir, "prometheus");
  Peer victoria("start-victoria-metrics.sh", "-", dir, "victoria");
  ASSERT_TRUE(prometheus.started());
  ASSERT_TRUE(victoria.started());
  auto collector = collector_for(
      guard.prefix(), {"--remote-write", write_url(prometheus, "/api/v1/write"), "--remote-write",
                       write_url(victoria, "/api/v1/write"), "--remote-write-interval", "500ms"});
  ASSERT_NE(collector.http_port, 0);

  std::map<std::string, Pushed> pushed;
  const json paced = paced_run(guard.prefix(), dir, "paced");
  ASSERT_NO_FATAL_FAILURE(add_report(paced, pushed));
  ASSERT_EQ(paced.at("totals").at("refused").get<std::uint64_t>(), 0U);
  const json folded =
      run_loadgen(SHMSTATS_LOADGEN_BIN, guard.prefix(), dir.file("folded.json"),
                  {"--processes", "2", "--threads", "2", "--series", "3", "--events-per-thread",
                   "20000", "--ring-capacity", "64", "--overflow", "fold"});
  ASSERT_NO_FATAL_FAILURE(add_report(folded, pushed));

  const double gauge_last = (kEventsPerThread - 1) % 500;
  std::string last;
  for (const Peer* store : {&prometheus, &victoria}) {
    ASSERT_TRUE(wait_until(
        [&] {
          (void)testing::http_get(store->port(), "/internal/force_flush");  // VictoriaMetrics
          return testing::store_holds_counts(*store, pushed, gauge_last, last);
        },
        kWait, [&] { return last + "\n" + collector.metrics(); }));
    testing::expect_sums(*store, pushed);
  }
  const std::string page = collector.metrics();
  for (const char* name : {"remote_write", "remote_write-2"}) {
    const std::string label = std::string("exporter=\"") + name + "\"";
    EXPECT_GT(testing::prom_value(page, "shmstats_exporter_remote_write_requests_total",
                                  label + ",result=\"ok\""),
              0);
    EXPECT_EQ(testing::prom_value(page, "shmstats_exporter_remote_write_requests_total",
                                  label + ",result=\"rejected\""),
              0);
  }
  EXPECT_GT(testing::prom_value(page, "shmstats_collector_folded_values_received_total"), 0);
  collector.process.kill(SIGTERM);
  EXPECT_EQ(collector.process.wait(kWait), 0);
}

// The multi-host deployment: two collectors (two prefixes standing for two hosts, --host a and
// --host b) write into one VictoriaMetrics; a query summed by host gives each host's totals.
TEST(RemoteWriteTest, TwoCollectorsIntoOneStoreGiveEachHostsExactTotals) {
  TempDir dir;
  Peer victoria("start-victoria-metrics.sh", "-", dir, "victoria");
  ASSERT_TRUE(victoria.started());
  std::map<std::string, std::map<std::string, Pushed>> pushed_by_host;
  std::vector<testing::PipelineProcess> collectors;
  std::vector<std::unique_ptr<SegmentGuard>> guards;
  for (const char* host : {"host-a", "host-b"}) {
    guards.push_back(std::make_unique<SegmentGuard>(unique_prefix() + host[5]));
    collectors.push_back(
        collector_for(guards.back()->prefix(),
                      {"--host", host, "--remote-write", write_url(victoria, "/api/v1/write"),
                       "--remote-write-interval", "500ms"}));
    ASSERT_NE(collectors.back().http_port, 0);
  }
  for (std::size_t i = 0; i < guards.size(); ++i) {
    const std::string host = i == 0 ? "host-a" : "host-b";
    // Different loads per host, so a mix-up cannot pass.
    const json report =
        run_loadgen(SHMSTATS_LOADGEN_BIN, guards[i]->prefix(), dir.file(host + ".json"),
                    {"--processes", "1", "--threads", std::to_string(i + 1), "--series", "4",
                     "--events-per-thread", std::to_string(kEventsPerThread), "--rate", "20000",
                     "--ring-capacity", "65536"});
    ASSERT_NO_FATAL_FAILURE(add_report(report, pushed_by_host[host]));
  }
  const double gauge_last = (kEventsPerThread - 1) % 500;
  for (const auto& [host, pushed] : pushed_by_host) {
    std::string last;
    ASSERT_TRUE(wait_until(
        [&] {
          (void)testing::http_get(victoria.port(), "/internal/force_flush");
          return testing::store_holds_counts(victoria, pushed, gauge_last, last,
                                             "host=\"" + host + "\"");
        },
        kWait, [&] { return host + ": " + last; }));
  }
  // The query a dashboard of the fleet runs: one total per host.
  const json by_host = victoria.query("sum by (host) (loadgen_s0_total)");
  ASSERT_EQ(by_host["data"]["result"].size(), 2U) << by_host.dump();
  for (const auto& r : by_host["data"]["result"]) {
    const std::string host = r["metric"]["host"];
    EXPECT_EQ(std::stod(r["value"][1].get<std::string>()), pushed_by_host[host]["loadgen.s0"].sum)
        << host;
  }
  for (auto& c : collectors) {
    c.process.kill(SIGTERM);
    EXPECT_EQ(c.process.wait(kWait), 0);
  }
}

// The destination is down for the first 20 s while a producer pushes; then VictoriaMetrics starts
// on that port. Every interval's sample arrives (one per second, in order), or is counted.
TEST(RemoteWriteTest, EveryIntervalArrivesAfterTheDestinationWasDownFor20Seconds) {
  constexpr auto kOutage = 20s;
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  const std::uint16_t port = testing::free_tcp_port();
  ASSERT_NE(port, 0);
  auto collector =
      collector_for(guard.prefix(),
                    {"--remote-write", "http://127.0.0.1:" + std::to_string(port) + "/api/v1/write",
                     "--remote-write-interval", "1s", "--remote-write-timeout", "2s"});
  ASSERT_NE(collector.http_port, 0);
  // One counter series, pushed for the whole outage and a bit after.
  auto producer = ChildProcess::spawn({SHMSTATS_LOADGEN_BIN,
                                       "--prefix",
                                       guard.prefix(),
                                       "--processes",
                                       "1",
                                       "--threads",
                                       "1",
                                       "--series",
                                       "1",
                                       "--kinds",
                                       "counter",
                                       "--rate",
                                       "200",
                                       "--duration",
                                       "24",
                                       "--ring-capacity",
                                       "65536",
                                       "--hold-ms",
                                       "500",
                                       "--json-out",
                                       dir.file("run.json")});
  std::this_thread::sleep_for(kOutage);  // the outage itself, not a synchronisation
  const std::string label = "exporter=\"remote_write\"";
  const double failed_before_start = testing::prom_value(
      collector.metrics(), "shmstats_exporter_remote_write_failed_attempts_total",
      label + ",cause=\"no_answer\"");
  Peer victoria("start-victoria-metrics.sh", "-", dir, "victoria", {}, port);
  ASSERT_TRUE(victoria.started());
  (void)producer.read_all(true);
  ASSERT_EQ(producer.wait(kWait), 0);
  std::map<std::string, Pushed> pushed;
  {
    std::ifstream in(dir.file("run.json"));
    ASSERT_NO_FATAL_FAILURE(add_report(json::parse(in, nullptr, false), pushed));
  }
  // Wait until the store has the total and nothing is pending.
  std::string page;
  ASSERT_TRUE(wait_until(
      [&] {
        (void)testing::http_get(victoria.port(), "/internal/force_flush");
        page = collector.metrics();
        return victoria.query_one("loadgen_s0_total") == pushed["loadgen.s0"].sum &&
               testing::prom_value(page, "shmstats_exporter_remote_write_pending_requests",
                                   label) == 0;
      },
      kWait, [&] { return page; }));
  collector.process.kill(SIGTERM);
  ASSERT_EQ(collector.process.wait(kWait), 0);
  (void)testing::http_get(victoria.port(), "/internal/force_flush");
  // Every sample VictoriaMetrics holds for the series: one per interval, in time order.
  const std::string exported = testing::http_get(
      victoria.port(), "/api/v1/export?match[]=" + testing::url_encode("loadgen_s0_total"));
  const json series = json::parse(exported.substr(0, exported.find('\n')), nullptr, false);
  ASSERT_FALSE(series.is_discarded()) << exported;
  const auto& timestamps = series["timestamps"];
  const auto& values = series["values"];
  const double sent = testing::prom_value(page, "shmstats_exporter_remote_write_samples_total",
                                          label + ",result=\"sent\"");
  const double dropped = testing::prom_value(page, "shmstats_exporter_remote_write_samples_total",
                                             label + ",result=\"dropped\"");
  EXPECT_GT(failed_before_start, 0) << "the outage was seen";
  EXPECT_EQ(dropped, 0) << page;
  EXPECT_GE(timestamps.size(), 20U) << "the intervals of the outage arrived after it";
  EXPECT_GE(static_cast<double>(timestamps.size()) + 1, sent)
      << "every sample the collector counted sent is stored (the last may land after the export)";
  for (std::size_t i = 1; i < timestamps.size(); ++i) {
    const auto gap_ms = timestamps[i].get<std::int64_t>() - timestamps[i - 1].get<std::int64_t>();
    EXPECT_GT(gap_ms, 500) << "one sample per 1 s interval, at " << i;
    EXPECT_LT(gap_ms, 1500) << "no interval missing, at " << i;
    EXPECT_GE(values[i].get<double>(), values[i - 1].get<double>()) << "a counter, in order";
  }
}

// A request the server refuses with a 4xx is not retried: counted as rejected with its status,
// its samples counted dropped. (Fault hook collector/fault.h: the bodies are not snappy, and the
// real Prometheus answers 400.)
TEST(RemoteWriteTest, RequestRejectedWith400IsNotRetriedAndIsCounted) {
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  Peer prometheus("start-prometheus.sh", "-", dir, "prometheus");
  ASSERT_TRUE(prometheus.started());
  auto collector = collector_for(guard.prefix(),
                                 {"--remote-write", write_url(prometheus, "/api/v1/write"),
                                  "--remote-write-interval", "300ms"},
                                 {"SHMSTATS_COLLECTOR_FAULT_CORRUPT_REQUESTS=remote_write"});
  ASSERT_NE(collector.http_port, 0);
  const json report = run_loadgen(SHMSTATS_LOADGEN_BIN, guard.prefix(), dir.file("run.json"),
                                  {"--processes", "1", "--threads", "1", "--series", "2",
                                   "--events-per-thread", "50", "--kinds", "counter"});
  ASSERT_TRUE(report.contains("totals"));
  const std::string label = "exporter=\"remote_write\"";
  std::string page;
  ASSERT_TRUE(wait_until(
      [&] {
        page = collector.metrics();
        return testing::prom_value(page, "shmstats_exporter_remote_write_requests_total",
                                   label + ",result=\"rejected\"") >= 2;
      },
      kWait, [&] { return page; }));
  EXPECT_EQ(testing::prom_value(page, "shmstats_exporter_remote_write_last_rejected_status", label),
            400);
  EXPECT_EQ(testing::prom_value(page, "shmstats_exporter_remote_write_retries_total", label), 0);
  EXPECT_EQ(testing::prom_value(page, "shmstats_exporter_remote_write_requests_total",
                                label + ",result=\"ok\""),
            0);
  EXPECT_GT(testing::prom_value(page, "shmstats_exporter_remote_write_samples_total",
                                label + ",result=\"dropped\""),
            0);
  EXPECT_TRUE(std::isnan(prometheus.query_one("loadgen_s0_total")));
}

// Runs openssl (Debian's) to make a self-signed certificate for 127.0.0.1 in `dir`.
bool make_certificate(const TempDir& dir, const std::string& name) {
  auto openssl = ChildProcess::spawn({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048",
                                      "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                                      "subjectAltName=IP:127.0.0.1", "-keyout",
                                      dir.file(name + ".key"), "-out", dir.file(name + ".pem")});
  (void)openssl.read_all(true);
  return openssl.wait(60s) == 0;
}

// https to Prometheus started with a TLS web config: with the certificate's CA the samples
// arrive; a collector given another CA verifies nothing, sends nothing and counts its failures.
TEST(RemoteWriteTest, HttpsDeliversWithTheRightCaAndFailsVerificationWithAWrongOne) {
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  ASSERT_TRUE(make_certificate(dir, "server"));
  ASSERT_TRUE(make_certificate(dir, "other"));
  {
    std::ofstream web(dir.file("web.yml"));
    web << "tls_server_config:\n  cert_file: " << dir.file("server.pem")
        << "\n  key_file: " << dir.file("server.key") << "\n";
  }
  Peer prometheus("start-prometheus.sh", "-", dir, "prometheus",
                  {"PROM_WEB_CONFIG=" + dir.file("web.yml"), "PROM_SCHEME=https",
                   "PROM_CURL_OPTS=--cacert " + dir.file("server.pem")});
  ASSERT_TRUE(prometheus.started());
  const std::string url =
      "https://127.0.0.1:" + std::to_string(prometheus.port()) + "/api/v1/write";
  auto collector =
      collector_for(guard.prefix(), {"--remote-write-interval", "300ms", "--remote-write", url,
                                     "--remote-write-ca-file", dir.file("server.pem")});
  ASSERT_NE(collector.http_port, 0);
  SegmentGuard wrong_guard(unique_prefix() + "w");
  auto wrong =
      collector_for(wrong_guard.prefix(), {"--remote-write-interval", "300ms", "--remote-write",
                                           url, "--remote-write-ca-file", dir.file("other.pem")});
  ASSERT_NE(wrong.http_port, 0);
  const json report = run_loadgen(SHMSTATS_LOADGEN_BIN, guard.prefix(), dir.file("run.json"),
                                  {"--processes", "1", "--threads", "1", "--series", "1",
                                   "--events-per-thread", "100", "--kinds", "counter"});
  std::map<std::string, Pushed> pushed;
  ASSERT_NO_FATAL_FAILURE(add_report(report, pushed));
  const json wrong_report =
      run_loadgen(SHMSTATS_LOADGEN_BIN, wrong_guard.prefix(), dir.file("wrong.json"),
                  {"--processes", "1", "--threads", "1", "--series", "1", "--events-per-thread",
                   "100", "--kinds", "counter"});
  ASSERT_TRUE(wrong_report.contains("totals"));
  const std::string label = "exporter=\"remote_write\"";
  std::string page;
  std::string wrong_page;
  ASSERT_TRUE(wait_until(
      [&] {
        page = collector.metrics();
        wrong_page = wrong.metrics();
        return testing::prom_value(page, "shmstats_exporter_remote_write_samples_total",
                                   label + ",result=\"sent\"") > 0 &&
               testing::prom_value(wrong_page,
                                   "shmstats_exporter_remote_write_failed_attempts_total",
                                   label + ",cause=\"no_answer\"") > 0;
      },
      kWait, [&] { return page + "\n" + wrong_page; }));
  EXPECT_EQ(testing::prom_value(page, "shmstats_exporter_remote_write_requests_total",
                                label + ",result=\"rejected\""),
            0);
  EXPECT_EQ(testing::prom_value(wrong_page, "shmstats_exporter_remote_write_requests_total",
                                label + ",result=\"ok\""),
            0)
      << "nothing is sent to a server that fails verification";
  // Prometheus' query API is https now too: read the total with curl and the right CA.
  std::string curl_out;
  ASSERT_TRUE(wait_until(
      [&] {
        auto curl = ChildProcess::spawn({"/usr/bin/curl", "-s", "--cacert", dir.file("server.pem"),
                                         "https://127.0.0.1:" + std::to_string(prometheus.port()) +
                                             "/api/v1/query?query=loadgen_s0_total"});
        curl_out = curl.read_all(true);
        (void)curl.wait(30s);
        const json j = json::parse(curl_out, nullptr, false);
        return !j.is_discarded() && j["data"]["result"].size() == 1 &&
               std::stod(j["data"]["result"][0]["value"][1].get<std::string>()) ==
                   pushed["loadgen.s0"].sum;
      },
      kWait, [&] { return curl_out; }));
  collector.process.kill(SIGTERM);
  wrong.process.kill(SIGTERM);
  EXPECT_EQ(collector.process.wait(kWait), 0);
  EXPECT_EQ(wrong.process.wait(kWait), 0);
}

// Basic auth against Prometheus started with basic_auth_users: with the right password the samples
// are accepted; with a wrong one every request is answered 401, not retried, counted rejected.
TEST(RemoteWriteTest, BasicAuthIsSentAndAWrongPasswordIsRejectedWithoutRetry) {
  // bcrypt of "s3cret" (Prometheus' web config keeps only the hash).
  constexpr const char* kHash = "$2b$05$abcdefghijklmnopqrstuuLK7U1u6pVRmL7L1BBM2aS35PSZnDXlK";
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  {
    std::ofstream web(dir.file("web.yml"));
    web << "basic_auth_users:\n  shmstats: " << kHash << "\n";
    std::ofstream(dir.file("right")) << "s3cret\n";
    std::ofstream(dir.file("wrong")) << "guess\n";
  }
  Peer prometheus("start-prometheus.sh", "-", dir, "prometheus",
                  {"PROM_WEB_CONFIG=" + dir.file("web.yml"), "PROM_CURL_OPTS=-u shmstats:s3cret"});
  ASSERT_TRUE(prometheus.started());
  const std::string url = write_url(prometheus, "/api/v1/write");
  auto right =
      collector_for(guard.prefix(), {"--remote-write", url, "--remote-write-interval", "300ms",
                                     "--remote-write-basic-auth-user", "shmstats",
                                     "--remote-write-basic-auth-password-file", dir.file("right")});
  ASSERT_NE(right.http_port, 0);
  SegmentGuard wrong_guard(unique_prefix() + "w");
  auto wrong = collector_for(
      wrong_guard.prefix(),
      {"--remote-write", url, "--remote-write-interval", "300ms", "--remote-write-basic-auth-user",
       "shmstats", "--remote-write-basic-auth-password-file", dir.file("wrong")});
  ASSERT_NE(wrong.http_port, 0);
  for (const auto* g : {&guard, &wrong_guard}) {
    const json report = run_loadgen(SHMSTATS_LOADGEN_BIN, g->prefix(), dir.file("run.json"),
                                    {"--processes", "1", "--threads", "1", "--series", "1",
                                     "--events-per-thread", "100", "--kinds", "counter"});
    ASSERT_TRUE(report.contains("totals"));
  }
  const std::string label = "exporter=\"remote_write\"";
  std::string page;
  std::string wrong_page;
  ASSERT_TRUE(wait_until(
      [&] {
        page = right.metrics();
        wrong_page = wrong.metrics();
        return testing::prom_value(page, "shmstats_exporter_remote_write_requests_total",
                                   label + ",result=\"ok\"") > 0 &&
               testing::prom_value(wrong_page, "shmstats_exporter_remote_write_requests_total",
                                   label + ",result=\"rejected\"") > 0;
      },
      kWait, [&] { return page + "\n" + wrong_page; }));
  EXPECT_EQ(
      testing::prom_value(wrong_page, "shmstats_exporter_remote_write_last_rejected_status", label),
      401);
  EXPECT_EQ(testing::prom_value(wrong_page, "shmstats_exporter_remote_write_retries_total", label),
            0);
  EXPECT_EQ(testing::prom_value(wrong_page, "shmstats_exporter_remote_write_requests_total",
                                label + ",result=\"ok\""),
            0);
  right.process.kill(SIGTERM);
  wrong.process.kill(SIGTERM);
  EXPECT_EQ(right.process.wait(kWait), 0);
  EXPECT_EQ(wrong.process.wait(kWait), 0);
}

}  // namespace
}  // namespace shmstats
