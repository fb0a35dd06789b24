// Collector configuration. Sources, highest precedence first:
//   1. command-line flags            --udp 127.0.0.1:9125
//   2. the TOML file of --config     udp = "127.0.0.1:9125"
//   3. environment variables         SHMSTATS_COLLECTOR_UDP=127.0.0.1:9125
//   4. built-in defaults
// Every global key has the same name in all three (flag --flush-interval, TOML flush_interval,
// variable SHMSTATS_COLLECTOR_FLUSH_INTERVAL). An invalid value or an unknown TOML key stops
// start-up with a message naming the key, where it came from, and the value.
//
// Outputs (collector/exporters/registry.h). Each registered type <type> has:
//   --<type> VALUE (repeatable), TOML <type> = "VALUE" or ["A", "B"], SHMSTATS_COLLECTOR_<TYPE>
//       one output of that type per value (its short key, e.g. the destination); the highest
//       source that names any replaces the lower ones' list; an empty value means none
//   --<type>-<key>, TOML <type>_<key>, SHMSTATS_COLLECTOR_<TYPE>_<KEY>
//       that key for every output of the type (same precedence as the global keys)
//   [[exporter]] tables in the TOML file: type = "<type>", any of its keys; one output each,
//       so a type can appear several times with different settings. A key set in a table wins
//       for that output over the type-wide value of any source.
// The global breaker_failures, breaker_open and exporter_queue are the defaults of every output's
// breaker_failures, breaker_open and queue. Legacy spellings kept: max_datagram_bytes (the udp
// type's max_datagram_bytes).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "collector/options.h"
#include "shm/result.h"

namespace shmstats::collector {

// One configured output: its type, unique instance name and every key's value.
struct OutputConfig {
  std::string type;
  std::string name;
  OptionValues values;
  std::string origin;  // where it was declared, for messages
};

// Output settings as the sources gave them, before they become OutputConfigs.
struct OutputSettings {
  struct Setting {
    std::string value;
    std::string origin;
  };
  struct List {
    std::vector<std::string> values;
    std::string origin;
  };
  struct Table {
    std::string type;
    std::map<std::string, std::string> values;
    std::string origin;
  };
  std::map<std::string, List> short_values;                         // by type
  std::map<std::string, std::map<std::string, Setting>> type_wide;  // by type, then key
  std::vector<Table> tables;
};

struct Config {
  std::string http = "127.0.0.1:9102";  // self-telemetry; empty: off
  std::chrono::milliseconds flush_interval{5};
  std::size_t batch_size = 4096;
  std::string shm_prefix = "shmstats";
  std::string log_level = "info";
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

  OutputSettings output_settings;
  std::vector<OutputConfig> outputs;  // made from output_settings by resolve_outputs
};

// Parses argv (and the TOML file and environment it points to). `help` receives the --help
// text when asked (then the result is an error with an empty message and code kNotFound).
shm::Result<Config> load_config(int argc, const char* const* argv, std::string& help);

// Applies the keys of a TOML document over `config`, as load_config does with the --config file,
// and resolves the outputs again; `origin` names the document in errors. The entry point of the
// configuration fuzzer.
shm::Result<void> apply_toml(std::string_view text, std::string_view origin, Config& config);

// Turns config.output_settings into config.outputs: defaults, then the global keys, then the
// type-wide values, then each table's or short value's own. Errors name the output and the key.
shm::Result<void> resolve_outputs(Config& config);

// The global keys, for --print-config (collector/config_print.h): each key, its default as the
// text a flag, TOML value or variable would give, and its --help line. In key order.
struct GlobalKeyDoc {
  std::string key;
  std::string default_value;
  std::string help;
};
std::vector<GlobalKeyDoc> global_key_docs();

}  // namespace shmstats::collector
