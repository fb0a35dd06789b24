// Datagram framing shared by the collector (encode) and shmstats-recv (decode). WIRE.md is the
// specification; this is one implementation of it.
//
//   offset  size  field (little-endian)
//   0       4     magic "SHMD"
//   4       1     format version (1)
//   5       1     flags (0; a decoder rejects unknown bits)
//   6       2     header bytes (48)
//   8       8     sender id
//   16      8     sender epoch (changes on every collector start)
//   24      8     sequence (per sender epoch, from 0, +1 per datagram)
//   32      8     send time, Unix ns
//   40      4     payload bytes (N)
//   44      4     reserved (0)
//   48      N     payload: shmstats.wire.Batch (protobuf)
//   48+N    4     CRC-32C (Castagnoli, reflected, init and xor-out 0xFFFFFFFF) of bytes [0, 48+N)
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/metric.h"
#include "shm/layout.h"
#include "shm/result.h"

namespace shmstats::proto {

inline constexpr std::size_t kHeaderBytes = 48;
inline constexpr std::size_t kTrailerBytes = 4;
inline constexpr std::uint8_t kFormatVersion = 1;
inline constexpr char kMagicBytes[4] = {'S', 'H', 'M', 'D'};
inline constexpr std::size_t kMaxDatagramBytesIpv4 = 1472;  // 1500 MTU - 20 IPv4 - 8 UDP
inline constexpr std::size_t kMaxDatagramBytesIpv6 = 1452;  // 1500 MTU - 40 IPv6 - 8 UDP
inline constexpr std::size_t kMinDatagramBytes = 512;

// CRC-32C of `size` bytes: with the SSE 4.2 crc32 instruction where the CPU has it (checked once),
// else table-driven (Boost.CRC). drain_bench measured the table at 3.5 us per 1472-byte datagram,
// half the cost of encoding one; the instruction computes the same polynomial about 40x faster.
std::uint32_t crc32c(const void* data, std::size_t size) noexcept;
namespace detail {
std::uint32_t crc32c_table(const void* data, std::size_t size) noexcept;
// False when this CPU lacks SSE 4.2: then crc32c is crc32c_table.
bool crc32c_hardware_available() noexcept;
}  // namespace detail

// The codec encodes and decodes the metric model (model/metric.h).
using model::Aggregate;
using model::Point;
using model::SeriesDef;

struct Header {
  std::uint8_t version = kFormatVersion;
  std::uint8_t flags = 0;
  std::uint64_t sender_id = 0;
  std::uint64_t sender_epoch = 0;
  std::uint64_t sequence = 0;
  std::uint64_t send_time_unix_ns = 0;
};

struct EncodeStats {
  std::size_t datagrams = 0;
  std::size_t points = 0;
  std::size_t aggregates = 0;
  std::size_t bytes = 0;
  // Items whose series definition cannot fit in one datagram of the configured size (only
  // possible with a limit below ~1.2 KB); counted and reported, never sent truncated.
  std::size_t too_large = 0;
};

// Packs points and aggregates into datagrams of at most max_bytes, as full as they go. Each
// datagram carries the definitions of the series it uses, so the points are packed grouped by
// series (each series' points in their order, series in order of first appearance): a datagram
// then repeats few definitions. Interleaved, 64 typical series packed 18 events per datagram at
// 507 ns each; grouped, see BENCHMARKS.md. Not thread-safe: one per sender thread.
class Encoder {
 public:
  static shm::Result<Encoder> create(std::uint64_t sender_id, std::uint64_t sender_epoch,
                                     std::size_t max_bytes, std::string host);

  // Appends the datagrams to `out` (each a complete byte string, ready for send).
  EncodeStats encode(std::span<const Point> points, std::span<const Aggregate> aggregates,
                     std::uint64_t send_time_unix_ns, std::vector<std::string>& out);

  std::uint64_t next_sequence() const noexcept { return sequence_; }
  std::size_t max_bytes() const noexcept { return max_bytes_; }

 private:
  Encoder(std::uint64_t sender_id, std::uint64_t sender_epoch, std::size_t max_bytes,
          std::string host);
  std::size_t def_bytes(const SeriesDef* def);

  std::uint64_t sender_id_;
  std::uint64_t sender_epoch_;
  std::size_t max_bytes_;
  std::string host_;
  std::uint64_t sequence_ = 0;
  std::unordered_map<const SeriesDef*, std::size_t> def_size_cache_;
  // Scratch of encode(), kept between calls so grouping allocates nothing once warm.
  std::unordered_map<const SeriesDef*, std::uint32_t> group_of_;
  std::vector<std::uint32_t> group_next_;  // per group: next slot in order_ while placing
  std::vector<std::uint32_t> point_group_;
  std::vector<std::uint32_t> order_;  // point indices, grouped by series
};

enum class DecodeError {
  kTooShort,
  kBadMagic,
  kBadVersion,
  kBadHeader,  // header size or flags or reserved bits
  kBadLength,  // payload length disagrees with the datagram length
  kBadCrc,
  kBadPayload,  // protobuf did not parse
  kBadColumns,  // event columns of different lengths
  kBadIndex,    // a series index out of range
  kBadSeries,   // a series definition that breaks the name/tag rules
  kCount,
};
inline constexpr std::size_t kDecodeErrorCount = static_cast<std::size_t>(DecodeError::kCount);
const char* to_string(DecodeError e) noexcept;

// One decoded datagram, in the model's types: every Point and Aggregate points into `series`
// (the definitions this datagram carried, in wire order). Move-only, so the pointers stay valid.
struct DecodedDatagram {
  DecodedDatagram() = default;
  DecodedDatagram(DecodedDatagram&&) noexcept = default;
  DecodedDatagram& operator=(DecodedDatagram&&) noexcept = default;
  DecodedDatagram(const DecodedDatagram&) = delete;
  DecodedDatagram& operator=(const DecodedDatagram&) = delete;

  Header header;
  std::string host;
  std::vector<SeriesDef> series;
  std::vector<Point> points;
  std::vector<Aggregate> aggregates;

  // The wire index of the series a point or aggregate of this datagram belongs to.
  std::size_t series_index(const SeriesDef* def) const noexcept {
    return static_cast<std::size_t>(def - series.data());
  }
};

struct DecodeFailure {
  DecodeError reason;
  std::string message;
};

// Checks magic, version, header, length and CRC, then parses and validates the payload. Never
// trusts a length or index from the bytes.
bool decode(std::span<const std::uint8_t> bytes, DecodedDatagram& out, DecodeFailure& failure);

}  // namespace shmstats::proto
