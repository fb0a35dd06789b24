// Parent mode: runs the workers (posix_spawn of this program with --worker, each with its stdout on
// a pipe), reads their protocol lines, reaps them and sums their reports.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "shm/result.h"
#include "tools/loadgen/arguments.h"
#include "tools/loadgen/report.h"

namespace shmstats::tools::loadgen {

// What the parent sees of its running workers, about once a second.
struct WorkerProgress {
  std::uint64_t pushed = 0;   // events pushed so far, over every worker
  std::vector<pid_t> pids;    // workers still running
  bool all_reported = false;  // every worker has sent its result (they only hold segments now)
};

// Runs config.processes workers from `exe` until each has reported and exited, calling `on_tick`
// about once a second, and returns their merged summary. A failed worker is reported on stderr
// (one line each) and makes the result an error.
shm::Result<Summary> run_workers(const Config& config, const std::string& exe,
                                 const std::function<void(const WorkerProgress&)>& on_tick);

// Parent mode: runs config.processes workers from `exe` (normally /proc/self/exe), prints progress
// to stderr once a second and the summary to stdout (and config.json_out). Returns the exit code:
// 0, or 1 with one line per failed worker on stderr.
int run_parent(const Config& config, const std::string& exe);

}  // namespace shmstats::tools::loadgen
