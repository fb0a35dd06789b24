// shmstats-loadgen: parses arguments and runs as the parent (starts the worker processes, sums
// their reports, prints the JSON summary), as a load scenario (--scenario: also runs a collector
// and a receiver and measures the pipeline, tools/loadgen/scenario.h) or, with the hidden
// --worker flag, as one worker. See tools/loadgen/loadgen.h for the protocol between them.
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

#include "common/version.h"
#include "tools/loadgen/loadgen.h"
#include "tools/loadgen/scenario.h"

int main(int argc, char** argv) {
  namespace loadgen = shmstats::tools::loadgen;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--version") {
      std::puts(shmstats::common::version_text("shmstats-loadgen").c_str());
      return 0;
    }
  }
  try {
    const loadgen::ParsedArgs parsed = loadgen::parse_args(argc, argv);
    if (parsed.exit_code) {
      std::fputs(parsed.out.c_str(), stdout);
      if (!parsed.err.empty()) std::fprintf(stderr, "%s\n", parsed.err.c_str());
      return *parsed.exit_code;
    }
    if (parsed.config.worker) return loadgen::run_worker(parsed.config);
    if (!parsed.config.scenario.empty()) {
      return loadgen::run_scenario(parsed.config, "/proc/self/exe");
    }
    // The workers are this same binary, re-executed in worker mode.
    return loadgen::run_parent(parsed.config, "/proc/self/exe");
  } catch (const std::exception& e) {
    std::string what = e.what();
    for (auto& c : what) {
      if (c == '\n') c = ' ';
    }
    std::fprintf(stderr, "shmstats-loadgen: %s\n", what.c_str());
    return 1;
  }
}
