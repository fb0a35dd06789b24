#include "collector/exporters/breaker_socket.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <utility>

namespace shmstats::collector {

BreakerSocket::BreakerSocket(std::string exporter_name, DatagramSocket socket,
                             std::uint32_t failure_threshold,
                             std::chrono::milliseconds open_duration)
    : name_(std::move(exporter_name)),
      socket_(std::move(socket)),
      breaker_(failure_threshold, open_duration),
      open_duration_(open_duration) {}

bool BreakerSocket::try_admit(Clock::time_point now) noexcept {
  if (!breaker_.allow(now)) return false;
  if (breaker_.state() != CircuitBreaker::State::kHalfOpen) return true;
  (void)socket_.take_pending_error();  // stale: only the probe's own outcome counts
  // The probe is an empty datagram, not the batch: a closed port accepts the first datagram sent
  // to it and answers with an ICMP port unreachable, so a batch sent as the probe would lose its
  // first datagram while the kernel reports it sent.
  probes_.fetch_add(1, std::memory_order_relaxed);
  int err = socket_.send_one({});
  if (err == 0) err = socket_.take_pending_error();
  if (err == 0) return true;  // the batch's own send decides whether the breaker closes
  probes_failed_.fetch_add(1, std::memory_order_relaxed);
  breaker_.on_failure(now);
  return false;
}

void BreakerSocket::cancel(Clock::time_point now) noexcept {
  if (breaker_.state() == CircuitBreaker::State::kHalfOpen) breaker_.on_failure(now);
}

AttemptResult BreakerSocket::send(std::span<const std::string> datagrams, Clock::time_point now) {
  errors_.assign(datagrams.size(), 0);
  AttemptResult r;
  r.sent = socket_.send_many(datagrams, errors_);
  r.pending_error = socket_.take_pending_error();
  const auto before = breaker_.state();
  if (r.failed()) {
    breaker_.on_failure(now);
  } else {
    breaker_.on_success();
  }
  const auto after = breaker_.state();
  // Transitions happen at most once per open duration, so these lines need no rate limit.
  if (after == CircuitBreaker::State::kOpen && before != CircuitBreaker::State::kOpen) {
    const int err = r.sent.failed > 0 ? r.sent.last_error : r.pending_error;
    spdlog::warn("exporter {}: {} is failing ({}); circuit open, batches dropped for {} ms", name_,
                 socket_.endpoint().text(), std::strerror(err), open_duration_.count());
  } else if (after == CircuitBreaker::State::kClosed &&
             before == CircuitBreaker::State::kHalfOpen) {
    spdlog::info("exporter {}: {} answers again; circuit closed", name_, socket_.endpoint().text());
  }
  return r;
}

BreakerStatus BreakerSocket::status() const noexcept {
  BreakerStatus s;
  s.probes_failed = probes_failed();  // first: a probe is counted sent before it is failed
  s.probes_sent = probes();
  switch (breaker_.state()) {
    case CircuitBreaker::State::kClosed:
      s.state = BreakerState::kClosed;
      break;
    case CircuitBreaker::State::kOpen:
      s.state = BreakerState::kOpen;
      break;
    case CircuitBreaker::State::kHalfOpen:
      s.state = BreakerState::kHalfOpen;
      break;
  }
  return s;
}

}  // namespace shmstats::collector
