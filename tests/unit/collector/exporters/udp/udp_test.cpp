#include "collector/exporters/udp/udp.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tests/support/support.h"
#include "tests/unit/collector/batch_builder.h"
#include "tests/unit/collector/receivers.h"

namespace shmstats::collector {
namespace {

using std::chrono::milliseconds;
using testing::BatchBuilder;
using testing::TempDir;
using testing::UdpReceiver;
using testing::wait_until;

constexpr milliseconds kWait{10'000};
constexpr std::uint64_t kSenderId = 77;
constexpr std::uint64_t kEpoch = 5;

std::unique_ptr<UdpExporter> make_sut(const std::string& destination,
                                      std::uint32_t breaker_failures = 5,
                                      milliseconds breaker_open = milliseconds(2000)) {
  UdpExporterOptions options;
  options.destination = destination;
  options.sender_id = kSenderId;
  options.sender_epoch = kEpoch;
  options.host = "test-host";
  options.breaker_failures = breaker_failures;
  options.breaker_open = breaker_open;
  auto created = UdpExporter::create(options);
  EXPECT_TRUE(created) << created.error().message;
  return created ? std::move(created).value() : nullptr;
}

bool decode(const std::string& datagram, proto::DecodedDatagram& out) {
  proto::DecodeFailure failure;
  const bool ok = proto::decode(
      std::span(reinterpret_cast<const std::uint8_t*>(datagram.data()), datagram.size()), out,
      failure);
  EXPECT_TRUE(ok) << failure.message;
  return ok;
}

// A small batch: one counter point.
BatchBuilder one_point_batch() {
  BatchBuilder b;
  b.point(b.series("udp.small", shm::Kind::kCounter), 1.0);
  return b;
}

// Sends batches to a closed port until the breaker opens; returns how many batches failed.
std::uint32_t drive_open(UdpExporter& sut, const Batch& batch, std::uint32_t threshold) {
  std::uint32_t failed = 0;
  for (std::uint32_t i = 0;
       i < 2 * threshold + 2 && std::string(to_string(sut.breaker().state)) != "open"; ++i) {
    const SendResult r = sut.send(batch);
    if (r.send_errors > 0) ++failed;
  }
  return failed;
}

TEST(UdpExporterTest, DatagramsDecodeAndCarryEveryEvent) {
  constexpr int kPointsPerSeries = 300;  // several datagrams' worth
  UdpReceiver receiver;
  auto sut = make_sut(receiver.destination());
  ASSERT_NE(sut, nullptr);
  BatchBuilder b;
  const auto* counter = b.series("udp.requests", shm::Kind::kCounter, {{"env", "test"}}, "svc");
  const auto* gauge = b.series("udp.depth", shm::Kind::kGauge, {}, "svc");
  const auto* timing = b.series("udp.latency", shm::Kind::kTiming, {{"route", "/a"}}, "svc");
  for (int i = 0; i < kPointsPerSeries; ++i) {
    b.point(counter, i, 0.5F);
    b.point(gauge, shm::Kind::kGaugeDelta, -i);
    b.point(timing, i * 1.5);
  }
  b.aggregate(timing, 4, 10.0, 1.0, 4.0, 2.0);
  const Batch& batch = b.batch();

  const SendResult r = sut->send(batch);

  EXPECT_EQ(r.events_sent, batch.size());
  EXPECT_EQ(r.events_dropped, 0U);
  EXPECT_EQ(r.send_errors, 0U);
  ASSERT_GT(r.requests, 1U);
  const auto got = receiver.receive(r.requests, kWait);
  ASSERT_EQ(got.size(), r.requests);
  std::uint64_t bytes = 0;
  std::map<std::string, std::vector<model::Point>> events_by_series;
  std::vector<model::Aggregate> aggregates;
  for (std::size_t i = 0; i < got.size(); ++i) {
    bytes += got[i].size();
    EXPECT_LE(got[i].size(), proto::kMaxDatagramBytesIpv4);
    proto::DecodedDatagram d;
    ASSERT_TRUE(decode(got[i], d));
    EXPECT_EQ(d.header.sender_id, kSenderId);
    EXPECT_EQ(d.header.sender_epoch, kEpoch);
    EXPECT_EQ(d.header.sequence, i);
    EXPECT_EQ(d.host, "test-host");
    for (const auto& e : d.points) events_by_series[e.series->name].push_back(e);
    for (const auto& a : d.aggregates) aggregates.push_back(a);
  }
  EXPECT_EQ(bytes, r.bytes);
  ASSERT_EQ(events_by_series["udp.requests"].size(), kPointsPerSeries);
  ASSERT_EQ(events_by_series["udp.depth"].size(), kPointsPerSeries);
  ASSERT_EQ(events_by_series["udp.latency"].size(), kPointsPerSeries);
  for (int i = 0; i < kPointsPerSeries; ++i) {
    EXPECT_EQ(events_by_series["udp.requests"][i].value, i);
    EXPECT_EQ(events_by_series["udp.requests"][i].sample_rate, 0.5F);
    EXPECT_EQ(events_by_series["udp.depth"][i].value, -i);
    EXPECT_EQ(events_by_series["udp.depth"][i].kind, shm::Kind::kGaugeDelta);
    EXPECT_EQ(events_by_series["udp.latency"][i].value, i * 1.5);
  }
  ASSERT_EQ(aggregates.size(), 1U);
  EXPECT_EQ(aggregates[0].count, 4U);
  EXPECT_EQ(aggregates[0].sum, 10.0);
}

TEST(UdpExporterTest, CreateRejectsBadOptions) {
  UdpExporterOptions bad_destination;
  bad_destination.destination = "nowhere";
  UdpExporterOptions bad_size;
  bad_size.destination = "127.0.0.1:9";
  bad_size.max_datagram_bytes = 9000;

  auto a = UdpExporter::create(bad_destination);
  auto b = UdpExporter::create(bad_size);

  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, shm::Errc::kInvalidOptions);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, shm::Errc::kInvalidOptions);
  EXPECT_NE(b.error().message.find("9000"), std::string::npos) << b.error().message;
}

TEST(UdpExporterTest, RefusedDatagramsCountAsDroppedWithSendErrors) {
  TempDir dir;
  auto sut = make_sut("unix://" + (dir.path() / "nobody.sock").string());
  ASSERT_NE(sut, nullptr);
  const auto b = one_point_batch();

  const SendResult r = sut->send(b.batch());

  EXPECT_EQ(r.events_sent, 0U);
  EXPECT_EQ(r.events_dropped, b.batch().size());
  EXPECT_EQ(r.send_errors, 1U);
  EXPECT_EQ(r.requests, 0U);
}

TEST(UdpExporterTest, BreakerOpensAfterThresholdFailuresAgainstClosedPort) {
  constexpr std::uint32_t kThreshold = 3;
  auto sut = make_sut("127.0.0.1:" + std::to_string(testing::closed_udp_port()), kThreshold,
                      milliseconds(60'000));
  ASSERT_NE(sut, nullptr);
  const auto b = one_point_batch();

  const std::uint32_t failed = drive_open(*sut, b.batch(), kThreshold);

  EXPECT_EQ(failed, kThreshold);
  EXPECT_EQ(std::string(to_string(sut->breaker().state)), "open");
  EXPECT_EQ(sut->circuit().opened_count(), 1U);
}

TEST(UdpExporterTest, DropsAndCountsBatchesWhileOpen) {
  constexpr std::uint32_t kThreshold = 2;
  auto sut = make_sut("127.0.0.1:" + std::to_string(testing::closed_udp_port()), kThreshold,
                      milliseconds(60'000));
  ASSERT_NE(sut, nullptr);
  BatchBuilder b;
  const auto* s = b.series("udp.open", shm::Kind::kCounter);
  b.point(s, 1).point(s, 2).point(s, 3);
  ASSERT_EQ(drive_open(*sut, b.batch(), kThreshold), kThreshold);

  const SendResult r = sut->send(b.batch());

  EXPECT_EQ(r.events_dropped, b.batch().size());
  EXPECT_EQ(r.events_sent, 0U);
  EXPECT_EQ(r.requests, 0U);
  EXPECT_EQ(r.send_errors, 0U);
  EXPECT_EQ(std::string(to_string(sut->breaker().state)), "open");
}

TEST(UdpExporterTest, HalfOpenProbeClosesOnceListenerExists) {
  constexpr std::uint32_t kThreshold = 2;
  const std::uint16_t port = testing::closed_udp_port();
  auto sut = make_sut("127.0.0.1:" + std::to_string(port), kThreshold, milliseconds(100));
  ASSERT_NE(sut, nullptr);
  const auto b = one_point_batch();
  ASSERT_EQ(drive_open(*sut, b.batch(), kThreshold), kThreshold);
  UdpReceiver receiver(port);
  std::uint64_t sent = 0;

  // Batches are dropped while open; after the open duration one probe goes out and closes it.
  ASSERT_TRUE(wait_until(
      [&] {
        sent += sut->send(b.batch()).events_sent;
        return std::string(to_string(sut->breaker().state)) == "closed";
      },
      kWait, [&] { return "breaker " + std::string(to_string(sut->breaker().state)); }));

  EXPECT_EQ(sent, b.batch().size());
  // The empty probe datagram first, then the batch it let through.
  const auto got = receiver.receive(2, kWait);
  ASSERT_EQ(got.size(), 2U);
  EXPECT_TRUE(got[0].empty());
  proto::DecodedDatagram d;
  ASSERT_TRUE(decode(got[1], d));
  ASSERT_EQ(d.points.size(), 1U);
  EXPECT_EQ(d.points[0].series->name, "udp.small");
  EXPECT_EQ(sut->breaker().probes_sent, sut->breaker().probes_failed + 1);
}

// Probing a port that is still closed costs no batch datagram: without the empty probe, the
// first datagram of every probing batch was accepted by the kernel (counted sent) and lost.
TEST(UdpExporterTest, ProbesOfAClosedPortSendNoBatchAndCountEveryEventDropped) {
  constexpr std::uint32_t kThreshold = 1;
  constexpr std::uint64_t kProbes = 5;
  auto sut = make_sut("127.0.0.1:" + std::to_string(testing::closed_udp_port()), kThreshold,
                      milliseconds(20));
  ASSERT_NE(sut, nullptr);
  BatchBuilder b;
  const auto* s = b.series("udp.probed", shm::Kind::kCounter);
  b.point(s, 1).point(s, 2).point(s, 3);
  ASSERT_EQ(drive_open(*sut, b.batch(), kThreshold), kThreshold);
  std::uint64_t offered = 0;
  std::uint64_t sent = 0;
  std::uint64_t dropped = 0;
  std::uint64_t datagrams = 0;

  ASSERT_TRUE(wait_until(
      [&] {
        const SendResult r = sut->send(b.batch());
        offered += b.batch().size();
        sent += r.events_sent;
        dropped += r.events_dropped;
        datagrams += r.requests;
        return sut->breaker().probes_failed >= kProbes;
      },
      kWait, [&] { return "breaker " + std::string(to_string(sut->breaker().state)); }));

  EXPECT_EQ(sent, 0U);
  EXPECT_EQ(datagrams, 0U);
  EXPECT_EQ(dropped, offered);
  EXPECT_EQ(sut->breaker().probes_sent, sut->breaker().probes_failed);
  EXPECT_EQ(sut->circuit().opened_count(), 1 + sut->breaker().probes_failed);
  EXPECT_EQ(std::string(to_string(sut->breaker().state)), "open");
}

TEST(UdpExporterTest, FailedProbeReopensTheBreaker) {
  constexpr std::uint32_t kThreshold = 1;
  auto sut = make_sut("127.0.0.1:" + std::to_string(testing::closed_udp_port()), kThreshold,
                      milliseconds(50));
  ASSERT_NE(sut, nullptr);
  const auto b = one_point_batch();
  ASSERT_EQ(drive_open(*sut, b.batch(), kThreshold), kThreshold);

  ASSERT_TRUE(wait_until(
      [&] {
        (void)sut->send(b.batch());
        return sut->circuit().opened_count() == 2;
      },
      kWait, [&] { return "breaker " + std::string(to_string(sut->breaker().state)); }));

  EXPECT_EQ(std::string(to_string(sut->breaker().state)), "open");
}

}  // namespace
}  // namespace shmstats::collector
