// Support for end-to-end tests that run the whole pipeline as real processes on 127.0.0.1: the
// receiver and the collector started from their binaries with the ports they picked read back,
// their /metrics pages read over plain HTTP/1.0, UDP ports with nothing (or a test socket) behind
// them, and a process's resident memory.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tests/support/support.h"

namespace shmstats::testing {

// The body of GET http://127.0.0.1:<port><path>, or "" if no complete response came within
// `timeout` or, unless `status` is given to receive it, the status was not 200.
std::string http_get(std::uint16_t port, const std::string& path,
                     std::chrono::milliseconds timeout = std::chrono::milliseconds(5000),
                     int* status = nullptr);

// The value text of sample `name{labels}` on a Prometheus text page (`labels` as written between
// the braces, "" for none), or "" if absent.
std::string prom_text(const std::string& page, const std::string& name,
                      const std::string& labels = "");
// The same as a number; -1 if absent.
double prom_value(const std::string& page, const std::string& name, const std::string& labels = "");

// A UDP socket bound to 127.0.0.1:0 that counts the datagrams sent to it.
class UdpSink {
 public:
  UdpSink();
  UdpSink(const UdpSink&) = delete;
  UdpSink& operator=(const UdpSink&) = delete;
  ~UdpSink();
  std::uint16_t port() const { return port_; }
  // Reads whatever is waiting without blocking; returns the datagrams received so far.
  std::uint64_t datagrams();

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::uint64_t datagrams_ = 0;
};

// Resident memory of `pid` (VmRSS in /proc/<pid>/status) in KiB, 0 if unknown.
std::uint64_t rss_kib(pid_t pid);

// A running shmstats-recv or shmstats-collector with the HTTP port it announced.
struct PipelineProcess {
  ChildProcess process;
  std::uint16_t udp_port = 0;  // the receiver's
  std::uint16_t http_port = 0;
  std::string metrics() const { return http_get(http_port, "/metrics"); }
  double metric(const std::string& name, const std::string& labels = "") const {
    return prom_value(metrics(), name, labels);
  }
};

// shmstats-recv at `recv_bin` writing JSON Lines to `jsonl`, listening on 127.0.0.1:<udp_port>
// (0: a port the kernel picks). udp_port/http_port stay 0 if it did not announce them.
PipelineProcess start_receiver(const std::string& recv_bin, const std::string& jsonl,
                               std::uint16_t udp_port = 0);

// shmstats-collector at `collector_bin` for segments named <prefix>.*, its HTTP endpoint on a
// port the kernel picks, logging warnings only; `args` and `env` are added as they are.
PipelineProcess start_collector(const std::string& collector_bin, const std::string& prefix,
                                const std::vector<std::string>& args,
                                const std::vector<std::string>& env = {});

// A producer in the helper's pace mode (shmstats-test-helper pace: each thread pushes 0, 1, 2, ...
// into counter "seq" tagged thread:<t> and reports what it pushed) for service `service`; `extra`
// is added to its arguments as given.
ChildProcess start_pace(const std::string& prefix, const std::string& service, int threads,
                        int rate_per_thread, const std::vector<std::string>& extra);

// What one pace thread reports it pushed.
struct ThreadTally {
  std::uint64_t pushes = 0;
  std::uint64_t accepted = 0;
  std::uint64_t refused = 0;
};

// A pace producer's final report.
struct PaceReport {
  std::map<std::string, ThreadTally> threads;  // by thread tag
  std::uint64_t accepted = 0;
  std::uint64_t refused = 0;
  std::uint64_t elapsed_us = 0;
  std::uint64_t max_lag_us = 0;
  std::uint64_t max_push_ns = 0;
  bool complete = false;
};

// Reads the report of a pace producer that was asked to stop (or runs a fixed count), waiting at
// most `timeout` for each line.
PaceReport read_report(ChildProcess& producer, int threads, std::chrono::milliseconds timeout);

}  // namespace shmstats::testing
