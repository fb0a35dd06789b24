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
//   - Before the probe of a half-open breaker, a stale pending error (from before the breaker
//     opened) is discarded, so only the probe's own outcome decides.
//
// Concurrency: owned by one exporter thread; breaker().state() may be read from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "collector/breaker.h"
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

  // False while the breaker is open. True when closed, or for the one probe of half-open.
  bool try_admit(Clock::time_point now = Clock::now()) noexcept;
  // An admitted attempt that had nothing to send. A probe without evidence re-opens the breaker
  // (the next batch after the open duration probes again); a closed breaker is left alone.
  void cancel(Clock::time_point now = Clock::now()) noexcept;
  // Sends the datagrams of an admitted attempt and reports its outcome to the breaker.
  AttemptResult send(std::span<const std::string> datagrams, Clock::time_point now = Clock::now());
  // errno of each datagram of the last send() (0 = accepted by the kernel).
  std::span<const int> errors() const noexcept { return errors_; }

  const CircuitBreaker& breaker() const noexcept { return breaker_; }
  const DatagramSocket& socket() const noexcept { return socket_; }

 private:
  std::string name_;
  DatagramSocket socket_;
  CircuitBreaker breaker_;
  std::chrono::milliseconds open_duration_;
  std::vector<int> errors_;
};

}  // namespace shmstats::collector
