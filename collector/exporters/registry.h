// The output registry: every output type the collector knows, each declared by its own folder
// (collector/exporters/<type>/register.cpp) with its configuration keys and a factory.
//
// Adding an output: make collector/exporters/<type>/ with the exporter and a register.cpp that
// defines `const ExporterType& shmstats::collector::outputs::<type>()`, then add one line
// `SHMSTATS_OUTPUT(<type>)` to collector/exporters/outputs.inc. The build picks up the folder's
// .cpp files; flags (--<type>, --<type>-<key>), TOML ([[exporter]] type = "<type>", and
// <type>_<key> at the top level), environment variables (SHMSTATS_COLLECTOR_<TYPE>_<KEY>), --help
// and the /metrics samples of the exporter all come from the declaration.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "collector/exporter.h"
#include "collector/options.h"
#include "shm/result.h"

namespace shmstats::collector {

// What every output may use besides its own keys.
struct ExporterContext {
  std::string instance_name;       // unique among the configured outputs: the exporter= label
  std::uint64_t sender_id = 0;     // this collector's identity on the wire
  std::uint64_t sender_epoch = 0;  // changes on every collector start
  std::string host;                // this host's name
};

struct ExporterType {
  using Factory = std::function<shm::Result<std::unique_ptr<Exporter>>(const OptionValues&,
                                                                       const ExporterContext&)>;
  std::string type;       // "udp": TOML type, flag and variable prefix
  std::string summary;    // one line for --help
  std::string short_key;  // the key `--<type> VALUE` (and TOML/env `<type>`) sets; may repeat
  std::vector<OptionSpec> options;  // the type's own keys (the common ones are added)
  Factory create;
};

// Keys every output has, whose defaults are the global keys of the same meaning:
//   queue             batches the output may queue before it drops   (global exporter_queue)
//   breaker_failures  consecutive failures that open its breaker     (global breaker_failures)
//   breaker_open      how long its breaker stays open                (global breaker_open)
// and `name`, the instance name (default: the type, then <type>-2, <type>-3, ...).
inline constexpr const char* kCommonQueueKey = "queue";
inline constexpr const char* kCommonBreakerFailuresKey = "breaker_failures";
inline constexpr const char* kCommonBreakerOpenKey = "breaker_open";
inline constexpr const char* kCommonNameKey = "name";
const std::vector<OptionSpec>& common_output_options();

// Every registered type, in registration order (outputs.inc).
const std::vector<const ExporterType*>& exporter_types();
const ExporterType* find_exporter_type(std::string_view type);
// The spec of `key` for outputs of type `type` (its own keys, then the common ones), or null.
const OptionSpec* find_output_option(const ExporterType& type, std::string_view key);

namespace outputs {
#define SHMSTATS_OUTPUT(type) const ExporterType& type();
#include "collector/exporters/outputs.inc"
#undef SHMSTATS_OUTPUT
}  // namespace outputs

}  // namespace shmstats::collector
