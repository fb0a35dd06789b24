#include "recv/receiver.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>

#include "common/endpoint.h"
#include "common/http_server.h"
#include "common/prometheus_text.h"
#include "recv/jsonl.h"
#include "recv/protobuf_log.h"

namespace shmstats::recv {
namespace {

// recvmmsg batch: room for the largest UDP payload each, so nothing is ever truncated.
constexpr std::size_t kBatchDatagrams = 16;
constexpr std::size_t kMaxUdpPayload = 65536;

using common::prometheus::MetricType;

shm::Error invalid(std::string message) {
  return shm::Error{shm::Errc::kInvalidOptions, std::move(message)};
}

shm::Error system_error(std::string message, int err) {
  return shm::Error{shm::Errc::kSystem, fmt::format("{}: {}", message, std::strerror(err))};
}

std::string format_endpoint(std::string_view host, std::uint16_t port) {
  return common::Endpoint{common::Endpoint::Type::kInet, std::string(host), port, {}}.text();
}

std::string sender_hex(std::uint64_t id) { return fmt::format("{:016x}", id); }

std::int64_t unix_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The receiver's families, each named shmstats_recv_<name>, on the common Prometheus writer.
class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_.family(full(name), type_of(type), help);
  }
  void sample(std::string_view name, std::uint64_t value) { out_.sample(full(name), value); }
  void sample(std::string_view name, std::string_view label, std::string_view label_value,
              std::uint64_t value) {
    out_.sample(full(name), {{label, label_value}}, value);
  }
  void sample_real(std::string_view name, double value) { out_.sample(full(name), value); }
  void single(std::string_view name, std::string_view type, std::string_view help,
              std::uint64_t value) {
    family(name, type, help);
    sample(name, value);
  }
  std::string take() { return out_.take(); }

 private:
  static std::string full(std::string_view name) { return fmt::format("shmstats_recv_{}", name); }
  static MetricType type_of(std::string_view type) {
    if (type == "gauge") return MetricType::kGauge;
    if (type == "histogram") return MetricType::kHistogram;
    return MetricType::kCounter;
  }
  common::prometheus::TextWriter out_;
};

}  // namespace

std::uint64_t ReceiverStats::malformed_total() const noexcept {
  std::uint64_t total = 0;
  for (const auto n : malformed) total += n;
  return total;
}

Receiver::Receiver(ReceiverOptions options)
    : options_(std::move(options)),
      writer_(WriterOptions{options_.jsonl, options_.queue_lines, std::chrono::milliseconds{50}}) {}

shm::Result<std::unique_ptr<Receiver>> Receiver::create(ReceiverOptions options) {
  auto udp = common::parse_listen_address(options.listen);
  if (!udp) return udp.error();
  Endpoint http_endpoint;
  if (!options.http.empty()) {
    auto http = common::parse_listen_address(options.http);
    if (!http) return http.error();
    http_endpoint = http.value();
  }
  if (options.jsonl.empty()) return invalid("the JSON Lines path is empty (use - for stdout)");
  if (options.queue_lines == 0) return invalid("the writer queue needs room for at least 1 line");
  if (options.max_senders == 0) return invalid("at least 1 sender must be tracked");
  const bool with_http = !options.http.empty();
  std::unique_ptr<Receiver> receiver(new Receiver(std::move(options)));
  if (auto bound = receiver->bind_udp(udp.value()); !bound) return bound.error();
  if (with_http) {
    if (auto bound = receiver->bind_http(http_endpoint); !bound) return bound.error();
  }
  receiver->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (receiver->wake_fd_ < 0) return system_error("eventfd", errno);
  return receiver;
}

