// shmstats-loadgen's command line: the configuration of a run, its parsing (one clear line and
// exit code 2 on bad arguments) and the arguments the parent gives each worker.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shmstats::tools::loadgen {

inline constexpr int kExitBadArguments = 2;
inline constexpr int kMaxProcesses = 256;
inline constexpr int kMaxThreads = 256;
inline constexpr int kMaxSeries = 4096;  // the producer's default series table
inline constexpr int kShards = 4;

struct Config {
  int processes = 1;
  int threads = 1;
  double rate = 1000;     // events/s over all processes and threads; 0: as fast as possible
  double duration_s = 5;  // ignored when events_per_thread is set
  int series = 4;
  std::uint64_t events_per_thread = 0;  // per thread and series; 0: run for duration_s
  std::string kinds = "mixed";          // mixed (cycle by k) or one kind for every series
  std::string prefix{"shmstats"};
  std::uint32_t ring_capacity = 8192;
  std::uint32_t rings = 16;
  std::string overflow = "default";
  std::uint64_t hold_ms = 0;
  std::string json_out;
  bool worker = false;  // hidden: this process is one of the parent's workers
  int worker_index = 0;
  // Load scenarios (scenario.h): with a name, the parent also runs a collector and a receiver and
  // samples the whole pipeline once a second.
  std::string scenario;
  double scale = 1.0;  // multiplies the scenario's duration
  std::string out_dir = ".";
  std::string collector_bin;  // empty: next to this program, or in the build tree
  std::string recv_bin;
  std::string recv_jsonl = "/dev/null";
  std::vector<std::string> collector_args;  // passed to the collector as they are

  bool operator==(const Config&) const = default;
};

// What parse_args decided: run `config`, or exit with `exit_code` after printing `out` to stdout
// and `err` (one line) to stderr.
struct ParsedArgs {
  std::optional<int> exit_code;
  std::string out;
  std::string err;
  Config config;
};

// Parses the command line (argv[0] is the program). Bad arguments give exit code 2 and one line.
// With --events-per-thread and no --rate, the rate is 0 (unpaced).
ParsedArgs parse_args(int argc, const char* const* argv);

// The arguments after the program name that make a worker run `config` as worker `index`.
std::vector<std::string> worker_args(const Config& config, int index);

// The overflow strategies --overflow accepts, in the order of the producer's Overflow (and
// shm::Overflow) enumerators.
const std::vector<std::string>& overflow_names();
// The enumerator value of `name` in both Overflow enums; 0 (default) for an unknown name.
std::uint8_t overflow_code(const std::string& name);

}  // namespace shmstats::tools::loadgen
