#include "tools/loadgen/arguments.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <sstream>

#include "shm/segment.h"
#include "tools/loadgen/catalogue.h"
#include "tools/loadgen/protocol.h"

namespace shmstats::tools::loadgen {
namespace {

constexpr std::uint64_t kMaxEventsPerThread = 1'000'000'000'000ULL;
constexpr std::uint64_t kMaxHoldMs = 3'600'000;

shm::SegmentOptions segment_options(const Config& c) {
  shm::SegmentOptions o;
  o.service = "loadgen";
  o.ring_count = c.rings;
  o.ring_capacity = c.ring_capacity;
  o.default_overflow = static_cast<shm::Overflow>(overflow_code(c.overflow));
  o.prefix = c.prefix;
  return o;
}

std::string format_number(double v) { return fmt::format("{}", v); }

}  // namespace

const std::vector<std::string>& overflow_names() {
  static const std::vector<std::string> names = {"default",     "fold",     "drop_newest",
                                                 "drop_oldest", "priority", "sampled"};
  return names;
}

std::uint8_t overflow_code(const std::string& name) {
  const auto& names = overflow_names();
  const auto at = std::find(names.begin(), names.end(), name);
  return at == names.end() ? 0 : static_cast<std::uint8_t>(at - names.begin());
}

ParsedArgs parse_args(int argc, const char* const* argv) {
  ParsedArgs parsed;
  Config& c = parsed.config;
  CLI::App app{
      "Starts P producer processes with T threads each, pushing about R events/s in total over K "
      "series, and prints as JSON exactly what was pushed, accepted and refused per series and "
      "what the producers dropped by reason.",
      "shmstats-loadgen"};
  app.add_option("--processes", c.processes, "Producer processes (1 to 256)")
      ->type_name("P")
      ->check(CLI::Range(1, kMaxProcesses).description(""));
  app.add_option("--threads", c.threads, "Pushing threads per process (1 to 256)")
      ->type_name("T")
      ->check(CLI::Range(1, kMaxThreads).description(""));
  auto* rate =
      app.add_option("--rate", c.rate, "Events per second over all threads; 0: as fast as possible")
          ->type_name("R")
          ->check(CLI::Range(0.0, 1e9).description(""));
  auto* duration = app.add_option("--duration", c.duration_s, "Seconds to push (may be fractional)")
                       ->type_name("S")
                       ->check(CLI::Range(0.001, 86400.0).description(""));
  app.add_option("--series", c.series, "Series pushed to, loadgen.s0 .. loadgen.s<K-1> (1 to 4096)")
      ->type_name("K")
      ->check(CLI::Range(1, kMaxSeries).description(""));
  app.add_option("--events-per-thread", c.events_per_thread,
                 "Instead of --duration: each thread pushes exactly N events to each series, "
                 "round-robin (unpaced unless --rate is given)")
      ->type_name("N")
      ->check(CLI::Range(std::uint64_t{1}, kMaxEventsPerThread).description(""))
      ->excludes(duration);
  app.add_option("--kinds", c.kinds,
                 "mixed: counter, timing, histogram, gauge by k % 4; or one kind for all")
      ->check(CLI::IsMember({"mixed", "counter", "timing", "histogram", "gauge"}));
  app.add_option("--prefix", c.prefix, "Segment name prefix (default shmstats)");
  app.add_option("--ring-capacity", c.ring_capacity, "Events per ring, a power of two");
  app.add_option("--rings", c.rings, "Rings per segment (threads beyond them fold)");
  app.add_option("--overflow", c.overflow, "Strategy when a ring is full")
      ->check(CLI::IsMember(overflow_names()));
  app.add_option("--hold-ms", c.hold_ms,
                 "Keep each segment open this long after pushing (for a collector to drain)")
      ->type_name("MS")
      ->check(CLI::Range(std::uint64_t{0}, kMaxHoldMs).description(""));
  app.add_option("--json-out", c.json_out, "Also write the final JSON to FILE")->type_name("FILE");
  auto* scenario =
      app.add_option("--scenario", c.scenario,
                     "Run a load scenario against a real collector and receiver: baseline, high, "
                     "stress, burst or segments (see --help of each in README.md)")
          ->check(CLI::IsMember(scenario_names()));
  app.add_option("--scale", c.scale, "With --scenario: multiply its duration by F (e.g. 0.05)")
      ->type_name("F")
      ->check(CLI::Range(0.001, 100.0).description(""))
      ->needs(scenario);
  app.add_option("--out-dir", c.out_dir,
                 "With --scenario: where <name>.json, <name>.tsv, <name>.gp and <name>.png go")
      ->type_name("DIR")
      ->needs(scenario);
  app.add_option("--collector", c.collector_bin, "With --scenario: the shmstats-collector binary")
      ->type_name("PATH")
      ->needs(scenario);
  app.add_option("--recv", c.recv_bin, "With --scenario: the shmstats-recv binary")
      ->type_name("PATH")
      ->needs(scenario);
  app.add_option("--recv-jsonl", c.recv_jsonl,
                 "With --scenario: the receiver's JSON Lines output (default /dev/null)")
      ->type_name("FILE")
      ->needs(scenario);
  app.add_option("--collector-arg", c.collector_args,
                 "With --scenario: one more argument for the collector (repeatable)")
      ->type_name("ARG")
      ->allow_extra_args(false)
      ->needs(scenario);
  app.add_flag("--worker", c.worker)->group("");
  app.add_option("--worker-index", c.worker_index)->group("")->check(CLI::NonNegativeNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help
    std::ostringstream out;
    std::ostringstream err;
    parsed.exit_code = app.exit(e, out, err);
    parsed.out = out.str();
    return parsed;
  } catch (const CLI::ParseError& e) {
    parsed.exit_code = kExitBadArguments;
    parsed.err = fmt::format("shmstats-loadgen: {} (see --help)", one_line(e.what()));
    return parsed;
  }
  if (auto checked = shm::check_options(segment_options(c)); !checked) {
    parsed.exit_code = kExitBadArguments;
    parsed.err = fmt::format("shmstats-loadgen: {}", one_line(checked.error().message));
    return parsed;
  }
  if (c.events_per_thread > 0 && rate->count() == 0) c.rate = 0;
  if (!c.scenario.empty()) {
    if (c.events_per_thread > 0) {
      parsed.exit_code = kExitBadArguments;
      parsed.err = "shmstats-loadgen: --scenario runs for a duration; drop --events-per-thread";
      return parsed;
    }
    // The scenario sets what the command line did not.
    const ScenarioSpec& spec = *find_scenario(c.scenario);
    const auto given = [&app](const char* name) { return app.get_option(name)->count() > 0; };
    if (!given("--processes")) c.processes = spec.processes;
    if (!given("--threads")) c.threads = spec.threads;
    if (!given("--rate")) c.rate = spec.rate;
    if (!given("--series")) c.series = spec.series;
    if (!given("--duration")) c.duration_s = spec.duration_s;
    c.duration_s = std::max(c.duration_s * c.scale, 0.2);
  }
  return parsed;
}

std::vector<std::string> worker_args(const Config& c, int index) {
  std::vector<std::string> args = {"--worker",
                                   "--worker-index",
                                   std::to_string(index),
                                   "--processes",
                                   std::to_string(c.processes),
                                   "--threads",
                                   std::to_string(c.threads),
                                   "--rate",
                                   format_number(c.rate),
                                   "--series",
                                   std::to_string(c.series),
                                   "--kinds",
                                   c.kinds,
                                   "--prefix",
                                   c.prefix,
                                   "--ring-capacity",
                                   std::to_string(c.ring_capacity),
                                   "--rings",
                                   std::to_string(c.rings),
                                   "--overflow",
                                   c.overflow,
                                   "--hold-ms",
                                   std::to_string(c.hold_ms)};
  if (c.events_per_thread > 0) {
    args.insert(args.end(), {"--events-per-thread", std::to_string(c.events_per_thread)});
  } else {
    args.insert(args.end(), {"--duration", format_number(c.duration_s)});
  }
  return args;
}

}  // namespace shmstats::tools::loadgen
