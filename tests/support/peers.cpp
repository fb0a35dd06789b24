#include "tests/support/peers.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "tests/support/pipeline.h"

namespace shmstats::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kPeerTimeout = 90s;

}  // namespace

std::string url_encode(const std::string& text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '_' || c == '-' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    }
  }
  return out;
}

Peer::Peer(const std::string& script, const std::string& target, const TempDir& dir,
           const std::string& name, const std::vector<std::string>& env, std::uint16_t port) {
  const fs::path peers = SHMSTATS_PEER_SCRIPTS_DIR;
  if (!fs::exists(peers / script)) {
    ADD_FAILURE() << "the real peer is required: no " << script << " in " << peers
                  << " (install the peers with its install.sh, as CI does)";
    return;
  }
  stop_script_ = (peers / "stop.sh").string();
  pidfile_ = dir.file(name + ".pid");
  log_path_ = dir.file(name + ".log");
  port_ = port != 0 ? port : free_tcp_port();
  std::vector<std::string> environment = env;
  // The scripts make their data directory with mktemp: inside `dir`, removed with it.
  environment.push_back("TMPDIR=" + dir.path().string());
  auto start = ChildProcess::spawn(
      {"/bin/bash", (peers / script).string(), std::to_string(port_), target, pidfile_},
      environment);
  started_ = start.wait(kPeerTimeout) == 0;
  EXPECT_TRUE(started_) << script << " failed; log:\n" << log();
}

Peer::~Peer() {
  if (stop_script_.empty()) return;
  auto stop = ChildProcess::spawn({"/bin/bash", stop_script_, pidfile_});
  (void)stop.wait(kPeerTimeout);
}

std::string Peer::log() const { return file_text(log_path_); }

nlohmann::json Peer::query(const std::string& promql) const {
  return nlohmann::json::parse(http_get(port_, "/api/v1/query?query=" + url_encode(promql)),
                               nullptr, false);
}

double Peer::query_one(const std::string& promql, std::string* raw) const {
  const std::string body = http_get(port_, "/api/v1/query?query=" + url_encode(promql));
  if (raw != nullptr) *raw = body;
  const auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || j.value("status", "") != "success") return std::nan("");
  const auto& result = j["data"]["result"];
  if (!result.is_array() || result.size() != 1) return std::nan("");
  return std::stod(result[0]["value"][1].get<std::string>());
}

nlohmann::json run_loadgen(const std::string& loadgen_bin, const std::string& prefix,
                           const std::string& report_file, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {loadgen_bin, "--prefix",  prefix, "--json-out",
                                   report_file, "--hold-ms", "300"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto loadgen = ChildProcess::spawn(argv);
  const std::string out = loadgen.read_all(true);
  EXPECT_EQ(loadgen.wait(std::chrono::seconds(120)), 0) << out;
  std::ifstream in(report_file);
  nlohmann::json report = nlohmann::json::parse(in, nullptr, false);
  return report.is_object() ? report : nlohmann::json::object();
}

void add_report(const nlohmann::json& report, std::map<std::string, Pushed>& pushed) {
  ASSERT_TRUE(report.contains("series")) << report.dump();
  for (const auto& s : report.at("series")) {
    Pushed& p = pushed[s.at("name").get<std::string>()];
    p.kind = s.at("kind").get<std::string>();
    p.accepted += s.at("accepted").get<double>();
    p.sum += s.at("accepted_sum").get<double>();
  }
}

std::string prometheus_stem(const std::string& loadgen_name) {
  std::string stem = loadgen_name;
  for (auto& c : stem) {
    if (c == '.') c = '_';
  }
  return stem;
}

namespace {

std::string selector(const std::string& metric, const std::string& extra) {
  return extra.empty() ? metric : metric + "{" + extra + "}";
}

}  // namespace

bool store_holds_counts(const Peer& peer, const std::map<std::string, Pushed>& pushed,
                        double gauge_last, std::string& last, const std::string& extra) {
  last.clear();
  for (const auto& [name, p] : pushed) {
    const std::string base = prometheus_stem(name);
    std::string metric;
    double want = 0;
    if (p.kind == "counter") {
      metric = base + "_total";
      want = p.sum;
    } else if (p.kind == "gauge") {
      metric = base;
      want = gauge_last;
    } else {
      metric = (p.kind == "timing" ? base + "_seconds" : base) + "_count";
      want = p.accepted;
    }
    std::string raw;
    const double got = peer.query_one(selector(metric, extra), &raw);
    last += metric + "=" + std::to_string(got) + " (want " + std::to_string(want) + ") ";
    if (got != want) {
      last += "\nlast answer: " + raw;
      return false;
    }
  }
  return true;
}

void expect_sums(const Peer& peer, const std::map<std::string, Pushed>& pushed,
                 const std::string& extra) {
  for (const auto& [name, p] : pushed) {
    const std::string base = prometheus_stem(name);
    if (p.kind == "histogram") {
      EXPECT_EQ(std::llround(peer.query_one(selector(base + "_sum", extra)) * 10),
                std::llround(p.sum * 10))
          << name;
    } else if (p.kind == "timing") {
      EXPECT_EQ(std::llround(peer.query_one(selector(base + "_seconds_sum", extra)) * 1e4),
                std::llround(p.sum * 10))
          << name;
    }
  }
}

}  // namespace shmstats::testing
