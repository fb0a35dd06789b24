// Fault injection for the fault tests (tests/e2e/fault_test.cpp, issue #5). Off unless the
// collector's environment asks for a fault; read once at start-up, and nothing here is on the
// drain path.
//
//   SHMSTATS_COLLECTOR_FAULT_HANG_EXPORTER=<exporter>   (an output's instance name: udp, ...)
//       That exporter's send() never returns, like a destination that hangs for ever. Its runner
//       keeps its queue full and drops every further batch, counted as
//       shmstats_exporter_queue_dropped_{batches,events}_total{exporter="<exporter>"}; the other
//       exporters and the drain keep going; on SIGTERM the collector gives up on it after
//       --shutdown-timeout and exits 0. Not a configuration key: it exists only to prove those
//       guarantees with a real collector process.
//
//   SHMSTATS_COLLECTOR_FAULT_CORRUPT_REQUESTS=<output>   (an HTTP output's instance name)
//       That output sends request bodies that are not what their headers say (remote_write: not
//       snappy), so a real server answers 400: proves with a real Prometheus that a 4xx is not
//       retried, is counted as rejected, and its body's first line is logged.
#pragma once

#include <memory>
#include <string>

#include "collector/exporter.h"

namespace shmstats::collector {

inline constexpr const char* kFaultHangExporterEnv = "SHMSTATS_COLLECTOR_FAULT_HANG_EXPORTER";
inline constexpr const char* kFaultCorruptRequestsEnv = "SHMSTATS_COLLECTOR_FAULT_CORRUPT_REQUESTS";

struct FaultOptions {
  std::string hang_exporter;     // name of the exporter whose send() hangs; empty: none
  std::string corrupt_requests;  // name of the HTTP output whose bodies are corrupt; empty: none

  static FaultOptions from_environment();
  bool any() const noexcept { return !hang_exporter.empty() || !corrupt_requests.empty(); }
};

// `exporter` itself, or wrapped in the fault that `faults` asks for it.
std::unique_ptr<Exporter> with_faults(std::unique_ptr<Exporter> exporter,
                                      const FaultOptions& faults);

}  // namespace shmstats::collector
