// Collector configuration. Sources, highest precedence first:
//   1. command-line flags            --udp 127.0.0.1:9125
//   2. the TOML file of --config     udp = "127.0.0.1:9125"
//   3. environment variables         SHMSTATS_COLLECTOR_UDP=127.0.0.1:9125
//   4. built-in defaults
// Every key has the same name in all three (flag --flush-interval, TOML flush_interval, variable
// SHMSTATS_COLLECTOR_FLUSH_INTERVAL). An invalid value or an unknown TOML key stops start-up with
// a message naming the key, where it came from, and the value.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shm/result.h"

namespace shmstats::collector {

struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};

struct Config {
  std::string udp;                      // native protobuf output HOST:PORT; empty: off
  std::string dogstatsd;                // HOST:PORT or unix:///path; empty: off
  std::string http = "127.0.0.1:9102";  // self-telemetry; empty: off
  std::chrono::milliseconds flush_interval{5};
  std::size_t batch_size = 4096;
  std::string shm_prefix = "shmstats";
  std::string log_level = "info";
  std::size_t max_datagram_bytes = 1472;
  std::size_t dogstatsd_max_bytes = 1432;
  bool dogstatsd_multi_value = false;
  bool dogstatsd_service_tag = true;
  std::uint32_t breaker_failures = 5;
  std::chrono::milliseconds breaker_open{2000};
  std::size_t exporter_queue = 64;  // batches per exporter
  std::chrono::milliseconds shutdown_timeout{5000};
  std::vector<uid_t> allowed_uids;  // empty: the collector's own uid
  bool allow_group_writable = false;
  std::uint64_t sender_id = 0;  // 0: derived from the host name
  std::string host;             // empty: gethostname()
  double health_latency_p99_seconds = 1.0;
  std::uint64_t max_drain_rate = 0;  // events/s; 0: unlimited
};

// Parses argv (and the TOML file and environment it points to). `help` receives the --help
// text when asked (then the result is an error with an empty message and code kNotFound).
shm::Result<Config> load_config(int argc, const char* const* argv, std::string& help);

// Applies the keys of a TOML document over `config`, as load_config does with the --config file;
// `origin` names the document in errors. The entry point of the configuration fuzzer.
shm::Result<void> apply_toml(std::string_view text, std::string_view origin, Config& config);

// "HOST:PORT" or "[v6]:PORT"; port 0 allowed (pick any).
shm::Result<HostPort> parse_endpoint(const std::string& text);

// "250ms", "2s", "1m" or a bare number of milliseconds.
shm::Result<std::chrono::milliseconds> parse_duration(const std::string& text);

}  // namespace shmstats::collector
