#include "proto/datagram.h"

#include <fmt/format.h>

#include <boost/crc.hpp>
#include <cstring>
#include <utility>

#include "proto/shmstats.pb.h"
#include "shm/series.h"

namespace shmstats::proto {
namespace {

using Crc32c = boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true>;

std::size_t varint_bytes(std::uint64_t v) noexcept {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}
std::size_t zigzag_bytes(std::int64_t v) noexcept {
  return varint_bytes((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
}
// A length-delimited field of `len` bytes with a one-byte tag.
std::size_t field_bytes(std::size_t len) noexcept { return 1 + varint_bytes(len) + len; }

void put_u16(std::string& out, std::size_t at, std::uint16_t v) {
  for (int i = 0; i < 2; ++i)
    out[at + static_cast<std::size_t>(i)] = static_cast<char>(v >> (8 * i));
}
void put_u32(std::string& out, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out[at + static_cast<std::size_t>(i)] = static_cast<char>(v >> (8 * i));
}
void put_u64(std::string& out, std::size_t at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out[at + static_cast<std::size_t>(i)] = static_cast<char>(v >> (8 * i));
}
std::uint64_t get_le(std::span<const std::uint8_t> b, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | b[at + static_cast<std::size_t>(i)];
  return v;
}

// Running exact size of the Batch being filled, so that adding an item is O(1).
class BatchSizer {
 public:
  explicit BatchSizer(std::size_t host_bytes) : host_bytes_(host_bytes) {}

  std::size_t total() const noexcept { return total_with(0, 0, 0, 0, 0, false, false); }

  // Size if one more event were added (with `new_def_bytes` of a definition if the series is new
  // to this batch).
  std::size_t with_event(std::size_t new_def_bytes, std::uint32_t index, std::int64_t delta_ns,
                         bool rate_needed, bool kind_needed) const noexcept {
    return total_with(new_def_bytes, 1, varint_bytes(index), zigzag_bytes(delta_ns), 0, rate_needed,
                      kind_needed);
  }
  std::size_t with_aggregate(std::size_t new_def_bytes,
                             std::size_t aggregate_bytes) const noexcept {
    return total_with(new_def_bytes, 0, 0, 0, aggregate_bytes, false, false);
  }

  void add_def(std::size_t def_bytes) noexcept { defs_ += field_bytes(def_bytes); }
  void add_event(std::uint32_t index, std::int64_t delta_ns, bool rate_needed,
                 bool kind_needed) noexcept {
    ++events_;
    index_bytes_ += varint_bytes(index);
    delta_bytes_ += zigzag_bytes(delta_ns);
    rates_ = rates_ || rate_needed;
    kinds_ = kinds_ || kind_needed;
  }
  void add_aggregate(std::size_t bytes) noexcept { aggregates_ += field_bytes(bytes); }
  void set_first_time(std::int64_t t) noexcept { first_time_ = t; }

 private:
  std::size_t total_with(std::size_t new_def, std::size_t more_events, std::size_t more_index,
                         std::size_t more_delta, std::size_t more_aggregate, bool rate_needed,
                         bool kind_needed) const noexcept {
    const std::size_t events = events_ + more_events;
    std::size_t n = defs_ + (new_def != 0 ? field_bytes(new_def) : 0) + aggregates_ +
                    (more_aggregate != 0 ? field_bytes(more_aggregate) : 0);
    if (events > 0) {
      n += field_bytes(index_bytes_ + more_index);
      n += field_bytes(8 * events);
      n += field_bytes(delta_bytes_ + more_delta);
      if (rates_ || rate_needed) n += field_bytes(4 * events);
      if (kinds_ || kind_needed) n += field_bytes(events);  // kinds < 128: one byte each
    }
    if (first_time_ != 0) n += 1 + varint_bytes(static_cast<std::uint64_t>(first_time_));
    if (host_bytes_ > 0) n += field_bytes(host_bytes_);
    return n;
  }

  std::size_t host_bytes_;
  std::size_t defs_ = 0;
  std::size_t aggregates_ = 0;
  std::size_t events_ = 0;
  std::size_t index_bytes_ = 0;
  std::size_t delta_bytes_ = 0;
  bool rates_ = false;
  bool kinds_ = false;
  std::int64_t first_time_ = 0;
};

void fill_def(const SeriesDef& def, wire::SeriesDef& out) {
  out.set_name(def.name);
  out.set_service(def.service);
  out.set_kind(static_cast<wire::Kind>(def.kind));
  for (const auto& [k, v] : def.tags) {
    auto* t = out.add_tags();
    t->set_key(k);
    t->set_value(v);
  }
}

std::size_t aggregate_bytes(std::uint32_t index, const Aggregate& a) {
  wire::Aggregate msg;
  msg.set_series(index);
  msg.set_count(a.count);
  msg.set_sum(a.sum);
  msg.set_min(a.min);
  msg.set_max(a.max);
  msg.set_last(a.last);
  msg.set_time_unix_ns(a.time_unix_ns);
  return msg.ByteSizeLong();
}

}  // namespace

namespace detail {

std::uint32_t crc32c_table(const void* data, std::size_t size) noexcept {
  Crc32c crc;
  crc.process_bytes(data, size);
  return crc.checksum();
}

#if defined(__x86_64__)
namespace {
// The crc32 instruction is CRC-32C, reflected, without the initial value and final xor, which
// are applied here as the table version does.
[[gnu::target("sse4.2")]] std::uint32_t crc32c_sse42(const void* data, std::size_t size) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t crc = 0xFFFFFFFFU;
  for (; size >= 8; size -= 8, p += 8) {
    std::uint64_t word;
    std::memcpy(&word, p, sizeof(word));
    crc = __builtin_ia32_crc32di(crc, word);
  }
  auto crc32 = static_cast<std::uint32_t>(crc);
  for (; size > 0; --size, ++p) crc32 = __builtin_ia32_crc32qi(crc32, *p);
  return crc32 ^ 0xFFFFFFFFU;
}
}  // namespace

bool crc32c_hardware_available() noexcept {
  static const bool available = __builtin_cpu_supports("sse4.2") != 0;
  return available;
}
#else
bool crc32c_hardware_available() noexcept { return false; }
#endif

}  // namespace detail

std::uint32_t crc32c(const void* data, std::size_t size) noexcept {
#if defined(__x86_64__)
  if (detail::crc32c_hardware_available()) return detail::crc32c_sse42(data, size);
#endif
  return detail::crc32c_table(data, size);
}

const char* to_string(DecodeError e) noexcept {
  switch (e) {
    case DecodeError::kTooShort:
      return "too_short";
    case DecodeError::kBadMagic:
      return "bad_magic";
    case DecodeError::kBadVersion:
      return "bad_version";
    case DecodeError::kBadHeader:
      return "bad_header";
    case DecodeError::kBadLength:
      return "bad_length";
    case DecodeError::kBadCrc:
      return "bad_crc";
    case DecodeError::kBadPayload:
      return "bad_payload";
    case DecodeError::kBadColumns:
      return "bad_columns";
    case DecodeError::kBadIndex:
      return "bad_index";
    case DecodeError::kBadSeries:
      return "bad_series";
    case DecodeError::kCount:
      break;
  }
  return "unknown";
}

shm::Result<Encoder> Encoder::create(std::uint64_t sender_id, std::uint64_t sender_epoch,
                                     std::size_t max_bytes, std::string host) {
  if (max_bytes < kMinDatagramBytes || max_bytes > kMaxDatagramBytesIpv4) {
    return shm::Error{shm::Errc::kInvalidOptions,
                      fmt::format("datagram size limit is {} bytes; it must be {} to {}", max_bytes,
                                  kMinDatagramBytes, kMaxDatagramBytesIpv4)};
  }
  if (host.size() > 255) {
    return shm::Error{shm::Errc::kInvalidOptions,
                      fmt::format("host name is {} bytes; the limit is 255", host.size())};
  }
  return Encoder(sender_id, sender_epoch, max_bytes, std::move(host));
}

Encoder::Encoder(std::uint64_t sender_id, std::uint64_t sender_epoch, std::size_t max_bytes,
                 std::string host)
    : sender_id_(sender_id),
      sender_epoch_(sender_epoch),
      max_bytes_(max_bytes),
      host_(std::move(host)) {}

std::size_t Encoder::def_bytes(const SeriesDef* def) {
  auto it = def_size_cache_.find(def);
  if (it != def_size_cache_.end()) return it->second;
  if (def_size_cache_.size() > 100'000) def_size_cache_.clear();  // bound the cache
  wire::SeriesDef msg;
  fill_def(*def, msg);
  const std::size_t n = msg.ByteSizeLong();
  def_size_cache_.emplace(def, n);
  return n;
}

EncodeStats Encoder::encode(std::span<const Point> points, std::span<const Aggregate> aggregates,
                            std::uint64_t send_time_unix_ns, std::vector<std::string>& out) {
  EncodeStats stats;
  const std::size_t budget = max_bytes_ - kHeaderBytes - kTrailerBytes;
  wire::Batch batch;
  BatchSizer sizer(host_.size());
  std::unordered_map<const SeriesDef*, std::uint32_t> index_of;
  std::int64_t last_time = 0;
  bool any_rate = false;
  bool any_kind = false;
  std::size_t items = 0;

  auto reset = [&] {
    batch.Clear();
    sizer = BatchSizer(host_.size());
    index_of.clear();
    any_rate = false;
    any_kind = false;
    items = 0;
  };
  auto flush = [&] {
    if (items == 0) return;
    if (!host_.empty()) batch.set_host(host_);
    const std::size_t payload = batch.ByteSizeLong();
    std::string dgram(kHeaderBytes + payload + kTrailerBytes, '\0');
    std::memcpy(dgram.data(), kMagicBytes, 4);
    dgram[4] = static_cast<char>(kFormatVersion);
    dgram[5] = 0;
    put_u16(dgram, 6, static_cast<std::uint16_t>(kHeaderBytes));
    put_u64(dgram, 8, sender_id_);
    put_u64(dgram, 16, sender_epoch_);
    put_u64(dgram, 24, sequence_++);
    put_u64(dgram, 32, send_time_unix_ns);
    put_u32(dgram, 40, static_cast<std::uint32_t>(payload));
    batch.SerializeToArray(dgram.data() + kHeaderBytes, static_cast<int>(payload));
    put_u32(dgram, kHeaderBytes + payload, crc32c(dgram.data(), kHeaderBytes + payload));
    stats.bytes += dgram.size();
    ++stats.datagrams;
    out.push_back(std::move(dgram));
    reset();
  };
  auto index_for = [&](const SeriesDef* def, std::size_t& new_def_bytes) -> std::uint32_t {
    auto it = index_of.find(def);
    if (it != index_of.end()) {
      new_def_bytes = 0;
      return it->second;
    }
    new_def_bytes = def_bytes(def);
    return static_cast<std::uint32_t>(index_of.size());
  };
  auto add_def = [&](const SeriesDef* def, std::size_t new_def_bytes) {
    if (new_def_bytes == 0) return;
    index_of.emplace(def, static_cast<std::uint32_t>(index_of.size()));
    fill_def(*def, *batch.add_series());
    sizer.add_def(new_def_bytes);
  };

  // Group the points by series, keeping each series' points in order (a counting sort).
  group_of_.clear();
  group_next_.clear();
  point_group_.resize(points.size());
  for (std::size_t i = 0; i < points.size(); ++i) {
    const auto [it, fresh] =
        group_of_.try_emplace(points[i].series, static_cast<std::uint32_t>(group_next_.size()));
    if (fresh) group_next_.push_back(0);
    point_group_[i] = it->second;
    ++group_next_[it->second];
  }
  std::uint32_t start = 0;
  for (auto& next : group_next_) start += std::exchange(next, start);
  order_.resize(points.size());
  for (std::size_t i = 0; i < points.size(); ++i) {
    order_[group_next_[point_group_[i]]++] = static_cast<std::uint32_t>(i);
  }

  for (const std::uint32_t k : order_) {
    const Point& p = points[k];
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::size_t new_def = 0;
      const std::uint32_t index = index_for(p.series, new_def);
      const bool first = batch.event_value_size() == 0;
      // Unsigned arithmetic: times further apart than int64 allows (an untrusted segment's
      // timestamps) wrap, and the decoder's wrapping sum restores them exactly.
      const std::int64_t delta =
          first ? 0
                : static_cast<std::int64_t>(static_cast<std::uint64_t>(p.time_unix_ns) -
                                            static_cast<std::uint64_t>(last_time));
      const bool rate_needed = p.sample_rate != 1.0F;
      const bool kind_needed = p.kind != p.series->kind;
      BatchSizer probe = sizer;
      if (first) probe.set_first_time(p.time_unix_ns);
      if (probe.with_event(new_def, index, delta, rate_needed, kind_needed) > budget) {
        if (items == 0) {
          ++stats.too_large;  // cannot fit even alone
          break;
        }
        flush();
        continue;
      }
      add_def(p.series, new_def);
      if (first) {
        batch.set_first_time_unix_ns(p.time_unix_ns);
        sizer.set_first_time(p.time_unix_ns);
      }
      // A column that becomes needed mid-batch is back-filled for the earlier events.
      if (rate_needed && !any_rate) {
        for (int i = 0; i < batch.event_value_size(); ++i) batch.add_event_sample_rate(1.0F);
        any_rate = true;
      }
      if (kind_needed && !any_kind) {
        for (int i = 0; i < batch.event_value_size(); ++i) {
          batch.add_event_kind(static_cast<wire::Kind>(
              batch.series(static_cast<int>(batch.event_series(i))).kind()));
        }
        any_kind = true;
      }
      batch.add_event_series(index);
      batch.add_event_value(p.value);
      batch.add_event_time_delta_ns(delta);
      if (any_rate) batch.add_event_sample_rate(p.sample_rate);
      if (any_kind) batch.add_event_kind(static_cast<wire::Kind>(p.kind));
      sizer.add_event(index, delta, rate_needed, kind_needed);
      last_time = p.time_unix_ns;
      ++items;
      ++stats.points;
      break;
    }
  }
  for (const Aggregate& a : aggregates) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::size_t new_def = 0;
      const std::uint32_t index = index_for(a.series, new_def);
      const std::size_t bytes = aggregate_bytes(index, a);
      if (sizer.with_aggregate(new_def, bytes) > budget) {
        if (items == 0) {
          ++stats.too_large;
          break;
        }
        flush();
        continue;
      }
      add_def(a.series, new_def);
      auto* msg = batch.add_aggregates();
      msg->set_series(index);
      msg->set_count(a.count);
      msg->set_sum(a.sum);
      msg->set_min(a.min);
      msg->set_max(a.max);
      msg->set_last(a.last);
      msg->set_time_unix_ns(a.time_unix_ns);
      sizer.add_aggregate(bytes);
      ++items;
      ++stats.aggregates;
      break;
    }
  }
  flush();
  return stats;
}

