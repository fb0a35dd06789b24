// The DogStatsD exporter: StatsD lines with DogStatsD tags, for the Datadog agent, Vector,
// Telegraf, statsd_exporter and Etsy StatsD, over UDP or a Unix datagram socket, behind a circuit
// breaker.
//
// Lines: `name:value|type[|@rate][|#k:v,k2:v2]`
//   counter c, gauge g, gauge delta g with an explicit sign (`+3`, `-3`), histogram h, timing ms,
//   set s. `|@rate` only for c, h and ms and only when the sample rate is not 1 (a rate outside
//   (0, 1] is dropped as invalid_rate). Tags are the series tags, sorted by key, plus
//   `service:<svc>` when add_service_tag is on and the series has no `service` tag of its own.
//   A gauge set to a negative value is sent as `name:0|g` then `name:-3|g` in one datagram: plain
//   StatsD reads a leading sign as a delta. Numbers use the shortest form that reads back to the
//   same double; NaN and infinities cannot be sent and are dropped as non_finite.
//
// Aggregates (values the producer folded when its ring was full) map to lines that keep every
// number exact:
//   counter           `name:<sum>|c`
//   gauge             `name:<last>|g`          (the last value set)
//   gauge delta       `name:<+sum>|g`          (series registered as deltas)
//   histogram/timing  `name.folded_sum:<sum>|c`, `name.folded_count:<count>|c`,
//                     `name.folded_min:<min>|g`, `name.folded_max:<max>|g`
//   set               not foldable; dropped as unsupported_kind
// Re-emitting a mean as a timing with `@1/count` would look natural but loses the distribution
// and rounds the count, so it is not done. An aggregate with count 0 carries nothing and is
// counted sent.
//
// Packing: lines of one send are joined by '\n' into datagrams of at most max_payload_bytes; the
// lines of one event (the two-line negative gauge, the four folded lines) never straddle two
// datagrams. A unit longer than the limit goes alone in its own datagram, or is dropped as
// too_large above kMaxDatagramBytes.
//
// multi_value (DogStatsD protocol 1.1, Datadog agent >= 6.25/7.25): points of the same series,
// kind and rate in one send become one line `name:1:2:3|ms|@0.5|#...`, for c, h and ms only
// (for gauges only the last value matters; sets are excluded by the protocol). Off by default:
// Etsy StatsD 0.9 reads such a line as bad.
//
// Concurrency: an Exporter; its runner's thread calls send. drops(), circuit(), breaker() and
// describe_metrics() may be read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "collector/exporter.h"
#include "collector/exporters/breaker_socket.h"
#include "proto/datagram.h"
#include "shm/layout.h"
#include "shm/result.h"

namespace shmstats::collector {

inline constexpr std::size_t kDogStatsdDefaultPayloadBytes = 1432;  // 1500 MTU, with a margin
inline constexpr std::size_t kDogStatsdMinPayloadBytes = 256;
inline constexpr std::size_t kDogStatsdMaxDatagramBytes = 65000;

struct DogStatsdOptions {
  std::string name = "dogstatsd";              // the instance name (exporter= label)
  std::string destination = "127.0.0.1:8125";  // "HOST:PORT", "[IPV6]:PORT" or "unix:///path"
  std::size_t max_payload_bytes = kDogStatsdDefaultPayloadBytes;  // 256..65000
  bool add_service_tag = true;
  bool multi_value = false;
  std::uint32_t breaker_failures = 5;            // consecutive failed batches that open the breaker
  std::chrono::milliseconds breaker_open{2000};  // how long an open breaker drops batches
};

// What formatting one batch produced, in events (a point or an aggregate is one event).
struct DogStatsdFormatStats {
  std::uint64_t formatted = 0;  // events in the datagrams
  std::uint64_t empty = 0;      // aggregates with count 0: nothing to send, nothing lost
  std::uint64_t non_finite = 0;
  std::uint64_t invalid_rate = 0;
  std::uint64_t unsupported_kind = 0;
  std::uint64_t too_large = 0;
  std::uint64_t dropped() const noexcept {
    return non_finite + invalid_rate + unsupported_kind + too_large;
  }
};

// Turns a batch into datagrams of StatsD lines. Not thread-safe.
class DogStatsdFormatter {
 public:
  DogStatsdFormatter(std::size_t max_payload_bytes, bool add_service_tag, bool multi_value)
      : max_payload_(max_payload_bytes),
        add_service_tag_(add_service_tag),
        multi_value_(multi_value) {}

