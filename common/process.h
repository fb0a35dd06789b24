// Child processes: the one posix_spawn launcher of the tools and the tests. A Process runs a
// program with argv and an environment (inherited, with overrides), optionally with its stdout
// and/or stderr on a pipe that this side reads line by line, and is waited for with a bounded
// deadline or killed. Whatever is left running when the Process goes away is killed and reaped,
// so no child outlives its owner's scope and none is left a zombie.
//
// Concurrency: a Process is used by one thread at a time. Signals sent with signal() go to the
// child only; the pipes are close-on-exec, so other children spawned meanwhile do not hold them.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <optional>
#include <string>
#include <vector>

#include "shm/result.h"

namespace shmstats::common {

// Where a child's stdout or stderr goes.
struct Redirect {
  enum class Kind { kInherit, kPipe, kFile };
  Kind kind = Kind::kInherit;
  std::string path;     // kFile: opened (created 0644 if need be) in the child
  bool append = false;  // kFile: append instead of truncating

  static Redirect inherit() { return {}; }
  static Redirect pipe() { return {Kind::kPipe, {}, false}; }
  static Redirect file(std::string path, bool append = false) {
    return {Kind::kFile, std::move(path), append};
  }
};

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is the program, unless `program` is set
  std::string program;            // the file to run when it is not argv[0] (/proc/self/exe)
  bool search_path = false;       // look the program up in PATH (posix_spawnp)
  // "NAME=value" entries: each replaces NAME in the inherited environment, or is added to it.
  std::vector<std::string> env_overrides;
  std::string working_dir;  // empty: this process's
  Redirect out;
  Redirect err;
};

// How a child ended, as wait4 reported it, with the CPU it used.
struct ExitStatus {
  int wait_status = 0;
  double cpu_s = 0;  // user + system CPU seconds of the child

  bool exited() const noexcept;
  bool signaled() const noexcept;
  int exit_code() const noexcept;    // when exited()
  int term_signal() const noexcept;  // when signaled()
  // The exit code, 128 + the signal when killed, -1 otherwise (the shell's convention).
  int code() const noexcept;
  bool success() const noexcept { return exited() && exit_code() == 0; }
  // "exited with status 3", "killed by signal 9".
  std::string describe() const;
};

class Process {
 public:
  enum class Stream { kOut, kErr };

  // Starts the child. Fails, naming the program and the reason, when a pipe cannot be made or the
  // program cannot be started: Errc::kNotFound when it does not exist (or is not in PATH),
  // Errc::kSystem otherwise (not executable, bad working directory, ...).
  static shm::Result<Process> spawn(const SpawnOptions& options);

  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();  // SIGKILL and reap a child still running; close the pipes

  pid_t pid() const noexcept { return pid_; }
  // The read end of a captured stream, for poll() over several children; -1 when not captured
  // or once closed.
  int fd(Stream stream) const noexcept;
  bool open(Stream stream) const noexcept { return fd(stream) >= 0; }

  // One read of what the pipe holds (blocks if it holds nothing), appended to the stream's buffer.
  // False at end of file or on a read error; the pipe is then closed.
  bool read_available(Stream stream);
  // The next complete line already buffered (without its '\n'), if any.
  std::optional<std::string> take_line(Stream stream);
  // The next line, reading until `timeout` passes; nullopt on timeout or end of file.
  std::optional<std::string> read_line(Stream stream, std::chrono::milliseconds timeout);
  // Everything buffered plus what the pipe gives until end of file, or until it stays silent for
  // `idle_timeout` (0: only what is there now). The buffer is emptied.
  std::string read_all(Stream stream, std::chrono::milliseconds idle_timeout);
  void close(Stream stream) noexcept;

  // Sends `sig` to a child not yet reaped; false if it was reaped already or kill() failed.
  bool signal(int sig) noexcept;
  // Reaps the child if it has ended; nullopt while it runs.
  std::optional<ExitStatus> try_wait();
  // Waits up to `timeout` for the child to end; nullopt if it is still running then.
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);
  // Waits for the child to end, however long it takes.
  ExitStatus wait();
  // Waits up to `deadline` for the child to end; then sends `sig` (SIGKILL by default) and waits
  // for it to end.
  ExitStatus wait_or_kill(std::chrono::milliseconds deadline, int sig = SIGKILL);
  // The status once reaped.
  const std::optional<ExitStatus>& exit_status() const noexcept { return exit_; }

 private:
  Process(pid_t pid, int out_fd, int err_fd) : pid_(pid), fds_{out_fd, err_fd} {}
  std::optional<ExitStatus> reap(int options);
  void release() noexcept;

  pid_t pid_ = -1;
  int fds_[2] = {-1, -1};
  std::string buffered_[2];
  std::optional<ExitStatus> exit_;
};

}  // namespace shmstats::common
