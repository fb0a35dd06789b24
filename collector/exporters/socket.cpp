#include "collector/exporters/socket.h"

#include <fmt/format.h>
#include <netdb.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <utility>

namespace shmstats::collector {
namespace {

shm::Error invalid(std::string_view destination, std::string_view why) {
  return shm::Error{shm::Errc::kInvalidOptions,
                    fmt::format("destination \"{}\": {}", common::shown(destination), why)};
}

std::string errno_text(int err) { return fmt::format("{} ({})", std::strerror(err), err); }

}  // namespace

shm::Result<DatagramSocket> DatagramSocket::open(std::string_view destination) {
  auto ep = common::parse_destination(destination);
  if (!ep) return ep.error();
  return open(ep.value());
}

shm::Result<DatagramSocket> DatagramSocket::open(const Endpoint& endpoint) {
  if (endpoint.type == Endpoint::Type::kUnix) {
    DatagramSocket s(endpoint, AF_UNIX);
    s.fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s.fd_ < 0) {
      return shm::Error{shm::Errc::kSystem, "socket(AF_UNIX): " + errno_text(errno)};
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (endpoint.path.empty() || endpoint.path.size() >= sizeof(addr.sun_path)) {
      return invalid(endpoint.text(), "bad Unix socket path length");
    }
    std::memcpy(addr.sun_path, endpoint.path.data(), endpoint.path.size());
    std::memcpy(&s.address_, &addr, sizeof(addr));
    s.address_len_ =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + endpoint.path.size() + 1);
    (void)s.ensure_connected();  // a missing receiver is retried on every send
    return s;
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(endpoint.port);
  if (const int rc = ::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return invalid(endpoint.text(), fmt::format("cannot resolve \"{}\": {}",
                                                common::shown(endpoint.host), ::gai_strerror(rc)));
  }
  int last_error = 0;
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    const int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      last_error = errno;
      continue;
    }
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      last_error = errno;
      ::close(fd);
      continue;
    }
    DatagramSocket s(endpoint, ai->ai_family);
    s.fd_ = fd;
    s.connected_ = true;
    std::memcpy(&s.address_, ai->ai_addr, ai->ai_addrlen);
    s.address_len_ = ai->ai_addrlen;
    ::freeaddrinfo(found);
    return s;
  }
  ::freeaddrinfo(found);
  return shm::Error{shm::Errc::kSystem, fmt::format("destination \"{}\": cannot connect: {}",
                                                    endpoint.text(), errno_text(last_error))};
}

DatagramSocket::DatagramSocket(DatagramSocket&& other) noexcept
    : endpoint_(std::move(other.endpoint_)),
      family_(other.family_),
      fd_(std::exchange(other.fd_, -1)),
      connected_(std::exchange(other.connected_, false)),
      address_(other.address_),
      address_len_(other.address_len_) {}

DatagramSocket& DatagramSocket::operator=(DatagramSocket&& other) noexcept {
  if (this != &other) {
    close_fd();
    endpoint_ = std::move(other.endpoint_);
    family_ = other.family_;
    fd_ = std::exchange(other.fd_, -1);
    connected_ = std::exchange(other.connected_, false);
    address_ = other.address_;
    address_len_ = other.address_len_;
  }
  return *this;
}

DatagramSocket::~DatagramSocket() { close_fd(); }

void DatagramSocket::close_fd() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  connected_ = false;
}

int DatagramSocket::ensure_connected() noexcept {
  if (connected_) return 0;
  if (fd_ < 0) return EBADF;
  // Connecting an AF_UNIX datagram socket again is allowed and replaces the peer; it is how a
  // receiver that was restarted (new socket at the same path) is found again.
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address_), address_len_) != 0) {
    return errno;
  }
  connected_ = true;
  return 0;
}

int DatagramSocket::send_one(std::string_view datagram) noexcept {
  if (const int err = ensure_connected(); err != 0) return err;
  for (;;) {
    if (::send(fd_, datagram.data(), datagram.size(), MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) return 0;
    const int err = errno;
    if (err == EINTR) continue;
    // A Unix receiver that went away leaves the socket pointing at nothing: reconnect next time.
    if (family_ == AF_UNIX && (err == ECONNREFUSED || err == ENOTCONN || err == ECONNRESET)) {
      connected_ = false;
    }
    return err;
  }
}

SendManyResult DatagramSocket::send_many(std::span<const std::string> datagrams,
                                         std::span<int> errors) noexcept {
  SendManyResult result;
  const bool record = errors.size() == datagrams.size() && !errors.empty();
  auto fail = [&](std::size_t index, int err) {
    ++result.failed;
    result.last_error = err;
    if (record) errors[index] = err;
  };
  if (const int err = ensure_connected(); err != 0) {
    for (std::size_t i = 0; i < datagrams.size(); ++i) fail(i, err);
    return result;
  }
  std::size_t next = 0;
  while (next < datagrams.size()) {
    const std::size_t n = std::min(kBatch, datagrams.size() - next);
    for (std::size_t i = 0; i < n; ++i) {
      const std::string& d = datagrams[next + i];
      // iovec takes a non-const pointer; sendmmsg only reads it.
      iov_[i].iov_base = const_cast<char*>(d.data());
      iov_[i].iov_len = d.size();
      msgs_[i] = mmsghdr{};
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
    }
    const int rc =
        ::sendmmsg(fd_, msgs_.data(), static_cast<unsigned>(n), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (rc < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      // The first datagram of this call was refused; the rest get their own attempt. (When a
      // later one fails, sendmmsg returns the count before it and loses the errno, so that
      // datagram is retried once as the first of the next call.)
      fail(next, err);
      if (family_ == AF_UNIX && (err == ECONNREFUSED || err == ENOTCONN || err == ECONNRESET)) {
        connected_ = false;
        if (const int again = ensure_connected(); again != 0) {
          for (std::size_t i = next + 1; i < datagrams.size(); ++i) fail(i, again);
          return result;
        }
      }
      ++next;
      continue;
    }
    if (rc == 0) {  // not expected from Linux; never spin on it
      fail(next, EAGAIN);
      ++next;
      continue;
    }
    const auto accepted = static_cast<std::size_t>(rc);
    for (std::size_t i = 0; i < accepted; ++i) {
      if (record) errors[next + i] = 0;
      result.bytes += datagrams[next + i].size();
    }
    result.sent += accepted;
    next += accepted;
  }
  return result;
}

int DatagramSocket::take_pending_error() noexcept {
  if (fd_ < 0) return 0;
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return 0;
  return err;
}

}  // namespace shmstats::collector