  // Replaces the contents of `datagrams`, and of `events` with the events each datagram carries.
  DogStatsdFormatStats format(const Batch& batch, std::vector<std::string>& datagrams,
                              std::vector<std::uint64_t>& events);

 private:
  struct GroupKey {
    const model::SeriesDef* series;
    shm::Kind kind;
    float rate;
    bool operator==(const GroupKey&) const = default;
  };
  struct GroupKeyHash {
    std::size_t operator()(const GroupKey& k) const noexcept;
  };

  void format_points(std::span<const model::Point> points, DogStatsdFormatStats& stats);
  void format_point_groups(const Batch& batch, DogStatsdFormatStats& stats);
  void format_aggregate(const model::Aggregate& a, DogStatsdFormatStats& stats);
  // Appends `|#...` for the series (nothing if it has no tags and no service tag).
  void append_tags(std::string& out, const model::SeriesDef& series) const;
  void append_rate(std::string& out, shm::Kind kind, float rate) const;
  void pack(std::string_view unit, std::uint64_t unit_events, DogStatsdFormatStats& stats);
  void close_datagram();

  std::size_t max_payload_;
  bool add_service_tag_;
  bool multi_value_;
  std::vector<std::string>* datagrams_ = nullptr;
  std::vector<std::uint64_t>* events_ = nullptr;
  std::string current_;
  std::uint64_t current_events_ = 0;
  std::string unit_;
  std::string suffix_;
  // multi_value scratch, reused between sends
  std::unordered_map<GroupKey, std::size_t, GroupKeyHash> group_of_key_;
  std::vector<std::vector<double>> group_values_;
  std::vector<std::size_t> group_of_point_;
};

// Events dropped before sending, by reason (cumulative; readable from any thread).
struct DogStatsdDrops {
  std::atomic<std::uint64_t> non_finite{0};
  std::atomic<std::uint64_t> invalid_rate{0};
  std::atomic<std::uint64_t> unsupported_kind{0};
  std::atomic<std::uint64_t> too_large{0};
  std::atomic<std::uint64_t> breaker_open{0};
};

class DogStatsdExporter final : public Exporter {
 public:
  static shm::Result<std::unique_ptr<DogStatsdExporter>> create(DogStatsdOptions options);

  const std::string& name() const override { return name_; }
  // While the breaker is open the batch is dropped (events_dropped). Events in datagrams the
  // kernel refused are dropped and counted in send_errors; an asynchronous error (ICMP) is a send
  // error but cannot be tied to a datagram, so its events stay counted as sent.
  SendResult send(const Batch& batch) override;
  BreakerStatus breaker() const override { return out_.status(); }
  // shmstats_exporter_dogstatsd_dropped_events_total{reason=...}: the drops() below.
  void describe_metrics(std::vector<ExporterSample>& out) const override;

  const CircuitBreaker& circuit() const noexcept { return out_.breaker(); }
  const DogStatsdDrops& drops() const noexcept { return drops_; }
  const DogStatsdOptions& options() const noexcept { return options_; }

 private:
  DogStatsdExporter(DogStatsdOptions options, DatagramSocket socket)
      : name_(options.name),
        options_(std::move(options)),
        formatter_(options_.max_payload_bytes, options_.add_service_tag, options_.multi_value),
        out_(name_, std::move(socket), options_.breaker_failures, options_.breaker_open) {}

  std::string name_;
  DogStatsdOptions options_;
  DogStatsdFormatter formatter_;
  BreakerSocket out_;
  DogStatsdDrops drops_;
  std::vector<std::string> datagrams_;
  std::vector<std::uint64_t> events_;
};

}  // namespace shmstats::collector
