#include "collector/exporters/udp/udp.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <span>
#include <utility>

namespace shmstats::collector {
namespace {

std::uint64_t unix_now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// Events carried by one of our own datagrams. Only used for refused datagrams (the rare path),
// so the send path needs no per-datagram bookkeeping from the encoder.
std::uint64_t events_in(const std::string& datagram) {
  proto::DecodedDatagram decoded;
  proto::DecodeFailure failure;
  const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(datagram.data()),
                                            datagram.size());
  if (!proto::decode(bytes, decoded, failure)) {
    spdlog::error("exporter udp: own datagram does not decode ({}): {}",
                  proto::to_string(failure.reason), failure.message);
    return 0;
  }
  return decoded.points.size() + decoded.aggregates.size();
}

}  // namespace

shm::Result<std::unique_ptr<UdpExporter>> UdpExporter::create(const UdpExporterOptions& options) {
  auto socket = DatagramSocket::open(options.destination);
  if (!socket) return socket.error();
  std::size_t max_bytes = options.max_datagram_bytes;
  if (max_bytes == 0) {
    max_bytes = socket.value().family() == AF_INET6 ? proto::kMaxDatagramBytesIpv6
                                                    : proto::kMaxDatagramBytesIpv4;
  }
  auto encoder =
      proto::Encoder::create(options.sender_id, options.sender_epoch, max_bytes, options.host);
  if (!encoder) {
    return shm::Error{encoder.error().code,
                      "exporter " + options.name + ": " + encoder.error().message};
  }
  // Not make_unique: the constructor is private.
  return std::unique_ptr<UdpExporter>(
      new UdpExporter(std::move(encoder).value(), std::move(socket).value(), options));
}

SendResult UdpExporter::send(const Batch& batch) {
  SendResult result;
  if (batch.size() == 0) return result;
  const auto now = BreakerSocket::Clock::now();
  if (!out_.try_admit(now)) {
    result.events_dropped = batch.size();
    return result;
  }
  datagrams_.clear();
  const proto::EncodeStats encoded =
      encoder_.encode(batch.points, batch.aggregates, unix_now_ns(), datagrams_);
  result.events_dropped += encoded.too_large;
  if (datagrams_.empty()) {
    out_.cancel(now);
    return result;
  }
  const AttemptResult attempt = out_.send(datagrams_, now);
  std::uint64_t refused_events = 0;
  if (attempt.sent.failed > 0) {
    const auto errors = out_.errors();
    for (std::size_t i = 0; i < datagrams_.size(); ++i) {
      if (errors[i] != 0) refused_events += events_in(datagrams_[i]);
    }
  }
  const std::uint64_t encoded_events = encoded.points + encoded.aggregates;
  result.events_sent = encoded_events - refused_events;
  result.events_dropped += refused_events;
  result.requests = attempt.sent.sent;
  result.bytes = attempt.sent.bytes;
  result.send_errors = attempt.sent.failed + (attempt.pending_error != 0 ? 1 : 0);
  return result;
}

}  // namespace shmstats::collector
