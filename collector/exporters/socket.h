// A small datagram sender for the network exporters: a connected UDP socket (IPv4 or IPv6) or a
// connected Unix datagram socket. Names are resolved once, on the cold path (create); sends never
// block (MSG_DONTWAIT) and report failures as errno values, which the exporters count and feed to
// their circuit breaker.
//
// Concurrency: not thread-safe; one exporter thread owns each DatagramSocket.
//
// Why connected sockets: a connected UDP socket receives the ICMP "port unreachable" of a
// destination where nothing listens, and the kernel reports it as ECONNREFUSED (on the next send,
// or through take_pending_error). An unconnected sendto never learns it.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/endpoint.h"
#include "shm/result.h"

namespace shmstats::collector {

// Where datagrams go: common/endpoint.h has the rules (HOST:PORT, [IPV6]:PORT, unix:///path).
using common::Endpoint;

struct SendManyResult {
  std::size_t sent = 0;    // datagrams the kernel accepted
  std::size_t failed = 0;  // datagrams refused (their errno is in `errors`, if given)
  std::size_t bytes = 0;   // bytes of the accepted datagrams
  int last_error = 0;      // errno of the last refused datagram, 0 if none
};

class DatagramSocket {
 public:
  // Resolves (getaddrinfo, first usable address) and connects. A Unix destination that does not
  // exist yet is not an error: the socket connects on the first send and reconnects after the
  // receiver went away, so a collector may start before its agent.
  static shm::Result<DatagramSocket> open(const Endpoint& endpoint);
  static shm::Result<DatagramSocket> open(std::string_view destination);

  DatagramSocket(DatagramSocket&& other) noexcept;
  DatagramSocket& operator=(DatagramSocket&& other) noexcept;
  DatagramSocket(const DatagramSocket&) = delete;
  DatagramSocket& operator=(const DatagramSocket&) = delete;
  ~DatagramSocket();

  // Sends one datagram. Returns 0 or the errno of the failure (EAGAIN when the socket buffer is
  // full, ECONNREFUSED when the destination reported that nothing listens, EMSGSIZE, ...).
  int send_one(std::string_view datagram) noexcept;

  // Sends every datagram with as few sendmmsg calls as possible. A refused datagram does not stop
  // the others. If `errors` is not empty it must have datagrams.size() entries and receives 0 or
  // the errno of each datagram.
  SendManyResult send_many(std::span<const std::string> datagrams,
                           std::span<int> errors = {}) noexcept;

  // Reads and clears an asynchronous error the kernel holds for the socket (SO_ERROR), e.g. the
  // ECONNREFUSED of an ICMP port unreachable that arrived after a send. Returns 0 if none.
  int take_pending_error() noexcept;

  const Endpoint& endpoint() const noexcept { return endpoint_; }
  // AF_INET, AF_INET6 or AF_UNIX.
  int family() const noexcept { return family_; }

 private:
  DatagramSocket(Endpoint endpoint, int family) : endpoint_(std::move(endpoint)), family_(family) {}
  int ensure_connected() noexcept;  // 0 or errno; only Unix sockets are ever disconnected
  void close_fd() noexcept;

  static constexpr std::size_t kBatch = 64;  // datagrams per sendmmsg call

  Endpoint endpoint_;
  int family_ = AF_UNSPEC;
  int fd_ = -1;
  bool connected_ = false;
  sockaddr_storage address_{};
  socklen_t address_len_ = 0;
  std::array<struct mmsghdr, kBatch> msgs_{};
  std::array<struct iovec, kBatch> iov_{};
};

}  // namespace shmstats::collector
