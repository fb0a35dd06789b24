// Test support: unique segment prefixes with a guard that unlinks them, bounded waits that report
// the last state seen, and real child processes.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "common/process.h"

namespace shmstats::testing {

// A segment prefix no other test (or run) uses: "t<pid>_<counter>_<test name>", cut to fit.
std::string unique_prefix();

// Unlinks every segment whose name starts with "<prefix>." when it goes out of scope, so a failed
// test leaves nothing behind in /dev/shm.
class SegmentGuard {
 public:
  explicit SegmentGuard(std::string prefix) : prefix_(std::move(prefix)) {}
  SegmentGuard(const SegmentGuard&) = delete;
  SegmentGuard& operator=(const SegmentGuard&) = delete;
  ~SegmentGuard();
  const std::string& prefix() const { return prefix_; }

 private:
  std::string prefix_;
};

// Polls `done` until it returns true or `timeout` passes; on timeout the failure carries
// `describe()`, the last state seen.
::testing::AssertionResult wait_until(const std::function<bool()>& done,
                                      std::chrono::milliseconds timeout,
                                      const std::function<std::string()>& describe);

// A real child process running `argv` (argv[0] a path), with stdout captured to a pipe. It
// inherits this process's environment; each "NAME=value" of `extra_env` replaces NAME there.
// With `stderr_path`, its stderr is appended to that file (created if need be).
class ChildProcess {
 public:
  // Throws std::runtime_error when the child cannot be started.
  static ChildProcess spawn(const std::vector<std::string>& argv,
                            const std::vector<std::string>& extra_env = {},
                            const std::string& stderr_path = "");
  ChildProcess(ChildProcess&& other) noexcept = default;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ~ChildProcess() = default;  // the Process kills and reaps a child still running

  pid_t pid() const { return process_.pid(); }
  // Reads stdout lines until one starts with `prefix`; returns the rest of it, or "" on
  // timeout/EOF.
  std::string read_line_starting(const std::string& prefix, std::chrono::milliseconds timeout);
  // Everything the child wrote to stdout so far (blocks until EOF if `until_eof`).
  std::string read_all(bool until_eof);
  void kill(int sig);
  // Waits for exit; returns the exit status (or 128+signal), or -1 on timeout.
  int wait(std::chrono::milliseconds timeout);

 private:
  explicit ChildProcess(common::Process process) : process_(std::move(process)) {}
  common::Process process_;
};

// The number after "name=" in a "k=v k=v" line (the helper's report lines), or all ones if absent.
std::uint64_t line_field(const std::string& line, const std::string& name);

// The whole of the file at `path` ("" if it cannot be read).
std::string file_text(const std::string& path);

// Polls the file at `path` until it contains `needle` (a child's log line is written after the
// counters it follows, so a test that saw the counter change waits for the line too).
::testing::AssertionResult file_gets(const std::string& path, const std::string& needle,
                                     std::chrono::milliseconds timeout);

// Path of the helper binary (set by CMake as SHMSTATS_TEST_HELPER).
std::string helper_path();

// A fresh directory under /tmp, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A UDP port on 127.0.0.1 that nothing listens on: bound, read back and closed again.
std::uint16_t closed_udp_port();
// A TCP port on 127.0.0.1 that was free a moment ago (bound, read back, closed), for a peer that
// must be told its port; 0 if none could be had.
std::uint16_t free_tcp_port();

}  // namespace shmstats::testing
