#include "collector/exporters/dogstatsd/dogstatsd.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <iterator>
#include <limits>
#include <utility>

namespace shmstats::collector {
namespace {

constexpr std::size_t kNoGroup = std::numeric_limits<std::size_t>::max();
constexpr std::size_t kGroupMember = kNoGroup - 1;  // a point packed into an earlier point's line

// The StatsD type of an event kind, or nullptr for a kind this exporter cannot express.
const char* type_of(shm::Kind kind) noexcept {
  switch (kind) {
    case shm::Kind::kCounter:
      return "c";
    case shm::Kind::kGauge:
    case shm::Kind::kGaugeDelta:  // a delta differs only by its sign
      return "g";
    case shm::Kind::kHistogram:
      return "h";
    case shm::Kind::kTiming:
      return "ms";
    case shm::Kind::kSet:
      return "s";
  }
  return nullptr;
}

// Kinds whose sample rate means something to a StatsD server; the same kinds may be packed as
// multiple values.
bool takes_rate(shm::Kind kind) noexcept {
  return kind == shm::Kind::kCounter || kind == shm::Kind::kHistogram || kind == shm::Kind::kTiming;
}

bool valid_rate(float rate) noexcept { return rate > 0.0F && rate <= 1.0F; }  // false for NaN

void append_number(std::string& out, double value) {
  // "{}" is the shortest text that reads back as the same double; -0 becomes 0.
  fmt::format_to(std::back_inserter(out), "{}", value == 0 ? 0.0 : value);
}

void append_delta(std::string& out, double value) {
  fmt::format_to(std::back_inserter(out), "{:+}", value == 0 ? 0.0 : value);
}

// A gauge set. Plain StatsD reads a leading '-' as a delta, so a negative value is first reset
// to 0; the Datadog agent takes the last of the two, the same value.
void append_gauge_set(std::string& out, std::string_view name, double value,
                      std::string_view tags) {
  if (value < 0) {
    out += name;
    out += ":0|g";
    out += tags;
    out += '\n';
  }
  out += name;
  out += ':';
  append_number(out, value);
  out += "|g";
  out += tags;
}

// The service name is not validated like tag values are: keep it from breaking the line.
void append_tag_value(std::string& out, std::string_view value) {
  for (const char c : value) {
    const bool breaks = c == '|' || c == ',' || static_cast<unsigned char>(c) < 0x20;
    out += breaks ? '_' : c;
  }
}

}  // namespace

std::size_t DogStatsdFormatter::GroupKeyHash::operator()(const GroupKey& k) const noexcept {
  std::size_t h = std::hash<const void*>{}(k.series);
  h ^= (static_cast<std::size_t>(k.kind) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  h ^= (static_cast<std::size_t>(std::bit_cast<std::uint32_t>(k.rate)) + 0x9e3779b97f4a7c15ULL +
        (h << 6) + (h >> 2));
  return h;
}

void DogStatsdFormatter::append_tags(std::string& out, const model::SeriesDef& series) const {
  const bool want_service = add_service_tag_ && !series.service.empty() &&
                            std::none_of(series.tags.begin(), series.tags.end(),
                                         [](const auto& tag) { return tag.first == "service"; });
  if (series.tags.empty() && !want_service) return;
  out += "|#";
  bool first = true;
  bool service_pending = want_service;
  auto separate = [&] {
    if (!first) out += ',';
    first = false;
  };
  auto add_service = [&] {
    separate();
    out += "service:";
    append_tag_value(out, series.service);
    service_pending = false;
  };
  // Series tags are sorted by key; the service tag goes in its sorted place.
  for (const auto& [key, value] : series.tags) {
    if (service_pending && key > "service") add_service();
    separate();
    out += key;
    if (!value.empty()) {
      out += ':';
      out += value;
    }
  }
  if (service_pending) add_service();
}

void DogStatsdFormatter::append_rate(std::string& out, shm::Kind kind, float rate) const {
  if (takes_rate(kind) && rate != 1.0F) fmt::format_to(std::back_inserter(out), "|@{}", rate);
}

void DogStatsdFormatter::close_datagram() {
  if (current_.empty()) return;
  datagrams_->push_back(std::move(current_));
  events_->push_back(current_events_);
  current_.clear();
  current_events_ = 0;
}

void DogStatsdFormatter::pack(std::string_view unit, std::uint64_t unit_events,
                              DogStatsdFormatStats& stats) {
  if (unit.size() > max_payload_) {
    if (unit.size() > kDogStatsdMaxDatagramBytes) {
      stats.too_large += unit_events;
      return;
    }
    close_datagram();
    datagrams_->emplace_back(unit);
    events_->push_back(unit_events);
    stats.formatted += unit_events;
    return;
  }
  if (!current_.empty() && current_.size() + 1 + unit.size() > max_payload_) close_datagram();
  if (!current_.empty()) current_ += '\n';
  current_ += unit;
  current_events_ += unit_events;
  stats.formatted += unit_events;
}

DogStatsdFormatStats DogStatsdFormatter::format(const Batch& batch,
                                                std::vector<std::string>& datagrams,
                                                std::vector<std::uint64_t>& events) {
  datagrams.clear();
  events.clear();
  datagrams_ = &datagrams;
  events_ = &events;
  current_.clear();
  current_events_ = 0;
  DogStatsdFormatStats stats;
  if (multi_value_) {
    format_point_groups(batch, stats);
  } else {
    format_points(batch.points, stats);
  }
  for (const model::Aggregate& a : batch.aggregates) format_aggregate(a, stats);
  close_datagram();
  datagrams_ = nullptr;
  events_ = nullptr;
  return stats;
}

void DogStatsdFormatter::format_points(std::span<const model::Point> points,
                                       DogStatsdFormatStats& stats) {
  for (const model::Point& p : points) {
    const char* type = p.series == nullptr ? nullptr : type_of(p.kind);
    if (type == nullptr) {
      ++stats.unsupported_kind;
      continue;
    }
    if (!std::isfinite(p.value)) {
      ++stats.non_finite;
      continue;
    }
    if (takes_rate(p.kind) && !valid_rate(p.sample_rate)) {
      ++stats.invalid_rate;
      continue;
    }
    suffix_.clear();
    append_rate(suffix_, p.kind, p.sample_rate);
    append_tags(suffix_, *p.series);
    const std::string& name = p.series->name;
    unit_.clear();
    switch (p.kind) {
      case shm::Kind::kGauge:
        append_gauge_set(unit_, name, p.value, suffix_);
        break;
      case shm::Kind::kGaugeDelta:
        unit_ += name;
        unit_ += ':';
        append_delta(unit_, p.value);
        unit_ += "|g";
        unit_ += suffix_;
        break;
      default:
        unit_ += name;
        unit_ += ':';
        append_number(unit_, p.value);
        unit_ += '|';
        unit_ += type;
        unit_ += suffix_;
        break;
    }
    pack(unit_, 1, stats);
  }
}

void DogStatsdFormatter::format_point_groups(const Batch& batch, DogStatsdFormatStats& stats) {
  const auto& points = batch.points;
  group_of_key_.clear();
  group_of_point_.assign(points.size(), kNoGroup);
  std::size_t groups = 0;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const model::Point& p = points[i];
    if (p.series == nullptr || !takes_rate(p.kind) || !std::isfinite(p.value) ||
        !valid_rate(p.sample_rate)) {
      continue;  // formatted (or dropped with its reason) on its own below
    }
    const auto [it, inserted] =
        group_of_key_.try_emplace(GroupKey{p.series, p.kind, p.sample_rate}, groups);
    if (inserted) {
      if (group_values_.size() <= groups) group_values_.emplace_back();
      group_values_[groups].clear();
      ++groups;
      group_of_point_[i] = it->second;
    } else {
      group_of_point_[i] = kGroupMember;
    }
    group_values_[it->second].push_back(p.value);
  }

  for (std::size_t i = 0; i < points.size(); ++i) {
    const std::size_t group = group_of_point_[i];
    if (group == kGroupMember) continue;
    const model::Point& p = points[i];
    if (group == kNoGroup) {
      format_points(std::span(&p, 1), stats);
      continue;
    }
    suffix_.clear();
    suffix_ += '|';
    suffix_ += type_of(p.kind);
    append_rate(suffix_, p.kind, p.sample_rate);
    append_tags(suffix_, *p.series);
    const std::string& name = p.series->name;
    unit_.clear();
    std::uint64_t in_line = 0;
    for (const double value : group_values_[group]) {
      const std::size_t before = unit_.size();
      if (in_line == 0) {
        unit_ += name;
      }
      unit_ += ':';
      append_number(unit_, value);
      if (in_line > 0 && unit_.size() + suffix_.size() > max_payload_) {
        // This value would push the line past the limit: close the line without it.
        unit_.resize(before);
        unit_ += suffix_;
        pack(unit_, in_line, stats);
        unit_.clear();
        unit_ += name;
        unit_ += ':';
        append_number(unit_, value);
        in_line = 0;
      }
      ++in_line;
    }
    unit_ += suffix_;
    pack(unit_, in_line, stats);
  }
}

void DogStatsdFormatter::format_aggregate(const model::Aggregate& a, DogStatsdFormatStats& stats) {
  if (a.series == nullptr) {
    ++stats.unsupported_kind;
    return;
  }
  if (a.count == 0) {
    ++stats.empty;
    return;
  }
  suffix_.clear();
  append_tags(suffix_, *a.series);
  const std::string& name = a.series->name;
  unit_.clear();
  switch (a.series->kind) {
    case shm::Kind::kCounter:
      if (!std::isfinite(a.sum)) break;
      unit_ += name;
      unit_ += ':';
      append_number(unit_, a.sum);
      unit_ += "|c";
      unit_ += suffix_;
      break;
    case shm::Kind::kGauge:
      if (!std::isfinite(a.last)) break;
      append_gauge_set(unit_, name, a.last, suffix_);
      break;
    case shm::Kind::kGaugeDelta:
      if (!std::isfinite(a.sum)) break;
      unit_ += name;
      unit_ += ':';
      append_delta(unit_, a.sum);
      unit_ += "|g";
      unit_ += suffix_;
      break;
    case shm::Kind::kHistogram:
    case shm::Kind::kTiming: {
      if (!std::isfinite(a.sum) || !std::isfinite(a.min) || !std::isfinite(a.max)) break;
      fmt::format_to(std::back_inserter(unit_), "{}.folded_sum:", name);
      append_number(unit_, a.sum);
      unit_ += "|c";
      unit_ += suffix_;
      fmt::format_to(std::back_inserter(unit_), "\n{}.folded_count:{}|c{}\n", name, a.count,
                     suffix_);
      append_gauge_set(unit_, name + ".folded_min", a.min, suffix_);
      unit_ += '\n';
      append_gauge_set(unit_, name + ".folded_max", a.max, suffix_);
      break;
    }
    case shm::Kind::kSet:
    default:
      ++stats.unsupported_kind;
      return;
  }
  if (unit_.empty()) {
    ++stats.non_finite;
    return;
  }
  pack(unit_, 1, stats);
}

shm::Result<std::unique_ptr<DogStatsdExporter>> DogStatsdExporter::create(
    DogStatsdOptions options) {
  if (options.max_payload_bytes < kDogStatsdMinPayloadBytes ||
      options.max_payload_bytes > kDogStatsdMaxDatagramBytes) {
    return shm::Error{
        shm::Errc::kInvalidOptions,
        fmt::format("exporter dogstatsd: max_payload_bytes is {}; it must be {} to {}",
                    options.max_payload_bytes, kDogStatsdMinPayloadBytes,
                    kDogStatsdMaxDatagramBytes)};
  }
  auto socket = DatagramSocket::open(options.destination);
  if (!socket) {
    return shm::Error{socket.error().code, "exporter dogstatsd: " + socket.error().message};
  }
  // Not make_unique: the constructor is private.
  return std::unique_ptr<DogStatsdExporter>(
      new DogStatsdExporter(std::move(options), std::move(socket).value()));
}

SendResult DogStatsdExporter::send(const Batch& batch) {
  SendResult result;
  if (batch.size() == 0) return result;
  const auto now = BreakerSocket::Clock::now();
  if (!out_.try_admit(now)) {
    result.events_dropped = batch.size();
    drops_.breaker_open.fetch_add(batch.size(), std::memory_order_relaxed);
    return result;
  }
  const DogStatsdFormatStats stats = formatter_.format(batch, datagrams_, events_);
  drops_.non_finite.fetch_add(stats.non_finite, std::memory_order_relaxed);
  drops_.invalid_rate.fetch_add(stats.invalid_rate, std::memory_order_relaxed);
  drops_.unsupported_kind.fetch_add(stats.unsupported_kind, std::memory_order_relaxed);
  drops_.too_large.fetch_add(stats.too_large, std::memory_order_relaxed);
  result.events_dropped = stats.dropped();
  result.events_sent = stats.empty;
  if (datagrams_.empty()) {
    out_.cancel(now);
    return result;
  }
  const AttemptResult attempt = out_.send(datagrams_, now);
  const auto errors = out_.errors();
  for (std::size_t i = 0; i < datagrams_.size(); ++i) {
    if (errors[i] == 0) {
      result.events_sent += events_[i];
    } else {
      result.events_dropped += events_[i];
    }
  }
  result.requests = attempt.sent.sent;
  result.bytes = attempt.sent.bytes;
  result.send_errors = attempt.sent.failed + (attempt.pending_error != 0 ? 1 : 0);
  return result;
}

void DogStatsdExporter::describe_metrics(std::vector<ExporterSample>& out) const {
  const std::pair<const char*, const std::atomic<std::uint64_t>*> reasons[] = {
      {"non_finite", &drops_.non_finite},
      {"invalid_rate", &drops_.invalid_rate},
      {"unsupported_kind", &drops_.unsupported_kind},
      {"too_large", &drops_.too_large},
      {"breaker_open", &drops_.breaker_open},
  };
  for (const auto& [reason, counter] : reasons) {
    out.push_back(ExporterSample{"shmstats_exporter_dogstatsd_dropped_events_total",
                                 "counter",
                                 "Events the DogStatsD output dropped before sending, by reason.",
                                 {{"reason", reason}},
                                 static_cast<double>(counter->load(std::memory_order_relaxed))});
  }
}

}  // namespace shmstats::collector
