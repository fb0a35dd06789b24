#include "tests/support/support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

#include "shm/segment.h"

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
  common::SpawnOptions options;
  options.argv = argv;
  options.env_overrides = extra_env;
  options.out = common::Redirect::pipe();
  if (!stderr_path.empty()) options.err = common::Redirect::file(stderr_path, /*append=*/true);
  auto process = common::Process::spawn(options);
  if (!process) throw std::runtime_error(process.error().message);
  return ChildProcess(std::move(process).value());
}

std::string ChildProcess::read_line_starting(const std::string& prefix,
                                             std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto line = process_.read_line(common::Process::Stream::kOut,
                                   std::max(left, std::chrono::milliseconds(0)));
    if (!line) return "";
    if (line->rfind(prefix, 0) == 0) return line->substr(prefix.size());
  }
}

std::string ChildProcess::read_all(bool until_eof) {
  constexpr std::chrono::milliseconds kEofWait{10000};
  return process_.read_all(common::Process::Stream::kOut,
                           until_eof ? kEofWait : std::chrono::milliseconds(0));
}

void ChildProcess::kill(int sig) { (void)process_.signal(sig); }

int ChildProcess::wait(std::chrono::milliseconds timeout) {
  const auto status = process_.wait_for(timeout);
  return status ? status->code() : -1;
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

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "shmstats-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

namespace {

// A socket of `type` bound to 127.0.0.1 on a port the kernel picks, closed again: the port.
std::uint16_t probe_port(int type) {
  const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0) {
    if (fd >= 0) ::close(fd);
    return 0;
  }
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

std::uint16_t closed_udp_port() { return probe_port(SOCK_DGRAM); }
std::uint16_t free_tcp_port() { return probe_port(SOCK_STREAM); }

}  // namespace shmstats::testing
