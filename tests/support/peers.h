// The real backends of ../shared/peers (Prometheus, VictoriaMetrics) for end-to-end tests:
// started by their scripts on a free loopback port with their data under a test's TempDir (so
// nothing is left in /tmp), stopped by pid at the end; and the producers' side of an exact
// comparison (loadgen runs and their per-series totals).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/support.h"

namespace shmstats::testing {

class Peer {
 public:
  // `script` is start-prometheus.sh or start-victoria-metrics.sh; `target` a scrape target or
  // "-"; `env` extra variables for the script (PROM_WEB_CONFIG, ...). A failure to start is a
  // test failure (the peers are required; CI installs them).
  Peer(const std::string& script, const std::string& target, const TempDir& dir,
       const std::string& name, const std::vector<std::string>& env = {}, std::uint16_t port = 0);
  ~Peer();
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;
  bool started() const { return started_; }
  std::uint16_t port() const { return port_; }
  std::string log() const;

  // GET /api/v1/query?query=<promql> (URL-encoded here); the value of its one result, or NaN if
  // there is not exactly one. `raw` receives the answer.
  double query_one(const std::string& promql, std::string* raw = nullptr) const;
  nlohmann::json query(const std::string& promql) const;

 private:
  std::string stop_script_;
  std::string pidfile_;
  std::string log_path_;
  std::uint16_t port_ = 0;
  bool started_ = false;
};

std::string url_encode(const std::string& text);

// Runs loadgen (SHMSTATS_LOADGEN_BIN) to its end with `args` and returns its JSON report (an empty
// object on failure, with a test failure).
nlohmann::json run_loadgen(const std::string& loadgen_bin, const std::string& prefix,
                           const std::string& report_file, const std::vector<std::string>& args);

// What loadgen producers pushed per series name: kind, accepted events and their sum.
struct Pushed {
  std::string kind;
  double accepted = 0;
  double sum = 0;
};
void add_report(const nlohmann::json& report, std::map<std::string, Pushed>& pushed);

// "loadgen.s3" -> "loadgen_s3": the Prometheus name stem of a loadgen series (README's mapping).
std::string prometheus_stem(const std::string& loadgen_name);

// Whether the store behind `peer` holds, for every series of `pushed`, exactly the producers'
// counter total, histogram or timing count, and (gauges) `gauge_last`; `last` receives what was
// read. `extra_selector` (e.g. `host="a"`) narrows every query.
bool store_holds_counts(const Peer& peer, const std::map<std::string, Pushed>& pushed,
                        double gauge_last, std::string& last,
                        const std::string& extra_selector = "");
// Expects the histogram and timing sums to match: to the 0.1 the producers push (timings in
// seconds: to the 0.1 ms), as sums of tenths in doubles depend on the order of addition.
void expect_sums(const Peer& peer, const std::map<std::string, Pushed>& pushed,
                 const std::string& extra_selector = "");

}  // namespace shmstats::testing
