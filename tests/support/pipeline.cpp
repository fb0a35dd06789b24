#include "tests/support/pipeline.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace shmstats::testing {
namespace {

using namespace std::chrono_literals;

constexpr auto kAnnounceTimeout = 10s;

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

// A UDP socket bound to 127.0.0.1:0 and the port it got, or {-1, 0}.
std::pair<int, std::uint16_t> bind_udp() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return {-1, 0};
  sockaddr_in a = loopback(0);
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return {-1, 0};
  }
  return {fd, ntohs(a.sin_port)};
}

std::uint16_t port_after_colon(const std::string& hostport) {
  const auto colon = hostport.rfind(':');
  if (hostport.empty() || colon == std::string::npos) return 0;
  return static_cast<std::uint16_t>(std::stoi(hostport.substr(colon + 1)));
}

}  // namespace

TempDir::TempDir() {
  char pattern[] = "/tmp/shmstats-e2e-XXXXXX";
  const char* made = ::mkdtemp(pattern);
  if (made == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string http_get(std::uint16_t port, const std::string& path, std::chrono::milliseconds timeout,
                     int* status) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  const sockaddr_in a = loopback(port);
  std::string response;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0) {
    // HTTP/1.0: the server closes the connection after the response, which ends it.
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
          response.clear();
          break;
        }
        char buf[16384];
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        response.append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  ::close(fd);
  // "HTTP/1.x NNN ...", headers, an empty line, the body.
  const auto body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12 || body == std::string::npos) {
    return "";
  }
  const int code = std::atoi(response.substr(9, 3).c_str());
  if (status != nullptr) {
    *status = code;
  } else if (code != 200) {
    return "";
  }
  return response.substr(body + 4);
}

std::string prom_text(const std::string& page, const std::string& name, const std::string& labels) {
  const std::string key = labels.empty() ? name + " " : name + "{" + labels + "} ";
  std::istringstream in(page);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return line.substr(key.size());
  }
  return "";
}

double prom_value(const std::string& page, const std::string& name, const std::string& labels) {
  const std::string text = prom_text(page, name, labels);
  return text.empty() ? -1 : std::stod(text);
}

std::uint16_t closed_udp_port() {
  const auto [fd, port] = bind_udp();
  if (fd >= 0) ::close(fd);
  return port;
}

std::uint16_t free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
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

UdpSink::UdpSink() {
  const auto [fd, port] = bind_udp();
  if (fd < 0) throw std::runtime_error("binding a UDP socket on 127.0.0.1 failed");
  fd_ = fd;
  port_ = port;
}

UdpSink::~UdpSink() { ::close(fd_); }

std::uint64_t UdpSink::datagrams() {
  char buf[65536];
  while (::recv(fd_, buf, sizeof(buf), 0) >= 0) ++datagrams_;
  return datagrams_;
}

std::uint64_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

PipelineProcess start_receiver(const std::string& recv_bin, const std::string& jsonl,
                               std::uint16_t udp_port) {
  PipelineProcess p{
      ChildProcess::spawn({recv_bin, "--listen", "127.0.0.1:" + std::to_string(udp_port), "--jsonl",
                           jsonl, "--http", "127.0.0.1:0"})};
  p.udp_port = port_after_colon(p.process.read_line_starting("listening udp ", kAnnounceTimeout));
  p.http_port = port_after_colon(p.process.read_line_starting("listening http ", kAnnounceTimeout));
  return p;
}

PipelineProcess start_collector(const std::string& collector_bin, const std::string& prefix,
                                const std::vector<std::string>& args,
                                const std::vector<std::string>& env) {
  std::vector<std::string> argv = {collector_bin, "--shm-prefix", prefix, "--http",
                                   "127.0.0.1:0", "--log-level",  "warn"};
  argv.insert(argv.end(), args.begin(), args.end());
  PipelineProcess p{ChildProcess::spawn(argv, env)};
  p.http_port = port_after_colon(p.process.read_line_starting("listening http ", kAnnounceTimeout));
  return p;
}

ChildProcess start_pace(const std::string& prefix, const std::string& service, int threads,
                        int rate_per_thread, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {helper_path(), "pace",    "--prefix",
                                   prefix,        "--service", service,
                                   "--threads",   std::to_string(threads),
                                   "--rate",      std::to_string(rate_per_thread)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return ChildProcess::spawn(argv);
}

PaceReport read_report(ChildProcess& producer, int threads, std::chrono::milliseconds timeout) {
  PaceReport report;
  for (int t = 0; t < threads; ++t) {
    const std::string line = producer.read_line_starting("thread ", timeout);
    if (line.empty()) return report;
    ThreadTally& tally = report.threads[std::to_string(line_field(line, "t"))];
    tally.pushes = line_field(line, "pushes");
    tally.accepted = line_field(line, "accepted");
    tally.refused = line_field(line, "refused");
  }
  const std::string done = producer.read_line_starting("done ", timeout);
  if (done.empty()) return report;
  report.accepted = line_field(done, "accepted");
  report.refused = line_field(done, "refused");
  report.elapsed_us = line_field(done, "elapsed_us");
  report.max_lag_us = line_field(done, "max_lag_us");
  report.max_push_ns = line_field(done, "max_push_ns");
  report.complete = true;
  return report;
}

}  // namespace shmstats::testing
