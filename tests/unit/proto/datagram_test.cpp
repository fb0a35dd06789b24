#include "proto/datagram.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <string>
#include <vector>

namespace shmstats::proto {
namespace {

constexpr std::uint64_t kSender = 0xABCDEF;
constexpr std::uint64_t kEpoch = 77;
constexpr std::int64_t kT0 = 1'800'000'000'000'000'000;

Encoder make_encoder(std::size_t max_bytes = kMaxDatagramBytesIpv4) {
  auto e = Encoder::create(kSender, kEpoch, max_bytes, "host-a");
  EXPECT_TRUE(e);
  return std::move(e).value();
}

SeriesDef typical(int i) {
  // ~20-byte name, 2 tags
  return SeriesDef{"checkout",
                   "http.requests.total" + std::to_string(i % 10),
                   {{"code", "200"}, {"route", "/api/v1"}},
                   shm::Kind::kCounter};
}

SeriesDef worst(int i) {
  // 200-byte name, 16 tags, near the 1024-byte series limit
  SeriesDef def{"svc", std::string(199, 'n') + std::to_string(i % 10), {}, shm::Kind::kTiming};
  for (int t = 0; t < 16; ++t) {
    def.tags.emplace_back("key" + std::string(1, static_cast<char>('a' + t)) + std::string(20, 'k'),
                          std::string(25, 'v'));  // 200 + 16 * 51 = 1016 bytes
  }
  return def;
}

std::vector<DecodedDatagram> decode_all(const std::vector<std::string>& datagrams) {
  std::vector<DecodedDatagram> out;
  for (const auto& d : datagrams) {
    DecodedDatagram dd;
    DecodeFailure f;
    const bool ok = decode({reinterpret_cast<const std::uint8_t*>(d.data()), d.size()}, dd, f);
    EXPECT_TRUE(ok) << f.message;
    out.push_back(std::move(dd));
  }
  return out;
}

TEST(DatagramTest, Crc32cMatchesCheckValue) {
  const std::string check = "123456789";
  EXPECT_EQ(crc32c(check.data(), check.size()), 0xE3069283U);
}

TEST(DatagramTest, Crc32cInstructionMatchesTheTableAtEveryLength) {
  if (!detail::crc32c_hardware_available()) GTEST_SKIP() << "this CPU has no SSE 4.2";
  std::mt19937 rng(7);
  std::string bytes(kMaxDatagramBytesIpv4 + 9, '\0');
  for (auto& c : bytes) c = static_cast<char>(rng());
  // Every length up to 64 (the 8-byte loop and the byte tail), and every start alignment.
  for (std::size_t offset = 0; offset < 8; ++offset) {
    for (std::size_t size = 0; size <= 64; ++size) {
      ASSERT_EQ(crc32c(bytes.data() + offset, size),
                detail::crc32c_table(bytes.data() + offset, size))
          << "offset " << offset << " size " << size;
    }
  }
  EXPECT_EQ(crc32c(bytes.data(), kMaxDatagramBytesIpv4),
            detail::crc32c_table(bytes.data(), kMaxDatagramBytesIpv4));
}

TEST(DatagramTest, RoundTripsEventsAggregatesAndHeader) {
  auto sut = make_encoder();
  const SeriesDef counter = typical(1);
  SeriesDef gauge{"svc", "queue.depth", {}, shm::Kind::kGauge};
  const std::vector<Point> points = {{&counter, shm::Kind::kCounter, 3, 1.0F, kT0},
                                     {&gauge, shm::Kind::kGauge, 10, 1.0F, kT0 + 5},
                                     {&gauge, shm::Kind::kGaugeDelta, -2, 0.5F, kT0 + 3}};
  const std::vector<Aggregate> aggs = {{&counter, 12, 30.5, 1, 5, 2, kT0 + 9}};
  std::vector<std::string> out;
  const auto stats = sut.encode(points, aggs, 123456, out);
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(stats.points, 3U);
  EXPECT_EQ(stats.aggregates, 1U);
  const auto decoded = decode_all(out);
  const auto& d = decoded.at(0);
  EXPECT_EQ(d.header.sender_id, kSender);
  EXPECT_EQ(d.header.sender_epoch, kEpoch);
  EXPECT_EQ(d.header.sequence, 0U);
  EXPECT_EQ(d.header.send_time_unix_ns, 123456U);
  EXPECT_EQ(d.host, "host-a");
  ASSERT_EQ(d.points.size(), 3U);
  EXPECT_EQ(d.points[0].series->name, counter.name);
  EXPECT_EQ(d.points[0].series->tags, counter.tags);
  EXPECT_EQ(d.points[0].value, 3);
  EXPECT_EQ(d.points[0].time_unix_ns, kT0);
  EXPECT_EQ(d.points[1].time_unix_ns, kT0 + 5);
  EXPECT_EQ(d.points[2].time_unix_ns, kT0 + 3) << "negative deltas survive";
  EXPECT_EQ(d.points[2].kind, shm::Kind::kGaugeDelta);
  EXPECT_EQ(d.points[1].kind, shm::Kind::kGauge);
  EXPECT_EQ(d.points[2].sample_rate, 0.5F);
  EXPECT_EQ(d.points[0].sample_rate, 1.0F);
  ASSERT_EQ(d.aggregates.size(), 1U);
  EXPECT_EQ(d.aggregates[0].count, 12U);
  EXPECT_EQ(d.aggregates[0].sum, 30.5);
  EXPECT_EQ(d.aggregates[0].series->name, counter.name);
}

// Issue #5, found by fuzz_datagram: the time delta between two events was a signed subtraction
// that overflowed (undefined behaviour) for times more than 2^63 ns apart, which the timestamps of
// an untrusted segment can be.
TEST(DatagramTest, EncoderTimeDeltaDoesNotOverflowForTimesFarApart) {
  auto sut = make_encoder();
  const SeriesDef counter = typical(1);
  constexpr std::int64_t kEarliest = std::numeric_limits<std::int64_t>::min() + 1;
  constexpr std::int64_t kLatest = std::numeric_limits<std::int64_t>::max();
  const std::vector<Point> points = {{&counter, shm::Kind::kCounter, 1, 1.0F, kEarliest},
                                     {&counter, shm::Kind::kCounter, 2, 1.0F, kLatest},
                                     {&counter, shm::Kind::kCounter, 3, 1.0F, kEarliest}};
  std::vector<std::string> out;
  const auto stats = sut.encode(points, {}, 1, out);
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(stats.points, points.size());
  const auto decoded = decode_all(out);
  const auto& d = decoded.at(0);
  ASSERT_EQ(d.points.size(), points.size());
  EXPECT_EQ(d.points[0].time_unix_ns, kEarliest);
  EXPECT_EQ(d.points[1].time_unix_ns, kLatest);
  EXPECT_EQ(d.points[2].time_unix_ns, kEarliest);
}

// Splits into as many datagrams as needed; each stays within the limit and decodes on its own.
void check_split(const std::vector<SeriesDef>& defs, std::size_t max_bytes, std::size_t n_points,
                 std::size_t min_per_datagram) {
  auto sut = make_encoder(max_bytes);
  std::vector<Point> points;
  for (std::size_t i = 0; i < n_points; ++i) {
    points.push_back({&defs[i % defs.size()], defs[i % defs.size()].kind, static_cast<double>(i),
                      1.0F, kT0 + static_cast<std::int64_t>(i) * 1000});
  }
  std::vector<std::string> out;
  const auto stats = sut.encode(points, {}, 1, out);
  EXPECT_EQ(stats.points, n_points);
  EXPECT_EQ(stats.too_large, 0U);
  ASSERT_GT(out.size(), 1U);
  std::size_t seen = 0;
  std::uint64_t seq = 0;
  // Point i has value i and series i % defs.size(): each series' values must come in order, and
  // every value exactly once (the encoder groups by series, keeping each series' order).
  std::vector<double> last_of_series(defs.size(), -1);
  for (const auto& d : out) EXPECT_LE(d.size(), max_bytes);
  for (const auto& d : decode_all(out)) {
    EXPECT_EQ(d.header.sequence, seq++);
    for (const auto& ev : d.points) {
      const auto i = static_cast<std::size_t>(ev.value);
      EXPECT_EQ(ev.series->name, defs[i % defs.size()].name);
      EXPECT_GT(ev.value, last_of_series[i % defs.size()]) << "series order kept";
      last_of_series[i % defs.size()] = ev.value;
      ++seen;
    }
  }
  EXPECT_EQ(seen, n_points);
  EXPECT_GE(n_points / out.size(), min_per_datagram) << out.size() << " datagrams";
}

TEST(DatagramTest, TypicalSeriesPackSixtyOrMoreEventsPerDatagram) {
  std::vector<SeriesDef> defs;
  for (int i = 0; i < 10; ++i) defs.push_back(typical(i));
  constexpr std::size_t kMinEventsPerDatagram = 60;
  check_split(defs, kMaxDatagramBytesIpv4, 5000, kMinEventsPerDatagram);
}

TEST(DatagramTest, InterleavedTypicalSeriesStillPackSixtyOrMoreEventsPerDatagram) {
  // 64 series taking turns, as a collector drains many services: without grouping by series each
  // datagram repeated most of the 64 definitions and held 18 events.
  constexpr int kSeries = 64;
  std::vector<SeriesDef> defs;
  for (int i = 0; i < kSeries; ++i) {
    defs.push_back(typical(i));
    defs.back().name += "." + std::to_string(i);
  }
  constexpr std::size_t kMinEventsPerDatagram = 60;
  check_split(defs, kMaxDatagramBytesIpv4, 4096, kMinEventsPerDatagram);
}

TEST(DatagramTest, WorstCaseSeriesStayWithinEveryLimit) {
  std::vector<SeriesDef> defs;
  for (int i = 0; i < 10; ++i) defs.push_back(worst(i));
  for (const std::size_t limit :
       {kMaxDatagramBytesIpv4, kMaxDatagramBytesIpv6, std::size_t{1300}}) {
    check_split(defs, limit, 300, 1);
  }
}

TEST(DatagramTest, SeriesTooLargeForTheLimitIsCountedNotTruncated) {
  auto sut = make_encoder(kMinDatagramBytes);
  const SeriesDef big = worst(0);
  const SeriesDef small = typical(0);
  const std::vector<Point> points = {{&big, big.kind, 1, 1.0F, kT0},
                                     {&small, small.kind, 2, 1.0F, kT0}};
  std::vector<std::string> out;
  const auto stats = sut.encode(points, {}, 1, out);
  EXPECT_EQ(stats.too_large, 1U);
  EXPECT_EQ(stats.points, 1U);
  ASSERT_EQ(out.size(), 1U);
  EXPECT_LE(out[0].size(), kMinDatagramBytes);
}

TEST(DatagramTest, EncoderRejectsLimitOutsideRange) {
  EXPECT_FALSE(Encoder::create(1, 1, 100, ""));
  EXPECT_FALSE(Encoder::create(1, 1, 9000, ""));
  EXPECT_TRUE(Encoder::create(1, 1, kMinDatagramBytes, ""));
}

std::string one_datagram() {
  auto sut = make_encoder();
  const SeriesDef def = typical(0);
  std::vector<Point> points;
  for (int i = 0; i < 20; ++i)
    points.push_back({&def, def.kind, static_cast<double>(i), 1.0F, kT0 + i});
  std::vector<std::string> out;
  sut.encode(points, {}, 1, out);
  return out.at(0);
}

DecodeError decode_error(const std::string& bytes) {
  DecodedDatagram d;
  DecodeFailure f{DecodeError::kCount, ""};
  const bool ok = decode({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()}, d, f);
  EXPECT_FALSE(ok);
  EXPECT_FALSE(f.message.empty());
  return f.reason;
}

TEST(DatagramTest, DecodeRejectsEachBrokenFieldWithItsReason) {
  const std::string good = one_datagram();
  EXPECT_EQ(decode_error(good.substr(0, 10)), DecodeError::kTooShort);
  std::string bad = good;
  bad[0] = 'X';
  EXPECT_EQ(decode_error(bad), DecodeError::kBadMagic);
  bad = good;
  bad[4] = 9;
  EXPECT_EQ(decode_error(bad), DecodeError::kBadVersion);
  bad = good;
  bad[5] = 1;
  EXPECT_EQ(decode_error(bad), DecodeError::kBadHeader);
  EXPECT_EQ(decode_error(good.substr(0, good.size() - 1)), DecodeError::kBadLength);
  bad = good;
  bad[kHeaderBytes + 3] ^= 0x40;
  EXPECT_EQ(decode_error(bad), DecodeError::kBadCrc);
}

TEST(DatagramTest, DecodeRejectsTruncatedTrailer) {
  const std::string good = one_datagram();
  for (std::size_t cut = 1; cut <= kTrailerBytes; ++cut) {
    const auto reason = decode_error(good.substr(0, good.size() - cut));
    EXPECT_EQ(reason, DecodeError::kBadLength);
  }
}

// Random bytes, and valid datagrams with random bytes flipped or cut: the decoder never crashes
// and either rejects with a reason or returns a well-formed result.
TEST(DatagramTest, DecoderSurvivesRandomAndMutatedInput) {
  std::mt19937_64 rng(12345);
  const std::string good = one_datagram();
  constexpr int kRounds = 20'000;
  int accepted = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::string bytes;
    if (round % 2 == 0) {
      bytes.resize(rng() % 1600);
      for (auto& c : bytes) c = static_cast<char>(rng());
      if (round % 4 == 0 && bytes.size() >= 4) std::memcpy(bytes.data(), kMagicBytes, 4);
    } else {
      bytes = good.substr(0, good.size() - (rng() % 3 == 0 ? rng() % good.size() : 0));
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips && !bytes.empty(); ++f)
        bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
    }
    DecodedDatagram d;
    DecodeFailure failure;
    if (decode({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()}, d, failure)) {
      ++accepted;
      for (const auto& ev : d.points) ASSERT_LT(d.series_index(ev.series), d.series.size());
    } else {
      ASSERT_LT(static_cast<std::size_t>(failure.reason), kDecodeErrorCount);
    }
  }
  EXPECT_LT(accepted, kRounds / 100) << "CRC should reject nearly every mutation";
}

}  // namespace
}  // namespace shmstats::proto
