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

#include "common/http_client.h"

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

std::string http_get(std::uint16_t port, const std::string& path, std::chrono::milliseconds timeout,
                     int* status) {
  auto response = common::http_get("127.0.0.1", port, path, timeout);
  if (!response) return "";
  if (status != nullptr) {
    *status = response.value().status;
  } else if (response.value().status != 200) {
    return "";
  }
  return std::move(response).value().body;
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
  std::vector<std::string> argv = {helper_path(), "pace",
                                   "--prefix",    prefix,
                                   "--service",   service,
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