shm::Result<void> Receiver::bind_udp(const Endpoint& endpoint) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(endpoint.port);
  if (const int rc = ::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return invalid(
        fmt::format("cannot resolve \"{}\": {}", common::shown(endpoint.host), gai_strerror(rc)));
  }
  int last_errno = 0;
  for (const addrinfo* ai = found; ai != nullptr && udp_fd_ < 0; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_errno = errno;
      continue;
    }
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      last_errno = errno;
      ::close(fd);
      continue;
    }
    udp_fd_ = fd;
  }
  ::freeaddrinfo(found);
  if (udp_fd_ < 0) {
    return system_error(
        fmt::format("cannot bind UDP {}", format_endpoint(endpoint.host, endpoint.port)),
        last_errno);
  }
  // A collector sends in bursts; a big buffer keeps the kernel from dropping them while this
  // thread is busy. SO_RCVBUFFORCE passes net.core.rmem_max (it needs CAP_NET_ADMIN); plain
  // SO_RCVBUF is capped by it. Whatever the kernel grants is fine.
  const int want = options_.receive_buffer_bytes;
  if (::setsockopt(udp_fd_, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) != 0) {
    (void)::setsockopt(udp_fd_, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(udp_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return system_error("getsockname", errno);
  }
  char text[INET6_ADDRSTRLEN] = "";
  std::uint16_t bound_port = 0;
  if (addr.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    bound_port = ntohs(v6->sin6_port);
  } else {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
    bound_port = ntohs(v4->sin_port);
  }
  udp_address_ = format_endpoint(text, bound_port);
  return shm::success();
}

shm::Result<void> Receiver::bind_http(const Endpoint& endpoint) {
  const auto routes = [this] {
    return std::vector<common::HttpRoute>{
        {"/metrics",
         [this] {
           return common::HttpResponse{200, metrics_text()};
         }},
        {"/health", [] {
           return common::HttpResponse{200, "{\"status\":\"ok\"}\n", "application/json"};
         }}};
  };
  // The server takes an address; a name is resolved here and its addresses tried in turn, the
  // first that binds serves (as for the UDP socket). Every failure is kSystem, as it always was.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string where = format_endpoint(endpoint.host, endpoint.port);
  const std::string port = std::to_string(endpoint.port);
  if (const int rc = ::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return shm::Error{shm::Errc::kSystem,
                      fmt::format("cannot bind HTTP {}: {}", where, gai_strerror(rc))};
  }
  shm::Error last{shm::Errc::kSystem, fmt::format("cannot bind HTTP {}: no address", where)};
  for (const addrinfo* ai = found; ai != nullptr && !http_; ai = ai->ai_next) {
    char address[NI_MAXHOST] = "";
    if (const int rc = ::getnameinfo(ai->ai_addr, ai->ai_addrlen, address, sizeof(address), nullptr,
                                     0, NI_NUMERICHOST);
        rc != 0) {
      last = shm::Error{shm::Errc::kSystem,
                        fmt::format("cannot bind HTTP {}: {}", where, gai_strerror(rc))};
      continue;
    }
    auto started = common::HttpServer::start(address, endpoint.port, routes());
    if (started) {
      http_ = std::move(started).value();
    } else {
      last = shm::Error{shm::Errc::kSystem, started.error().message};
    }
  }
  ::freeaddrinfo(found);
  if (!http_) return last;
  http_address_ = format_endpoint(endpoint.host, http_->port());
  return shm::success();
}

Receiver::~Receiver() {
  shutdown();
  if (udp_fd_ >= 0) ::close(udp_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Receiver::start() {
  if (started_ || shut_down_) return;
  started_ = true;
  receive_thread_ = std::thread([this] { receive_loop(); });
}

void Receiver::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (receive_thread_.joinable()) {
    const std::uint64_t one = 1;
    if (::write(wake_fd_, &one, sizeof(one)) < 0) {
      std::fprintf(stderr, "shmstats-recv: waking the receive thread failed: %s\n",
                   std::strerror(errno));
    }
    receive_thread_.join();
  }
  // Closes the listener and every connection, a scraper's idle keep-alive among them.
  if (http_) http_->stop();
  writer_.close();
}

void Receiver::receive_loop() {
  std::vector<std::uint8_t> buffers(kBatchDatagrams * kMaxUdpPayload);
  std::array<iovec, kBatchDatagrams> iovecs{};
  std::array<mmsghdr, kBatchDatagrams> messages{};
  for (std::size_t i = 0; i < kBatchDatagrams; ++i) {
    iovecs[i].iov_base = buffers.data() + i * kMaxUdpPayload;
    iovecs[i].iov_len = kMaxUdpPayload;
    messages[i].msg_hdr.msg_iov = &iovecs[i];
    messages[i].msg_hdr.msg_iovlen = 1;
  }
  std::array<pollfd, 2> fds{pollfd{udp_fd_, POLLIN, 0}, pollfd{wake_fd_, POLLIN, 0}};
  for (;;) {
    const int ready = ::poll(fds.data(), fds.size(), -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      receive_errors_.fetch_add(1, std::memory_order_relaxed);
      std::fprintf(stderr, "shmstats-recv: poll: %s\n", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    // Drain what is queued, a batch at a time, then poll again (which also sees a shutdown).
    for (;;) {
      const int n = ::recvmmsg(udp_fd_, messages.data(), kBatchDatagrams, MSG_DONTWAIT, nullptr);
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          receive_errors_.fetch_add(1, std::memory_order_relaxed);
        }
        break;
      }
      for (int i = 0; i < n; ++i) {
        const auto index = static_cast<std::size_t>(i);
        handle_datagram({buffers.data() + index * kMaxUdpPayload, messages[index].msg_len});
      }
      if (static_cast<std::size_t>(n) < kBatchDatagrams) break;
    }
  }
}

Receiver::Sender& Receiver::sender_locked(std::uint64_t id) {
  ++tick_;
  if (auto it = senders_.find(id); it != senders_.end()) {
    it->second.last_seen = tick_;
    return it->second;
  }
  if (senders_.size() >= options_.max_senders) {
    // Forget the sender heard from least recently; its counts stay in the totals.
    auto oldest = std::min_element(
        senders_.begin(), senders_.end(),
        [](const auto& a, const auto& b) { return a.second.last_seen < b.second.last_seen; });
    forgotten_ += oldest->second.tracker.counters();
    ++senders_forgotten_;
    senders_.erase(oldest);
  }
  auto& sender = senders_[id];
  sender.last_seen = tick_;
  return sender;
}

void Receiver::handle_datagram(std::span<const std::uint8_t> bytes) {
  datagrams_.fetch_add(1, std::memory_order_relaxed);
  if (bytes.empty()) {
    // A collector's circuit breaker asking whether anyone listens (no data, nothing malformed).
    probes_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  bytes_.fetch_add(bytes.size(), std::memory_order_relaxed);
  proto::DecodedDatagram datagram;
  proto::DecodeFailure failure{proto::DecodeError::kCount, {}};
  if (!proto::decode(bytes, datagram, failure)) {
    const auto reason = static_cast<std::size_t>(failure.reason);
    if (reason < malformed_.size()) malformed_[reason].fetch_add(1, std::memory_order_relaxed);
    log_malformed(failure);
    return;
  }
  SequenceVerdict verdict;
  {
    const std::lock_guard lock(senders_mutex_);
    verdict = sender_locked(datagram.header.sender_id)
                  .tracker.observe(datagram.header.sender_epoch, datagram.header.sequence);
  }
  if (!accepted(verdict)) return;
  events_.fetch_add(datagram.points.size(), std::memory_order_relaxed);
  aggregates_.fetch_add(datagram.aggregates.size(), std::memory_order_relaxed);
  std::uint64_t folded = 0;
  for (const auto& a : datagram.aggregates) folded += a.count;
  aggregated_values_.fetch_add(folded, std::memory_order_relaxed);
  // One clock read per datagram: its events were decoded at the same moment.
  const std::int64_t now = unix_now_ns();
  // Saturating: a hostile event time (e.g. INT64_MIN) would overflow a plain subtraction.
  for (const auto& e : datagram.points) {
    std::int64_t latency_ns = 0;
    if (__builtin_sub_overflow(now, e.time_unix_ns, &latency_ns)) {
      latency_ns = e.time_unix_ns < 0 ? std::numeric_limits<std::int64_t>::max()
                                      : std::numeric_limits<std::int64_t>::min();
    }
    latency_.record_ns(latency_ns);
  }
  std::string text;
  // A line is 200 to 300 bytes for typical series: one allocation instead of a dozen regrowths.
  constexpr std::size_t kLineBytesEstimate = 256;
  text.reserve((datagram.points.size() + datagram.aggregates.size()) * kLineBytesEstimate);
  const std::size_t lines = append_lines(text, datagram);
  if (lines > 0) (void)writer_.try_push(std::move(text), lines);  // a refusal is counted there
}

void Receiver::log_malformed(const proto::DecodeFailure& failure) {
  const common::RateLimiter::Decision decision = malformed_log_.admit();
  if (!decision.write) return;
  std::string line = fmt::format("shmstats-recv: malformed datagram ({}): {}",
                                 proto::to_string(failure.reason), failure.message);
  if (decision.suppressed_before > 0) {
    line += fmt::format(" ({} more since the last report)", decision.suppressed_before);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

std::vector<Receiver::SenderSnapshot> Receiver::sender_snapshot(SequenceCounters& totals) const {
  std::vector<SenderSnapshot> out;
  const std::lock_guard lock(senders_mutex_);
  out.reserve(senders_.size());
  totals = forgotten_;
  for (const auto& [id, sender] : senders_) {
    const auto& tracker = sender.tracker;
    out.push_back(SenderSnapshot{id, tracker.epoch(), tracker.highest(), tracker.counters()});
    totals += tracker.counters();
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

ReceiverStats Receiver::stats() const {
  ReceiverStats s;
  s.datagrams = datagrams_.load(std::memory_order_relaxed);
  s.probes = probes_.load(std::memory_order_relaxed);
  s.bytes = bytes_.load(std::memory_order_relaxed);
  s.events = events_.load(std::memory_order_relaxed);
  s.aggregates = aggregates_.load(std::memory_order_relaxed);
  s.aggregated_values = aggregated_values_.load(std::memory_order_relaxed);
  s.receive_errors = receive_errors_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < malformed_.size(); ++i) {
    s.malformed[i] = malformed_[i].load(std::memory_order_relaxed);
  }
  s.senders = sender_snapshot(s.sequence).size();
  {
    const std::lock_guard lock(senders_mutex_);
    s.senders_forgotten = senders_forgotten_;
  }
  s.writer = writer_.stats();
  return s;
}

std::string Receiver::metrics_text() const {
  const ReceiverStats s = stats();
  SequenceCounters totals;
  const auto senders = sender_snapshot(totals);
  Exposition out;
  out.single("datagrams_total", "counter", "UDP datagrams received, valid or not.", s.datagrams);
  out.single("probes_total", "counter",
             "Empty datagrams received: collectors' circuit breakers probing (not malformed).",
             s.probes);
  out.single("bytes_total", "counter", "Bytes of UDP datagrams received.", s.bytes);
  out.single("events_total", "counter", "Events in accepted datagrams.", s.events);
  out.single("aggregates_total", "counter", "Aggregates (folded values) in accepted datagrams.",
             s.aggregates);
  out.single("aggregated_values_total", "counter",
             "Values the producers folded, summed over the aggregates of accepted datagrams.",
             s.aggregated_values);
  out.family("event_latency_seconds", "histogram",
             "From an event's producer timestamp to its decoding here (events, not aggregates).");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i + 1 < EventLatency::kBuckets; ++i) {
    cumulative += latency_.bucket(i);
    out.sample("event_latency_seconds_bucket", "le",
               fmt::format("{}", static_cast<double>(EventLatency::upper_bound_ns(i)) * 1e-9),
               cumulative);
  }
  cumulative += latency_.bucket(EventLatency::kBuckets - 1);
  out.sample("event_latency_seconds_bucket", "le", "+Inf", cumulative);
  out.sample_real("event_latency_seconds_sum", static_cast<double>(latency_.sum_ns()) * 1e-9);
  out.sample("event_latency_seconds_count", cumulative);
  out.family("malformed_total", "counter", "Datagrams rejected by the decoder, by reason.");
  for (std::size_t i = 0; i < proto::kDecodeErrorCount; ++i) {
    out.sample("malformed_total", "reason", proto::to_string(static_cast<proto::DecodeError>(i)),
               s.malformed[i]);
  }
  out.single("receive_errors_total", "counter", "Failed recvmmsg() calls.", s.receive_errors);
  out.single("protobuf_log_messages_total", "counter",
             "Messages libprotobuf logged while parsing (e.g. invalid UTF-8 in a string field).",
             protobuf_log_messages());
  out.single("protobuf_log_suppressed_total", "counter",
             "Of those, the ones not written to stderr (at most one line per 10 s is).",
             protobuf_log_suppressed());
  out.single("lost_total", "gauge",
             "Datagrams missing from sender sequences. Provisional: it goes down when a missing "
             "datagram arrives late.",
             totals.lost);
  out.single("duplicates_total", "counter", "Datagrams seen before, dropped.", totals.duplicates);
  out.single("reordered_total", "counter",
             "Datagrams that arrived after a later one, inside the duplicate window.",
             totals.reordered);
  out.single("late_total", "counter",
             "Datagrams that arrived after the duplicate window had passed them; written.",
             totals.late);
  out.single("sender_restarts_total", "counter", "Senders seen with a new, higher epoch.",
             totals.restarts);
  out.single("stale_epoch_total", "counter",
             "Datagrams from an older epoch of a sender that has restarted, dropped.",
             totals.stale_epoch);
  out.single("lines_written_total", "counter", "JSON Lines written.", s.writer.lines_written);
  out.single("write_errors_total", "counter", "Failed open() or write() calls on the output.",
             s.writer.write_errors);
  out.single("write_failed_lines_total", "counter", "JSON Lines lost to write errors.",
             s.writer.failed_lines);
  out.single("write_queue_full_total", "counter",
             "JSON Lines dropped because the writer had fallen behind.", s.writer.queue_full_lines);
  out.single("write_queue_depth", "gauge", "JSON Lines waiting for the writer.",
             s.writer.queue_depth_lines);
  out.single("senders", "gauge", "Senders being tracked.", senders.size());
  out.single("senders_forgotten_total", "counter",
             "Senders no longer tracked because more were active than --max-senders.",
             s.senders_forgotten);

  struct PerSender {
    const char* name;
    const char* type;
    const char* help;
    std::uint64_t (*value)(const SenderSnapshot&);
  };
  static constexpr PerSender kPerSender[] = {
      {"sender_datagrams_total", "counter", "Datagrams accepted from the sender.",
       [](const SenderSnapshot& x) { return x.counters.accepted; }},
      {"sender_lost", "gauge", "Datagrams missing from the sender's sequence (provisional).",
       [](const SenderSnapshot& x) { return x.counters.lost; }},
      {"sender_duplicates_total", "counter", "Duplicate datagrams from the sender.",
       [](const SenderSnapshot& x) { return x.counters.duplicates; }},
      {"sender_reordered_total", "counter", "Reordered datagrams from the sender.",
       [](const SenderSnapshot& x) { return x.counters.reordered; }},
      {"sender_late_total", "counter", "Late datagrams from the sender.",
       [](const SenderSnapshot& x) { return x.counters.late; }},
      {"sender_epoch_changes_total", "counter", "Restarts (new epochs) of the sender.",
       [](const SenderSnapshot& x) { return x.counters.restarts; }},
      {"sender_stale_epoch_total", "counter", "Datagrams of an old epoch of the sender.",
       [](const SenderSnapshot& x) { return x.counters.stale_epoch; }},
      {"sender_epoch", "gauge", "The sender's current epoch.",
       [](const SenderSnapshot& x) { return x.epoch; }},
      {"sender_highest_sequence", "gauge", "The highest sequence seen in the current epoch.",
       [](const SenderSnapshot& x) { return x.highest; }},
  };
  if (!senders.empty()) {
    for (const auto& metric : kPerSender) {
      out.family(metric.name, metric.type, metric.help);
      for (const auto& sender : senders) {
        out.sample(metric.name, "sender", sender_hex(sender.id), metric.value(sender));
      }
    }
  }
  return out.take();
}

}  // namespace shmstats::recv
