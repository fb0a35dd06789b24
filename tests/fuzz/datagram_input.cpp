// The datagram fuzzer: proto::decode on untrusted bytes, optionally with the CRC trailer (and
// the payload length) fixed up first so that mutations get past the CRC into the protobuf
// payload and its validation. A datagram that decodes is encoded again with the Encoder, and
// what the Encoder sends must decode to the same events and aggregates (in any order).
#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <array>
#include <bit>
#include <compare>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "proto/datagram.h"
#include "shm/series.h"
#include "tests/fuzz/fuzz_inputs.h"

namespace shmstats::fuzz {
namespace {

constexpr std::uint8_t kFixCrc = 0x01;
constexpr std::uint8_t kFixLength = 0x02;

void put_le(std::vector<std::uint8_t>& bytes, std::size_t at, std::uint64_t v, int width) {
  for (int i = 0; i < width; ++i) {
    bytes[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
  }
}

// An event or aggregate with its series by content, compared bit for bit. The Encoder may
// reorder items (it groups them by series), so lists of these are compared sorted.
struct Item {
  std::string series;  // service, name, kind and tags
  int kind = -1;       // the event's kind; -1 for an aggregate
  std::int64_t time_unix_ns = 0;
  std::uint32_t sample_rate_bits = 0;
  std::uint64_t count = 0;
  std::array<std::uint64_t, 4> value_bits{};  // event: value; aggregate: sum, min, max, last
  auto operator<=>(const Item&) const = default;
};

std::string series_key(const model::SeriesDef& s) {
  std::string key = s.service + '\0' + s.name + '\0' + std::to_string(static_cast<int>(s.kind));
  for (const auto& [k, v] : s.tags) key += '\0' + k + '=' + v;
  return key;
}

std::vector<Item> items(const proto::DecodedDatagram& d) {
  std::vector<Item> out;
  for (const auto& ev : d.points) {
    out.push_back(Item{series_key(*ev.series),
                       static_cast<int>(ev.kind),
                       ev.time_unix_ns,
                       std::bit_cast<std::uint32_t>(ev.sample_rate),
                       0,
                       {std::bit_cast<std::uint64_t>(ev.value)}});
  }
  for (const auto& a : d.aggregates) {
    out.push_back(
        Item{series_key(*a.series),
             -1,
             a.time_unix_ns,
             0,
             a.count,
             {std::bit_cast<std::uint64_t>(a.sum), std::bit_cast<std::uint64_t>(a.min),
              std::bit_cast<std::uint64_t>(a.max), std::bit_cast<std::uint64_t>(a.last)}});
  }
  return out;
}

void check_decoded(const proto::DecodedDatagram& d) {
  for (const auto& s : d.series) {
    std::vector<shm::TagView> tags;
    for (const auto& [k, v] : s.tags) tags.push_back(shm::TagView{k, v});
    require(static_cast<bool>(shm::validate_series(s.name, tags)), "decoded series are valid");
    require(s.service.size() <= shm::kMaxServiceNameBytes, "decoded service name length");
  }
  for (const auto& ev : d.points) {
    require(d.series_index(ev.series) < d.series.size(), "decoded event names a decoded series");
    require(ev.sample_rate > 0.0F && ev.sample_rate <= 1.0F, "decoded sample rate in (0, 1]");
  }
  for (const auto& a : d.aggregates) {
    require(d.series_index(a.series) < d.series.size(), "decoded aggregate names a decoded series");
  }
}

// Encodes `d` again and decodes the result: the Encoder's output always decodes, and carries
// every item unchanged when all of them fit.
void check_reencoded(const proto::DecodedDatagram& d) {
  auto encoder = proto::Encoder::create(d.header.sender_id, d.header.sender_epoch,
                                        proto::kMaxDatagramBytesIpv4, d.host);
  if (!encoder) return;  // a host name longer than an encoder sends
  std::vector<model::Point> points;
  for (const auto& ev : d.points) points.push_back(ev);
  std::vector<model::Aggregate> aggregates;
  for (const auto& a : d.aggregates) {
    aggregates.push_back(a);
  }
  std::vector<std::string> datagrams;
  const proto::EncodeStats stats =
      encoder.value().encode(points, aggregates, d.header.send_time_unix_ns, datagrams);
  require(stats.points + stats.aggregates + stats.too_large == points.size() + aggregates.size(),
          "the Encoder accounts for every item");
  std::vector<proto::DecodedDatagram> again;
  for (const auto& bytes : datagrams) {
    require(bytes.size() <= proto::kMaxDatagramBytesIpv4, "the Encoder keeps its size limit");
    proto::DecodedDatagram dd;
    proto::DecodeFailure failure;
    const bool ok = proto::decode(
        {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()}, dd, failure);
    if (!ok) std::fprintf(stderr, "re-encoded datagram: %s\n", failure.message.c_str());
    require(ok, "what the Encoder sends decodes");
    again.push_back(std::move(dd));
  }
  if (stats.too_large != 0) return;  // which items were left out is not reported
  std::vector<Item> want = items(d);
  std::vector<Item> got;
  for (const auto& dd : again) {
    for (auto& item : items(dd)) got.push_back(std::move(item));
  }
  std::sort(want.begin(), want.end());
  std::sort(got.begin(), got.end());
  require(got == want, "every event and aggregate survives encoding unchanged");
}

}  // namespace

int datagram_input(const std::uint8_t* data, std::size_t size) {
  // protobuf logs every string field with invalid UTF-8 that it parses: at tens of thousands of
  // inputs a second, that would be all the fuzzer prints.
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  if (size == 0) return 0;
  const std::uint8_t fixups = data[0];
  std::vector<std::uint8_t> bytes(data + 1, data + size);
  constexpr std::size_t kFraming = proto::kHeaderBytes + proto::kTrailerBytes;
  if (bytes.size() >= kFraming) {
    if ((fixups & kFixLength) != 0) put_le(bytes, 40, bytes.size() - kFraming, 4);
    if ((fixups & kFixCrc) != 0) {
      const std::size_t covered = bytes.size() - proto::kTrailerBytes;
      put_le(bytes, covered, proto::crc32c(bytes.data(), covered), 4);
    }
  }
  proto::DecodedDatagram decoded;
  proto::DecodeFailure failure;
  if (!proto::decode(bytes, decoded, failure)) {
    require(static_cast<std::size_t>(failure.reason) < proto::kDecodeErrorCount,
            "a rejection names a known reason");
    require(!failure.message.empty(), "a rejection explains itself");
    return 0;
  }
  check_decoded(decoded);
  check_reencoded(decoded);
  return 0;
}

}  // namespace shmstats::fuzz