bool decode(std::span<const std::uint8_t> bytes, DecodedDatagram& out, DecodeFailure& failure) {
  auto fail = [&](DecodeError reason, std::string message) {
    failure = DecodeFailure{reason, std::move(message)};
    return false;
  };
  if (bytes.size() < kHeaderBytes + kTrailerBytes) {
    return fail(DecodeError::kTooShort,
                fmt::format("datagram is {} bytes; a header and trailer need {}", bytes.size(),
                            kHeaderBytes + kTrailerBytes));
  }
  if (std::memcmp(bytes.data(), kMagicBytes, 4) != 0) {
    return fail(DecodeError::kBadMagic,
                fmt::format("magic is {:02x}{:02x}{:02x}{:02x}, expected 53484d44 (\"SHMD\")",
                            bytes[0], bytes[1], bytes[2], bytes[3]));
  }
  if (bytes[4] != kFormatVersion) {
    return fail(
        DecodeError::kBadVersion,
        fmt::format("format version is {}; this build reads version {}", bytes[4], kFormatVersion));
  }
  const auto header_bytes = get_le(bytes, 6, 2);
  if (header_bytes != kHeaderBytes || bytes[5] != 0 || get_le(bytes, 44, 4) != 0) {
    return fail(DecodeError::kBadHeader,
                fmt::format("header size {} (expected {}), flags {:#x}, reserved {:#x}",
                            header_bytes, kHeaderBytes, bytes[5], get_le(bytes, 44, 4)));
  }
  const std::uint64_t payload = get_le(bytes, 40, 4);
  if (payload + kHeaderBytes + kTrailerBytes != bytes.size()) {
    return fail(DecodeError::kBadLength,
                fmt::format("payload length says {} bytes but the datagram holds {}", payload,
                            bytes.size() - kHeaderBytes - kTrailerBytes));
  }
  const auto stored_crc = static_cast<std::uint32_t>(get_le(bytes, kHeaderBytes + payload, 4));
  const std::uint32_t crc = crc32c(bytes.data(), kHeaderBytes + payload);
  if (stored_crc != crc) {
    return fail(DecodeError::kBadCrc,
                fmt::format("CRC-32C is {:08x}, computed {:08x}", stored_crc, crc));
  }
  wire::Batch batch;
  if (!batch.ParseFromArray(bytes.data() + kHeaderBytes, static_cast<int>(payload))) {
    return fail(DecodeError::kBadPayload, "payload is not a valid shmstats.wire.Batch");
  }
  const int n = batch.event_value_size();
  if (batch.event_series_size() != n || batch.event_time_delta_ns_size() != n ||
      (batch.event_sample_rate_size() != 0 && batch.event_sample_rate_size() != n) ||
      (batch.event_kind_size() != 0 && batch.event_kind_size() != n)) {
    return fail(DecodeError::kBadColumns,
                fmt::format("event columns disagree: {} series, {} values, {} deltas, {} rates, "
                            "{} kinds",
                            batch.event_series_size(), n, batch.event_time_delta_ns_size(),
                            batch.event_sample_rate_size(), batch.event_kind_size()));
  }
  DecodedDatagram d;
  d.header.version = bytes[4];
  d.header.flags = bytes[5];
  d.header.sender_id = get_le(bytes, 8, 8);
  d.header.sender_epoch = get_le(bytes, 16, 8);
  d.header.sequence = get_le(bytes, 24, 8);
  d.header.send_time_unix_ns = get_le(bytes, 32, 8);
  d.host = batch.host();
  d.series.reserve(static_cast<std::size_t>(batch.series_size()));
  for (const auto& s : batch.series()) {
    if (s.kind() < 1 || s.kind() > shm::kMaxKind) {
      return fail(DecodeError::kBadSeries,
                  fmt::format("series kind {} is unknown", static_cast<int>(s.kind())));
    }
    if (s.tags_size() > static_cast<int>(shm::kMaxTags)) {
      return fail(DecodeError::kBadSeries, fmt::format("series has {} tags", s.tags_size()));
    }
    std::vector<shm::TagView> views;
    for (const auto& t : s.tags()) views.push_back(shm::TagView{t.key(), t.value()});
    if (auto valid = shm::validate_series(s.name(), views); !valid) {
      return fail(DecodeError::kBadSeries, valid.error().message);
    }
    if (s.service().size() > shm::kMaxServiceNameBytes) {
      return fail(DecodeError::kBadSeries,
                  fmt::format("service name is {} bytes", s.service().size()));
    }
    SeriesDef def;
    def.service = s.service();
    def.name = s.name();
    def.kind = static_cast<shm::Kind>(s.kind());
    for (const auto& t : s.tags()) def.tags.emplace_back(t.key(), t.value());
    d.series.push_back(std::move(def));
  }
  const auto series_count = static_cast<std::uint32_t>(d.series.size());
  d.points.reserve(static_cast<std::size_t>(n));
  std::int64_t t = batch.first_time_unix_ns();
  for (int i = 0; i < n; ++i) {
    const std::uint32_t index = batch.event_series(i);
    if (index >= series_count) {
      return fail(DecodeError::kBadIndex,
                  fmt::format("event {} names series {} of {}", i, index, series_count));
    }
    Point ev;
    ev.series = &d.series[index];
    ev.kind = d.series[index].kind;
    if (batch.event_kind_size() != 0) {
      const int k = batch.event_kind(i);
      if (k < 1 || k > shm::kMaxKind) {
        return fail(DecodeError::kBadSeries, fmt::format("event {} has kind {}", i, k));
      }
      ev.kind = static_cast<shm::Kind>(k);
    }
    ev.value = batch.event_value(i);
    if (batch.event_sample_rate_size() != 0) {
      ev.sample_rate = batch.event_sample_rate(i);
      if (!(ev.sample_rate > 0.0F && ev.sample_rate <= 1.0F)) {
        return fail(
            DecodeError::kBadColumns,
            fmt::format("event {} has sample rate {}; it must be in (0, 1]", i, ev.sample_rate));
      }
    }
    // Unsigned arithmetic: a hostile delta wraps instead of overflowing.
    t = static_cast<std::int64_t>(static_cast<std::uint64_t>(t) +
                                  static_cast<std::uint64_t>(batch.event_time_delta_ns(i)));
    ev.time_unix_ns = t;
    d.points.push_back(ev);
  }
  for (const auto& a : batch.aggregates()) {
    if (a.series() >= series_count) {
      return fail(DecodeError::kBadIndex,
                  fmt::format("aggregate names series {} of {}", a.series(), series_count));
    }
    Aggregate agg;
    agg.series = &d.series[a.series()];
    agg.count = a.count();
    agg.sum = a.sum();
    agg.min = a.min();
    agg.max = a.max();
    agg.last = a.last();
    agg.time_unix_ns = a.time_unix_ns();
    d.aggregates.push_back(agg);
  }
  out = std::move(d);
  return true;
}

}  // namespace shmstats::proto
