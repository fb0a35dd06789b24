// Load scenarios: shmstats-loadgen --scenario NAME runs the whole pipeline on this host and
// measures it once a second.
//
//   workers (P processes x T threads, paced)  --/dev/shm-->  shmstats-collector  --UDP-->
//   shmstats-recv (JSON Lines to --recv-jsonl, /dev/null by default)
//
// The parent starts the receiver and the collector (real binaries, on 127.0.0.1 with ports picked
// by the kernel and read back from their "listening" lines), then the workers, and once a second
// records one Sample from three independent sources:
//   - the producers' segments, mapped read-only here: pushes, folds, drops by reason, ring fill;
//   - the receiver's and the collector's /metrics: delivered events and folded values, datagrams,
//     the receiver's event-latency histogram (event timestamp to decode), exporter drops;
//   - /proc: CPU and RSS of the collector, the receiver and the workers.
// When the workers are done it waits (bounded) until the collector has reclaimed every segment
// and the receiver's counts are still, stops the collector (SIGTERM: drain and flush) and the
// receiver, and writes <out>/<name>.json (config, samples, totals and the ledger),
// <name>.tsv and <name>.gp, and <name>.png when gnuplot is installed.
//
// The ledger: every push is either refused by the producer (counted by reason in its segment) or
// accepted (entered a ring, or folded into exact totals). Accepted values reach the receiver as
// events or inside aggregates, or are dropped by the collector (counted) or lost on the network
// (visible as the receiver's lost datagrams). `unaccounted` is what none of these explains.
#pragma once

#include <string>

#include "tools/loadgen/arguments.h"
#include "tools/loadgen/catalogue.h"

namespace shmstats::tools::loadgen {

// Runs config.scenario (its fields already applied by parse_args). `exe` is this program, used
// for the workers and to find the collector and receiver next to it. Returns the exit code: 0
// when the run completed and its files were written, 1 otherwise (one line on stderr).
int run_scenario(const Config& config, const std::string& exe);

}  // namespace shmstats::tools::loadgen
