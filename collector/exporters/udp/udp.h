// The native exporter: batches as sequenced, CRC-checked protobuf datagrams (proto/datagram.h)
// for shmstats-recv, over UDP or a Unix datagram socket, behind a circuit breaker.
//
// Concurrency: an Exporter; its runner's thread calls send. breaker_state() and breaker() may be
// read from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "collector/exporter.h"
#include "collector/exporters/breaker_socket.h"
#include "proto/datagram.h"
#include "shm/result.h"

namespace shmstats::collector {

struct UdpExporterOptions {
  std::string name = "udp";  // the instance name (exporter= label)
  std::string destination;   // "HOST:PORT", "[IPV6]:PORT" or "unix:///path"
  std::uint64_t sender_id = 0;
  std::uint64_t sender_epoch = 0;  // changes on every collector start
  std::string host;                // reported in every datagram (<= 255 bytes)
  // Largest datagram, 512..1472. 0: 1472 for IPv4 and Unix, 1452 for IPv6 (no fragmentation on
  // a 1500-byte MTU).
  std::size_t max_datagram_bytes = 0;
  std::uint32_t breaker_failures = 5;            // consecutive failed batches that open the breaker
  std::chrono::milliseconds breaker_open{2000};  // how long an open breaker drops batches
};

class UdpExporter final : public Exporter {
 public:
  static shm::Result<std::unique_ptr<UdpExporter>> create(const UdpExporterOptions& options);

  const std::string& name() const override { return name_; }
  // Encodes points and aggregates, sends each datagram. While the breaker is open the batch is
  // dropped (events_dropped). Events of a datagram the kernel refused are dropped and counted in
  // send_errors; an asynchronous error (ICMP) is a send error but cannot be tied to a datagram,
  // so its events stay counted as sent. Items too large for any datagram are dropped.
  SendResult send(const Batch& batch) override;
  BreakerStatus breaker() const override { return out_.status(); }

  const CircuitBreaker& circuit() const noexcept { return out_.breaker(); }
  const Endpoint& endpoint() const noexcept { return out_.socket().endpoint(); }
  std::size_t max_datagram_bytes() const noexcept { return encoder_.max_bytes(); }

 private:
  UdpExporter(proto::Encoder encoder, DatagramSocket socket, const UdpExporterOptions& options)
      : name_(options.name),
        encoder_(std::move(encoder)),
        out_(name_, std::move(socket), options.breaker_failures, options.breaker_open) {}

  std::string name_;
  proto::Encoder encoder_;
  BreakerSocket out_;
  std::vector<std::string> datagrams_;  // reused between sends
};

}  // namespace shmstats::collector
