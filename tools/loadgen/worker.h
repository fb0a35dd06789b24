// Worker mode: one producer process of a run. It creates its own shmstats::Client, registers the
// K series, runs T pushing threads (paced to its share of the rate, or unpaced) and writes the
// protocol lines of protocol.h to stdout, ending with its WorkerReport.
#pragma once

#include "tools/loadgen/arguments.h"

namespace shmstats::tools::loadgen {

// Worker mode: pushes as configured and writes the protocol lines to stdout. Returns the exit code.
int run_worker(const Config& config);

}  // namespace shmstats::tools::loadgen
