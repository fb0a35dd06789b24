// Real datagram receivers for the exporter tests: UDP on loopback (port 0, read back) and Unix
// datagram sockets bound in a fresh temporary directory. Header-only; test code.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/support.h"

namespace shmstats::testing {

class DatagramReceiver {
 public:
  DatagramReceiver(const DatagramReceiver&) = delete;
  DatagramReceiver& operator=(const DatagramReceiver&) = delete;
  virtual ~DatagramReceiver() { close(); }

  // Waits until `count` datagrams arrived or `timeout` passed; returns what arrived (check the
  // size). Datagrams beyond `count` that are already queued stay queued.
  std::vector<std::string> receive(std::size_t count, std::chrono::milliseconds timeout) {
    std::vector<std::string> out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.size() < count) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      std::string d;
      if (receive_one(d)) out.push_back(std::move(d));
    }
    return out;
  }

  // Everything queued right now, without waiting.
  std::vector<std::string> receive_queued() {
    std::vector<std::string> out;
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      std::string d;
      if (::poll(&p, 1, 0) <= 0 || !receive_one(d)) break;
      out.push_back(std::move(d));
    }
    return out;
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 protected:
  DatagramReceiver() = default;
  int fd_ = -1;

 private:
  bool receive_one(std::string& out) {
    out.assign(70000, '\0');
    const ssize_t n = ::recv(fd_, out.data(), out.size(), MSG_DONTWAIT);
    if (n < 0) return false;
    out.resize(static_cast<std::size_t>(n));
    return true;
  }
};

// A UDP socket on 127.0.0.1 (or ::1 with `ipv6`); port 0 picks a free port, read back by port().
class UdpReceiver : public DatagramReceiver {
 public:
  explicit UdpReceiver(std::uint16_t port = 0, bool ipv6 = false) {
    fd_ = ::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    int rc = -1;
    if (ipv6) {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_loopback;
      a.sin6_port = htons(port);
      rc = ::bind(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof(a));
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(port);
      rc = ::bind(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof(a));
    }
    if (rc != 0) throw std::runtime_error("bind: " + std::string(std::strerror(errno)));
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = ntohs(ipv6 ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                       : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
  }
  std::uint16_t port() const { return port_; }
  std::string destination() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  std::uint16_t port_ = 0;
};

// An AF_UNIX SOCK_DGRAM socket bound at `path`.
class UnixReceiver : public DatagramReceiver {
 public:
  explicit UnixReceiver(std::filesystem::path path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string p = path_.string();
    if (p.size() >= sizeof(a.sun_path)) throw std::runtime_error("unix path too long: " + p);
    std::memcpy(a.sun_path, p.data(), p.size());
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0) {
      throw std::runtime_error("bind " + p + ": " + std::strerror(errno));
    }
  }
  ~UnixReceiver() override {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  std::string destination() const { return "unix://" + path_.string(); }

 private:
  std::filesystem::path path_;
};

inline std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    const auto at = text.find(separator, start);
    parts.push_back(text.substr(start, at - start));
    if (at == std::string::npos) break;
    start = at + 1;
  }
  return parts;
}

// Splits a StatsD datagram into its lines.
inline std::vector<std::string> split_lines(const std::string& datagram) {
  return split(datagram, '\n');
}

}  // namespace shmstats::testing
