// shmstats-loadgen's library: argument parsing, the series it pushes, the worker (one producer
// process) and the parent that posix_spawns the workers, plus the exact accounting between them.
//
// Processes: the parent runs `<exe> --worker --worker-index i ...` P times (posix_spawn of
// /proc/self/exe), each with its stdout on a pipe. A worker creates its own shmstats::Client,
// registers the K series, runs T pushing threads and writes the lines of protocol.h to that pipe.
// The parent sums the reports (merge) and prints one JSON document (summary_json).
//
// One file per job:
//   arguments  the command line and the worker's arguments
//   series     the series pushed to, the values pushed, the per-series tallies
//   report     a worker's report, the parent's sum of them, the final JSON document
//   protocol   the worker's stdout lines and the stop flag
//   worker     worker mode: the pushing threads
//   parent     parent mode: spawning, reading and reaping the workers
// and, for --scenario, scenario.h (the run) over catalogue, daemon, segment_watch, metrics_page,
// proc_usage, sampler and output.
#pragma once

#include "tools/loadgen/arguments.h"
#include "tools/loadgen/parent.h"
#include "tools/loadgen/protocol.h"
#include "tools/loadgen/report.h"
#include "tools/loadgen/series.h"
#include "tools/loadgen/worker.h"
