#include "common/process.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

extern char** environ;

namespace shmstats::common {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kReadChunk = 8192;
// wait_for polls: from 1 ms, doubling up to 20 ms, so a quick child is reaped quickly and a slow
// one costs few wake-ups.
constexpr auto kFirstWaitPoll = std::chrono::milliseconds(1);
constexpr auto kMaxWaitPoll = std::chrono::milliseconds(20);

std::size_t index_of(Process::Stream stream) noexcept {
  return stream == Process::Stream::kOut ? 0 : 1;
}

shm::Error system_error(const std::string& what, int err) {
  return shm::Error{shm::Errc::kSystem, fmt::format("{}: {}", what, std::strerror(err))};
}

// The inherited environment with each override's NAME replaced, then the overrides.
std::vector<std::string> environment_with(const std::vector<std::string>& overrides) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view inherited(*e);
    const auto eq = inherited.find('=');
    const bool replaced =
        eq != std::string_view::npos &&
        std::any_of(overrides.begin(), overrides.end(), [&](const std::string& o) {
          return std::string_view(o).substr(0, eq + 1) == inherited.substr(0, eq + 1);
        });
    if (!replaced) out.emplace_back(inherited);
  }
  out.insert(out.end(), overrides.begin(), overrides.end());
  return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// posix_spawn_file_actions_t with its destroy on every way out.
