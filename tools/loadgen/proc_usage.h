// The CPU and memory of the collector, the receiver and the workers, sampled by a scenario.
#pragma once

#include <sys/types.h>

#include <optional>

namespace shmstats::tools::loadgen {

// CPU and memory of a process, from /proc/<pid>/stat and /proc/<pid>/status.
struct ProcUsage {
  double cpu_s = 0;  // user + system
  double rss_mb = 0;
  double rss_anon_mb = 0;   // private memory
  double rss_shmem_mb = 0;  // pages of shared mappings (the segments) this process touched
};
std::optional<ProcUsage> read_proc_usage(pid_t pid);

}  // namespace shmstats::tools::loadgen
