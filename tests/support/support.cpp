#include "tests/support/support.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include "shm/segment.h"

extern char** environ;

namespace shmstats::testing {

std::string unique_prefix() {
  static std::atomic<int> counter{0};
  std::string name = "test";
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    name = info->name();
  }
  std::string clean;
  for (const char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c))) clean += c;
  }
  std::string prefix = "t" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
                       clean.substr(0, 32);
  return prefix;
}

SegmentGuard::~SegmentGuard() {
  for (const auto& name : shm::list_segments(prefix_)) (void)shm::unlink_segment(name);
}

::testing::AssertionResult wait_until(const std::function<bool()>& done,
                                      std::chrono::milliseconds timeout,
                                      const std::function<std::string()>& describe) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return ::testing::AssertionSuccess();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (done()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "timed out after " << timeout.count() << " ms; last state: " << describe();
}

ChildProcess ChildProcess::spawn(const std::vector<std::string>& argv,
                                 const std::vector<std::string>& extra_env,
                                 const std::string& stderr_path) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  if (!stderr_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string inherited(*e);
    const auto eq = inherited.find('=');
    const std::string name = inherited.substr(0, eq == std::string::npos ? eq : eq + 1);
    const bool replaced = std::any_of(extra_env.begin(), extra_env.end(), [&](const auto& x) {
      return x.compare(0, name.size(), name) == 0 && eq != std::string::npos;
    });
    if (!replaced) env_store.push_back(inherited);
  }
  for (const auto& e : extra_env) env_store.push_back(e);
  std::vector<char*> env;
  for (auto& e : env_store) env.push_back(e.data());
  env.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw std::runtime_error(std::string("posix_spawn ") + argv[0] + ": " + std::strerror(rc));
  }
  return ChildProcess(pid, fds[0]);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_),
      out_fd_(other.out_fd_),
      buffered_(std::move(other.buffered_)),
      reaped_(other.reaped_),
      status_(other.status_) {
  other.pid_ = -1;
  other.out_fd_ = -1;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (out_fd_ >= 0) ::close(out_fd_);
}

std::string ChildProcess::read_line_starting(const std::string& prefix,
                                             std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::size_t nl;
    while ((nl = buffered_.find('\n')) != std::string::npos) {
      std::string line = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "";
    pollfd p{out_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
    char buf[4096];
    const ssize_t n = ::read(out_fd_, buf, sizeof(buf));
    if (n <= 0) return "";
    buffered_.append(buf, static_cast<std::size_t>(n));
  }
}

std::string ChildProcess::read_all(bool until_eof) {
  for (;;) {
    pollfd p{out_fd_, POLLIN, 0};
    if (::poll(&p, 1, until_eof ? 10000 : 0) <= 0) break;
    char buf[4096];
    const ssize_t n = ::read(out_fd_, buf, sizeof(buf));
    if (n <= 0) break;
    buffered_.append(buf, static_cast<std::size_t>(n));
  }
  std::string out;
  out.swap(buffered_);
  return out;
}

void ChildProcess::kill(int sig) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

int ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (reaped_) return status_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

std::uint64_t line_field(const std::string& line, const std::string& name) {
  const std::string key = name + "=";
  std::size_t at = line.find(key);
  while (at != std::string::npos && at != 0 && line[at - 1] != ' ') at = line.find(key, at + 1);
  if (at == std::string::npos) return ~std::uint64_t{0};
  return std::strtoull(line.c_str() + at + key.size(), nullptr, 10);
}

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

::testing::AssertionResult file_gets(const std::string& path, const std::string& needle,
                                     std::chrono::milliseconds timeout) {
  return wait_until([&] { return file_text(path).find(needle) != std::string::npos; }, timeout,
                    [&] { return "no \"" + needle + "\" in " + path + ":\n" + file_text(path); });
}

std::string helper_path() { return SHMSTATS_TEST_HELPER; }

}  // namespace shmstats::testing
