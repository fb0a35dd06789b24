// A DatagramSocket behind a CircuitBreaker: the send path both network exporters share.
//
// One attempt per batch:  try_admit -> (nothing to send ? cancel : send).
//   - try_admit is false while the breaker is open: the caller drops the batch and counts it.
//   - send sends every datagram, then reads the socket's pending asynchronous error. The attempt
//     is a failure for the breaker if any datagram was refused or an error is pending, so a
//     destination where nothing listens fails every attempt: on loopback the ICMP port
//     unreachable is processed inside the send call, and elsewhere it arrives before a later send,
//     which then fails with ECONNREFUSED. (Without the pending-error check, sends to a closed UDP
//     port alternate between success and ECONNREFUSED and consecutive failures never add up.)
//   - A half-open breaker probes with an empty datagram before it lets a batch through: a stale
//     pending error (from before the breaker opened) is discarded, the empty datagram is sent and
//     the pending error read again. Where the answer comes within the send (loopback, a local
//     Unix socket), a destination still down costs no batch datagram; the batch is dropped and
//     counted as refused by the open breaker. Elsewhere the ICMP answer comes later, the batch
//     goes out, and its own outcome decides as before. Receivers ignore empty datagrams (the
//     shmstats receiver counts them as probes; StatsD servers skip empty lines).
//
// Concurrency: owned by one exporter thread; breaker().state() may be read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "collector/breaker.h"
#include "collector/exporter.h"
#include "collector/exporters/socket.h"

namespace shmstats::collector {

struct AttemptResult {
  SendManyResult sent;    // per-datagram errno values are in BreakerSocket::errors()
  int pending_error = 0;  // asynchronous error read after the sends (e.g. ECONNREFUSED), or 0
  bool failed() const noexcept { return sent.failed > 0 || pending_error != 0; }
};

class BreakerSocket {
 public:
  using Clock = CircuitBreaker::Clock;

  BreakerSocket(std::string exporter_name, DatagramSocket socket, std::uint32_t failure_threshold,
                std::chrono::milliseconds open_duration);

  // False while the breaker is open. True when closed, or for the one attempt of half-open whose
  // empty probe datagram went out without an error; a failed probe re-opens the breaker.
  bool try_admit(Clock::time_point now = Clock::now()) noexcept;
  // An admitted attempt that had nothing to send. A probe without evidence re-opens the breaker
  // (the next batch after the open duration probes again); a closed breaker is left alone.
  void cancel(Clock::time_point now = Clock::now()) noexcept;
  // Sends the datagrams of an admitted attempt and reports its outcome to the breaker.
  AttemptResult send(std::span<const std::string> datagrams, Clock::time_point now = Clock::now());
  // errno of each datagram of the last send() (0 = accepted by the kernel).
  std::span<const int> errors() const noexcept { return errors_; }

  const CircuitBreaker& breaker() const noexcept { return breaker_; }
  // Empty probe datagrams sent by half-open breakers, and those answered with an error.
  std::uint64_t probes() const noexcept { return probes_.load(std::memory_order_relaxed); }
  std::uint64_t probes_failed() const noexcept {
    return probes_failed_.load(std::memory_order_relaxed);
  }
  const DatagramSocket& socket() const noexcept { return socket_; }
  // The breaker's state and probes, as an exporter reports them (any thread).
  BreakerStatus status() const noexcept;

 private:
  std::string name_;
  DatagramSocket socket_;
  CircuitBreaker breaker_;
  std::chrono::milliseconds open_duration_;
  std::vector<int> errors_;
  std::atomic<std::uint64_t> probes_{0};
  std::atomic<std::uint64_t> probes_failed_{0};
};

}  // namespace shmstats::collector