class FileActions {
 public:
  FileActions() { posix_spawn_file_actions_init(&actions_); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  ~FileActions() { posix_spawn_file_actions_destroy(&actions_); }
  posix_spawn_file_actions_t* get() noexcept { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_{};
};

// Both ends of the pipes made for a spawn; the ones still held are closed on the way out.
struct Pipes {
  int read_end[2] = {-1, -1};
  int write_end[2] = {-1, -1};
  Pipes() = default;
  Pipes(const Pipes&) = delete;
  Pipes& operator=(const Pipes&) = delete;
  ~Pipes() {
    for (int& fd : read_end) close_one(fd);
    close_one_writers();
  }
  void close_one_writers() noexcept {
    for (int& fd : write_end) close_one(fd);
  }
  static void close_one(int& fd) noexcept {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

// Adds the file actions that point the child's `target` (1 or 2) where `redirect` says.
shm::Result<void> redirect(const Redirect& redirect, int target, FileActions& actions, Pipes& pipes,
                           std::size_t index) {
  switch (redirect.kind) {
    case Redirect::Kind::kInherit:
      return shm::success();
    case Redirect::Kind::kPipe: {
      int fds[2];
      // Close-on-exec: only the dup2'd copy reaches the child, so end of file arrives when it
      // (and not some other child spawned meanwhile) exits.
      if (::pipe2(fds, O_CLOEXEC) != 0) return system_error("pipe2", errno);
      pipes.read_end[index] = fds[0];
      pipes.write_end[index] = fds[1];
      posix_spawn_file_actions_adddup2(actions.get(), fds[1], target);
      return shm::success();
    }
    case Redirect::Kind::kFile:
      posix_spawn_file_actions_addopen(actions.get(), target, redirect.path.c_str(),
                                       O_WRONLY | O_CREAT | (redirect.append ? O_APPEND : O_TRUNC),
                                       0644);
      return shm::success();
  }
  return shm::success();
}

}  // namespace

bool ExitStatus::exited() const noexcept { return WIFEXITED(wait_status); }
bool ExitStatus::signaled() const noexcept { return WIFSIGNALED(wait_status); }
int ExitStatus::exit_code() const noexcept { return WEXITSTATUS(wait_status); }
int ExitStatus::term_signal() const noexcept { return WTERMSIG(wait_status); }

int ExitStatus::code() const noexcept {
  if (exited()) return exit_code();
  if (signaled()) return 128 + term_signal();
  return -1;
}

std::string ExitStatus::describe() const {
  if (exited()) return fmt::format("exited with status {}", exit_code());
  if (signaled()) return fmt::format("killed by signal {}", term_signal());
  return fmt::format("ended with wait status {}", wait_status);
}

shm::Result<Process> Process::spawn(const SpawnOptions& options) {
  if (options.argv.empty()) {
    return shm::Error{shm::Errc::kInvalidOptions, "spawning a process needs at least argv[0]"};
  }
  const std::string& program = options.program.empty() ? options.argv.front() : options.program;
  FileActions actions;
  Pipes pipes;
  if (auto r = redirect(options.out, STDOUT_FILENO, actions, pipes, 0); !r) return r.error();
  if (auto r = redirect(options.err, STDERR_FILENO, actions, pipes, 1); !r) return r.error();
  if (!options.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(actions.get(), options.working_dir.c_str());
  }
  std::vector<std::string> argv_store = options.argv;
  std::vector<char*> argv = pointers(argv_store);
  std::vector<std::string> env_store;
  std::vector<char*> env;
  char** envp = environ;
  if (!options.env_overrides.empty()) {
    env_store = environment_with(options.env_overrides);
    env = pointers(env_store);
    envp = env.data();
  }
  pid_t pid = -1;
  const int rc =
      options.search_path
          ? ::posix_spawnp(&pid, program.c_str(), actions.get(), nullptr, argv.data(), envp)
          : ::posix_spawn(&pid, program.c_str(), actions.get(), nullptr, argv.data(), envp);
  pipes.close_one_writers();  // the child holds its copies; ours would keep end of file away
  if (rc != 0) {
    shm::Error error = system_error(fmt::format("starting {}", program), rc);
    if (rc == ENOENT) error.code = shm::Errc::kNotFound;
    return error;
  }
  Process process(pid, pipes.read_end[0], pipes.read_end[1]);
  pipes.read_end[0] = -1;
  pipes.read_end[1] = -1;
  return process;
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      fds_{std::exchange(other.fds_[0], -1), std::exchange(other.fds_[1], -1)},
      buffered_{std::move(other.buffered_[0]), std::move(other.buffered_[1])},
      exit_(std::move(other.exit_)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    release();
    pid_ = std::exchange(other.pid_, -1);
    fds_[0] = std::exchange(other.fds_[0], -1);
    fds_[1] = std::exchange(other.fds_[1], -1);
    buffered_[0] = std::move(other.buffered_[0]);
    buffered_[1] = std::move(other.buffered_[1]);
    exit_ = std::move(other.exit_);
  }
  return *this;
}

Process::~Process() { release(); }

void Process::release() noexcept {
  if (pid_ > 0 && !exit_) {
    // SIGKILL cannot be caught: the blocking reap below returns promptly.
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  close(Stream::kOut);
  close(Stream::kErr);
  pid_ = -1;
}

int Process::fd(Stream stream) const noexcept { return fds_[index_of(stream)]; }

void Process::close(Stream stream) noexcept {
  int& fd = fds_[index_of(stream)];
  if (fd >= 0) ::close(fd);
  fd = -1;
}

bool Process::read_available(Stream stream) {
  const int fd = fds_[index_of(stream)];
  if (fd < 0) return false;
  char buf[kReadChunk];
  ssize_t n = -1;
  do {
    n = ::read(fd, buf, sizeof(buf));
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    close(stream);
    return false;
  }
  buffered_[index_of(stream)].append(buf, static_cast<std::size_t>(n));
  return true;
}

std::optional<std::string> Process::take_line(Stream stream) {
  std::string& buffered = buffered_[index_of(stream)];
  const auto nl = buffered.find('\n');
  if (nl == std::string::npos) return std::nullopt;
  std::string line = buffered.substr(0, nl);
  buffered.erase(0, nl + 1);
  return line;
}

std::optional<std::string> Process::read_line(Stream stream, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto line = take_line(stream)) return line;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || !open(stream)) return std::nullopt;
    pollfd p{fd(stream), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
    if (!read_available(stream)) return take_line(stream);
  }
}

std::string Process::read_all(Stream stream, std::chrono::milliseconds idle_timeout) {
  while (open(stream)) {
    pollfd p{fd(stream), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(idle_timeout.count())) <= 0) break;
    if (!read_available(stream)) break;
  }
  return std::exchange(buffered_[index_of(stream)], std::string{});
}

bool Process::signal(int sig) noexcept {
  if (pid_ <= 0 || exit_) return false;
  return ::kill(pid_, sig) == 0;
}

std::optional<ExitStatus> Process::reap(int options) {
  if (exit_) return exit_;
  if (pid_ <= 0) return std::nullopt;
  int status = 0;
  rusage usage{};
  pid_t got = -1;
  do {
    got = ::wait4(pid_, &status, options, &usage);
  } while (got < 0 && errno == EINTR);
  if (got != pid_) return std::nullopt;
  const auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
  };
  exit_ = ExitStatus{status, seconds(usage.ru_utime) + seconds(usage.ru_stime)};
  return exit_;
}

std::optional<ExitStatus> Process::try_wait() { return reap(WNOHANG); }

std::optional<ExitStatus> Process::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto poll_interval = std::chrono::duration_cast<Clock::duration>(kFirstWaitPoll);
  for (;;) {
    if (auto status = reap(WNOHANG)) return status;
    const auto now = Clock::now();
    if (now >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::min<Clock::duration>(poll_interval, deadline - now));
    poll_interval = std::min<Clock::duration>(poll_interval * 2, kMaxWaitPoll);
  }
}

ExitStatus Process::wait() {
  if (auto status = reap(0)) return *status;
  return ExitStatus{-1, 0};  // no child to wait for (moved from, or reaped by someone else)
}

ExitStatus Process::wait_or_kill(std::chrono::milliseconds deadline, int sig) {
  if (auto status = wait_for(deadline)) return *status;
  (void)signal(sig);
  return wait();
}

}  // namespace shmstats::common
