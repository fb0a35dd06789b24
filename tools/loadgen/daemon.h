// The collector and the receiver a scenario runs: real binaries, found next to this program or in
// the build tree, started with their stdout on a pipe (for their "listening" lines) and their
// stderr in a log file of the output directory, and stopped with SIGTERM (drain and flush).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/process.h"
#include "shm/result.h"

namespace shmstats::tools::loadgen {

inline constexpr auto kDaemonStartTimeout = std::chrono::seconds(10);
inline constexpr auto kDaemonStopTimeout = std::chrono::seconds(15);

class Daemon {
 public:
  static shm::Result<std::unique_ptr<Daemon>> start(const std::string& what,
                                                    const std::vector<std::string>& argv,
                                                    const std::string& log_path);

  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  ~Daemon();  // SIGKILL and reap (bounded) a daemon still running

  pid_t pid() const noexcept { return process_.pid(); }
  const std::string& what() const noexcept { return what_; }
  const std::string& log_path() const noexcept { return log_path_; }

  // The port of the first stdout line "listening <kind> HOST:PORT", or an error naming the log.
  shm::Result<std::uint16_t> port_of(const std::string& kind);

  // SIGTERM, then waits; returns the exit status (128 + signal if killed), -1 on timeout.
  int stop(std::chrono::seconds timeout);

 private:
  Daemon(std::string what, common::Process process, std::string log_path)
      : what_(std::move(what)), process_(std::move(process)), log_path_(std::move(log_path)) {}

  std::string what_;
  common::Process process_;
  std::string log_path_;
};

// `given` if set; else `name` next to `exe` (installed side by side) or in the build tree
// (build/<preset>/`build_dir`/`name`), else next to `exe` for the error to name.
std::string find_binary(const std::string& given, const std::string& exe, const char* name,
                        const char* build_dir);

}  // namespace shmstats::tools::loadgen
