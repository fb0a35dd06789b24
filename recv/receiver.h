// shmstats-recv's library: binds a UDP socket, decodes each datagram (proto/datagram.h), tracks
// per-sender sequences (sequence.h), hands JSON Lines (jsonl.h) to the asynchronous writer
// (writer.h) and serves its own counters as Prometheus text on an optional HTTP endpoint
// (common/http_server.h).
//
// Threads:
//   receive  (start())  poll + recvmmsg; decode, track, format, LineWriter::try_push. Never does
//                       file I/O, so a slow disk cannot make the kernel drop datagrams.
//   writer   (LineWriter) appends the lines; flushes at least every 50 ms.
//   http     (create(), with an HTTP endpoint) GET /metrics, GET /health, on the HTTP server's
//            thread.
// create(), start() and shutdown() belong to the owner thread. handle_datagram() is what the
// receive thread runs per datagram; a test may call it directly as long as start() was not.
// stats() and metrics_text() may be called from any thread.
//
// Nothing in a datagram can stop the receiver: a malformed one is counted by reason
// (proto::to_string(DecodeError)), a duplicate or stale one by the sequence counters, and both
// are dropped.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/endpoint.h"
#include "common/rate_limited_log.h"
#include "proto/datagram.h"
#include "recv/latency.h"
#include "recv/sequence.h"
#include "recv/writer.h"
#include "shm/result.h"

namespace shmstats::common {
class HttpServer;
}

namespace shmstats::recv {

inline constexpr std::string_view kDefaultListen = "127.0.0.1:9125";

struct ReceiverOptions {
  std::string listen{kDefaultListen};  // HOST:PORT, [V6]:PORT or PORT; port 0 picks a free one
  std::string jsonl = "-";             // file to append JSON Lines to, or "-" for stdout
  std::string http;                    // HOST:PORT for /metrics and /health; empty: none
  std::size_t queue_lines = 65536;     // writer queue capacity, in lines
  std::size_t max_senders = 1024;      // senders tracked at once; the least recent is forgotten
  int receive_buffer_bytes = 8 << 20;  // SO_RCVBUF asked for (the kernel may grant less)
};

// Listen addresses (--listen, --http) follow common/endpoint.h's listener rules: HOST:PORT,
// [IPV6]:PORT, :PORT or PORT (on 127.0.0.1); port 0 picks a free one.
using common::Endpoint;

struct ReceiverStats {
  std::uint64_t datagrams = 0;  // received, valid or not (probes included)
  std::uint64_t probes = 0;     // empty datagrams: collectors' breakers probing
  std::uint64_t bytes = 0;
  std::uint64_t events = 0;             // in accepted datagrams
  std::uint64_t aggregates = 0;         // in accepted datagrams
  std::uint64_t aggregated_values = 0;  // values the producers folded, summed over aggregates
  std::uint64_t receive_errors = 0;
  std::array<std::uint64_t, proto::kDecodeErrorCount> malformed{};  // by proto::DecodeError
  SequenceCounters sequence;  // every sender, forgotten ones included
  std::uint64_t senders = 0;
  std::uint64_t senders_forgotten = 0;
  WriterStats writer;

  std::uint64_t malformed_total() const noexcept;
};

class Receiver {
 public:
  // Binds the UDP socket and starts the writer and, with an HTTP endpoint, the HTTP server (which
  // answers from then on); nothing is received until start(). Errc::kInvalidOptions for bad
  // options, kSystem when a bind fails.
  static shm::Result<std::unique_ptr<Receiver>> create(ReceiverOptions options);
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;
  ~Receiver();  // shutdown()

  // The bound addresses, ports resolved: "127.0.0.1:40123", "[::1]:40123"; "" without HTTP.
  const std::string& udp_address() const noexcept { return udp_address_; }
  const std::string& http_address() const noexcept { return http_address_; }

  void start();
  // Stops receiving and serving, then writes every queued line and closes the file. Idempotent.
  void shutdown();

  // Decodes, tracks and queues one datagram (see the thread notes above).
  void handle_datagram(std::span<const std::uint8_t> bytes);

  ReceiverStats stats() const;
  // Prometheus text exposition format 0.0.4, every name prefixed shmstats_recv_.
  std::string metrics_text() const;
  // Event time to decode time of every event in an accepted datagram (aggregates carry no event
  // time and are not recorded).
  const EventLatency& latency() const noexcept { return latency_; }

 private:
  struct Sender {
    SequenceTracker tracker;
    std::uint64_t last_seen = 0;  // tick_ when it last sent
  };
  struct SenderSnapshot {
    std::uint64_t id = 0;
    std::uint64_t epoch = 0;
    std::uint64_t highest = 0;
    SequenceCounters counters;
  };

  explicit Receiver(ReceiverOptions options);
  shm::Result<void> bind_udp(const Endpoint& endpoint);
  shm::Result<void> bind_http(const Endpoint& endpoint);
  void receive_loop();
  Sender& sender_locked(std::uint64_t id);
  std::vector<SenderSnapshot> sender_snapshot(SequenceCounters& totals) const;
  void log_malformed(const proto::DecodeFailure& failure);

  const ReceiverOptions options_;
  LineWriter writer_;
  int udp_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: shutdown() wakes the receive thread
  std::string udp_address_;
  std::string http_address_;
  std::unique_ptr<common::HttpServer> http_;

  std::atomic<std::uint64_t> datagrams_{0};
  std::atomic<std::uint64_t> probes_{0};
  std::atomic<std::uint64_t> bytes_{0};
  std::atomic<std::uint64_t> events_{0};
  std::atomic<std::uint64_t> aggregates_{0};
  std::atomic<std::uint64_t> aggregated_values_{0};
  EventLatency latency_;
  std::atomic<std::uint64_t> receive_errors_{0};
  std::array<std::atomic<std::uint64_t>, proto::kDecodeErrorCount> malformed_{};

  mutable std::mutex senders_mutex_;
  std::unordered_map<std::uint64_t, Sender> senders_;  // guarded by senders_mutex_
  SequenceCounters forgotten_;                         // guarded: counters of evicted senders
  std::uint64_t senders_forgotten_ = 0;                // guarded
  std::uint64_t tick_ = 0;                             // guarded

  // Malformed-datagram lines on stderr: one per 10 s, the rest counted in the next.
  common::RateLimiter malformed_log_{1, std::chrono::seconds(10)};

  bool started_ = false;
  bool shut_down_ = false;
  std::thread receive_thread_;
};

}  // namespace shmstats::recv
