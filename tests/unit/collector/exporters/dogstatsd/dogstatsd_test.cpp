#include "collector/exporters/dogstatsd/dogstatsd.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "tests/support/support.h"
#include "tests/unit/collector/batch_builder.h"
#include "tests/unit/collector/receivers.h"

namespace shmstats::collector {
namespace {

using std::chrono::milliseconds;
using testing::BatchBuilder;
using testing::split;
using testing::split_lines;
using testing::TempDir;
using testing::UdpReceiver;
using testing::UnixReceiver;
using testing::wait_until;

constexpr milliseconds kWait{10'000};
constexpr std::size_t kLargePayload = 65000;  // everything in one datagram
constexpr std::size_t kSmallPayload = 256;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Formatted {
  std::vector<std::string> datagrams;
  std::vector<std::uint64_t> events;
  DogStatsdFormatStats stats;
  // All lines of all datagrams, in order.
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    for (const auto& d : datagrams) {
      for (auto& l : split_lines(d)) out.push_back(std::move(l));
    }
    return out;
  }
};

Formatted format(const Batch& batch, bool add_service_tag = true, bool multi_value = false,
                 std::size_t max_payload = kLargePayload) {
  DogStatsdFormatter sut(max_payload, add_service_tag, multi_value);
  Formatted f;
  f.stats = sut.format(batch, f.datagrams, f.events);
  return f;
}

// The text of a batch that fits in one datagram.
std::string format_text(const Batch& batch, bool add_service_tag = true, bool multi_value = false) {
  const Formatted f = format(batch, add_service_tag, multi_value);
  EXPECT_LE(f.datagrams.size(), 1U);
  return f.datagrams.empty() ? std::string() : f.datagrams[0];
}

std::unique_ptr<DogStatsdExporter> make_sut(DogStatsdOptions options) {
  auto created = DogStatsdExporter::create(options);
  EXPECT_TRUE(created) << created.error().message;
  return created ? std::move(created).value() : nullptr;
}

TEST(DogStatsdExporterTest, FormatsEveryKindWithItsTypeLetter) {
  struct Case {
    shm::Kind series_kind;
    shm::Kind event_kind;
    double value;
    const char* expected;
  };
  const Case cases[] = {
      {shm::Kind::kCounter, shm::Kind::kCounter, 3, "k:3|c"},
      {shm::Kind::kGauge, shm::Kind::kGauge, 2.5, "k:2.5|g"},
      {shm::Kind::kGauge, shm::Kind::kGaugeDelta, 3, "k:+3|g"},
      {shm::Kind::kHistogram, shm::Kind::kHistogram, 0.25, "k:0.25|h"},
      {shm::Kind::kTiming, shm::Kind::kTiming, 12, "k:12|ms"},
      {shm::Kind::kSet, shm::Kind::kSet, 42, "k:42|s"},
  };
  for (const Case& c : cases) {
    BatchBuilder b;
    b.point(b.series("k", c.series_kind), c.event_kind, c.value);

    EXPECT_EQ(format_text(b.batch()), c.expected);
  }
}

TEST(DogStatsdExporterTest, AppendsSampleRateOnlyWhenNotOneAndOnlyForCountingKinds) {
  BatchBuilder b;
  const auto* counter = b.series("c", shm::Kind::kCounter);
  b.point(counter, 1, 0.1F).point(counter, 1, 1.0F);
  b.point(b.series("h", shm::Kind::kHistogram), 2, 0.5F);
  b.point(b.series("t", shm::Kind::kTiming), 5, 0.25F);
  b.point(b.series("g", shm::Kind::kGauge), 1, 0.5F);
  b.point(b.series("s", shm::Kind::kSet), 1, 0.5F);

  const Formatted f = format(b.batch());

  EXPECT_EQ(f.lines(), (std::vector<std::string>{"c:1|c|@0.1", "c:1|c", "h:2|h|@0.5",
                                                 "t:5|ms|@0.25", "g:1|g", "s:1|s"}));
}

TEST(DogStatsdExporterTest, DropsAndCountsPointsWithInvalidSampleRate) {
  BatchBuilder b;
  const auto* s = b.series("c", shm::Kind::kCounter);
  b.point(s, 1, 0.0F).point(s, 1, 2.0F).point(s, 1, std::nanf("")).point(s, 7);

  const Formatted f = format(b.batch());

  EXPECT_EQ(f.stats.invalid_rate, 3U);
  EXPECT_EQ(f.stats.formatted, 1U);
  EXPECT_EQ(f.lines(), std::vector<std::string>{"c:7|c"});
}

TEST(DogStatsdExporterTest, AppendsSeriesTagsWithServiceTagInKeyOrder) {
  BatchBuilder b;
  b.point(b.series("t", shm::Kind::kCounter, {{"a", "1"}, {"zone", "eu:west"}}, "checkout"), 1);

  EXPECT_EQ(format_text(b.batch()), "t:1|c|#a:1,service:checkout,zone:eu:west");
}

TEST(DogStatsdExporterTest, OmitsServiceTagWhenDisabled) {
  BatchBuilder b;
  b.point(b.series("t", shm::Kind::kCounter, {{"a", "1"}}, "checkout"), 1);
  b.point(b.series("u", shm::Kind::kCounter, {}, "checkout"), 1);

  const Formatted f = format(b.batch(), /*add_service_tag=*/false);

  EXPECT_EQ(f.lines(), (std::vector<std::string>{"t:1|c|#a:1", "u:1|c"}));
}

TEST(DogStatsdExporterTest, KeepsTheSeriesOwnServiceTagAndBareKeys) {
  BatchBuilder b;
  b.point(b.series("t", shm::Kind::kCounter, {{"canary", ""}, {"service", "mine"}}, "svc"), 1);

  EXPECT_EQ(format_text(b.batch()), "t:1|c|#canary,service:mine");
}

TEST(DogStatsdExporterTest, ServiceNameCannotBreakTheLine) {
  BatchBuilder b;
  b.point(b.series("t", shm::Kind::kCounter, {}, "a|b,c\nd"), 1);

  EXPECT_EQ(format_text(b.batch()), "t:1|c|#service:a_b_c_d");
}

TEST(DogStatsdExporterTest, GaugeDeltasCarryAnExplicitSign) {
  BatchBuilder b;
  const auto* g = b.series("g", shm::Kind::kGauge);
  for (const double delta : {3.0, -3.0, 0.0, -0.0, 0.5}) b.point(g, shm::Kind::kGaugeDelta, delta);

  const Formatted f = format(b.batch());

  EXPECT_EQ(f.lines(),
            (std::vector<std::string>{"g:+3|g", "g:-3|g", "g:+0|g", "g:+0|g", "g:+0.5|g"}));
}

TEST(DogStatsdExporterTest, NegativeGaugeSetIsResetToZeroFirst) {
  BatchBuilder b;
  const auto* g = b.series("g", shm::Kind::kGauge, {{"k", "v"}});
  b.point(g, -7).point(g, -0.0);

  const Formatted f = format(b.batch());

  EXPECT_EQ(f.lines(), (std::vector<std::string>{"g:0|g|#k:v", "g:-7|g|#k:v", "g:0|g|#k:v"}));
  EXPECT_EQ(f.stats.formatted, 2U);
}

TEST(DogStatsdExporterTest, NumbersUseTheShortestRoundTripForm) {
  BatchBuilder b;
  const auto* s = b.series("n", shm::Kind::kCounter);
  b.point(s, 0.1).point(s, 1e21).point(s, 123456789.125).point(s, 1.0 / 3).point(s, -2);

  const Formatted f = format(b.batch());

  EXPECT_EQ(f.lines(), (std::vector<std::string>{"n:0.1|c", "n:1e+21|c", "n:123456789.125|c",
                                                 "n:0.3333333333333333|c", "n:-2|c"}));
}

TEST(DogStatsdExporterTest, DropsAndCountsNonFiniteValues) {
  BatchBuilder b;
  const auto* s = b.series("n", shm::Kind::kTiming);
  b.point(s, kNaN).point(s, kInf).point(s, -kInf).point(s, 1);
  b.aggregate(s, 2, kInf, 1, 2, 2);

  const Formatted f = format(b.batch());

  EXPECT_EQ(f.stats.non_finite, 4U);
  EXPECT_EQ(f.stats.dropped(), 4U);
  EXPECT_EQ(f.lines(), std::vector<std::string>{"n:1|ms"});
}

TEST(DogStatsdExporterTest, FormatsFoldedAggregatesExactly) {
  BatchBuilder b;
  b.aggregate(b.series("a.c", shm::Kind::kCounter, {{"k", "v"}}), 4, 40, 1, 20, 20);
  b.aggregate(b.series("a.t", shm::Kind::kTiming), 4, 10, -1, 4, 2);
  b.aggregate(b.series("a.h", shm::Kind::kHistogram), 3, 0.75, 0.125, 0.5, 0.5);
  b.aggregate(b.series("a.g", shm::Kind::kGauge), 5, 0, 0, 0, 7);

  const Formatted f = format(b.batch());

  EXPECT_EQ(f.lines(), (std::vector<std::string>{
                           "a.c:40|c|#k:v",
                           "a.t.folded_sum:10|c",
                           "a.t.folded_count:4|c",
                           "a.t.folded_min:0|g",
                           "a.t.folded_min:-1|g",
                           "a.t.folded_max:4|g",
                           "a.h.folded_sum:0.75|c",
                           "a.h.folded_count:3|c",
                           "a.h.folded_min:0.125|g",
                           "a.h.folded_max:0.5|g",
                           "a.g:7|g",
                       }));
  EXPECT_EQ(f.stats.formatted, 4U);
}

TEST(DogStatsdExporterTest, SetAggregateIsUnsupportedAndEmptyAggregateIsSkipped) {
  BatchBuilder b;
  b.aggregate(b.series("s", shm::Kind::kSet), 3, 0, 0, 0, 1);
  b.aggregate(b.series("c", shm::Kind::kCounter), 0, 0, 0, 0, 0);

  const Formatted f = format(b.batch());

  EXPECT_EQ(f.stats.unsupported_kind, 1U);
  EXPECT_EQ(f.stats.empty, 1U);
  EXPECT_TRUE(f.datagrams.empty());
}

TEST(DogStatsdExporterTest, MultiValuePacksPointsOfOneSeriesKindAndRate) {
  BatchBuilder b;
  const auto* c = b.series("m.c", shm::Kind::kCounter, {{"k", "v"}});
  const auto* t = b.series("m.t", shm::Kind::kTiming);
  const auto* g = b.series("m.g", shm::Kind::kGauge);
  b.point(c, 1).point(t, 1.5).point(c, 2).point(c, 4, 0.5F).point(g, 1).point(c, 3);
  b.point(g, 2).point(t, 2).point(c, kNaN);

  const Formatted f = format(b.batch(), true, /*multi_value=*/true);

  EXPECT_EQ(f.lines(), (std::vector<std::string>{"m.c:1:2:3|c|#k:v", "m.t:1.5:2|ms",
                                                 "m.c:4|c|@0.5|#k:v", "m.g:1|g", "m.g:2|g"}));
  EXPECT_EQ(f.stats.formatted, 8U);
  EXPECT_EQ(f.stats.non_finite, 1U);
}

TEST(DogStatsdExporterTest, MultiValueIsOffByDefault) {
  const DogStatsdOptions defaults;
  BatchBuilder b;
  const auto* c = b.series("m.c", shm::Kind::kCounter);
  b.point(c, 1).point(c, 2);

  const Formatted f = format(b.batch(), defaults.add_service_tag, defaults.multi_value);

  EXPECT_FALSE(defaults.multi_value);
  EXPECT_TRUE(defaults.add_service_tag);
  EXPECT_EQ(defaults.max_payload_bytes, 1432U);
  EXPECT_EQ(f.lines(), (std::vector<std::string>{"m.c:1|c", "m.c:2|c"}));
}

TEST(DogStatsdExporterTest, MultiValueLinesSplitAtTheMaxPayload) {
  constexpr int kValues = 300;
  BatchBuilder b;
  const auto* t = b.series("m.t", shm::Kind::kTiming);
  for (int i = 0; i < kValues; ++i) b.point(t, 1000 + i);

  const Formatted f = format(b.batch(), true, true, kSmallPayload);

  std::vector<std::string> values;
  for (const auto& d : f.datagrams) {
    EXPECT_LE(d.size(), kSmallPayload);
    for (const auto& line : split_lines(d)) {
      ASSERT_TRUE(line.starts_with("m.t:") && line.ends_with("|ms")) << line;
      for (auto& v : split(line.substr(4, line.size() - 4 - 3), ':'))
        values.push_back(std::move(v));
    }
  }
  ASSERT_EQ(values.size(), kValues);
  for (int i = 0; i < kValues; ++i) EXPECT_EQ(values[i], std::to_string(1000 + i));
  EXPECT_EQ(std::accumulate(f.events.begin(), f.events.end(), std::uint64_t{0}), kValues);
}

TEST(DogStatsdExporterTest, PacksSeveralLinesPerDatagramWithinMaxPayload) {
  constexpr int kPoints = 200;
  UdpReceiver receiver;
  DogStatsdOptions options;
  options.destination = receiver.destination();
  options.max_payload_bytes = kSmallPayload;
  auto sut = make_sut(options);
  ASSERT_NE(sut, nullptr);
  BatchBuilder b;
  const auto* s = b.series("pack.count", shm::Kind::kCounter, {{"env", "test"}}, "svc");
  std::vector<std::string> expected;
  for (int i = 0; i < kPoints; ++i) {
    b.point(s, i);
    expected.push_back("pack.count:" + std::to_string(i) + "|c|#env:test,service:svc");
  }

  const SendResult r = sut->send(b.batch());

  EXPECT_EQ(r.events_sent, kPoints);
  EXPECT_EQ(r.events_dropped, 0U);
  ASSERT_GT(r.requests, 1U);
  EXPECT_LT(r.requests, kPoints);
  const auto got = receiver.receive(r.requests, kWait);
  ASSERT_EQ(got.size(), r.requests);
  std::vector<std::string> lines;
  std::uint64_t bytes = 0;
  for (const auto& d : got) {
    EXPECT_LE(d.size(), kSmallPayload);
    bytes += d.size();
    for (auto& l : split_lines(d)) lines.push_back(std::move(l));
  }
  EXPECT_EQ(lines, expected);
  EXPECT_EQ(bytes, r.bytes);
}

TEST(DogStatsdExporterTest, LineLongerThanMaxPayloadIsSentAlone) {
  BatchBuilder b;
  const auto* small = b.series("small", shm::Kind::kCounter);
  const auto* big = b.series("big", shm::Kind::kCounter, {{"blob", std::string(300, 'x')}});
  b.point(small, 1).point(big, 2).point(small, 3);

  const Formatted f = format(b.batch(), true, false, kSmallPayload);

  ASSERT_EQ(f.datagrams.size(), 3U);
  EXPECT_EQ(f.datagrams[0], "small:1|c");
  EXPECT_EQ(f.datagrams[1], "big:2|c|#blob:" + std::string(300, 'x'));
  EXPECT_EQ(f.datagrams[2], "small:3|c");
  EXPECT_EQ(f.events, (std::vector<std::uint64_t>{1, 1, 1}));
}

TEST(DogStatsdExporterTest, LineOverTheDatagramLimitIsDroppedAsTooLarge) {
  UdpReceiver receiver;
  DogStatsdOptions options;
  options.destination = receiver.destination();
  auto sut = make_sut(options);
  ASSERT_NE(sut, nullptr);
  BatchBuilder b;
  b.point(b.series("huge", shm::Kind::kCounter,
                   {{"blob", std::string(kDogStatsdMaxDatagramBytes, 'x')}}),
          1);
  b.point(b.series("fine", shm::Kind::kCounter), 1);

  const SendResult r = sut->send(b.batch());

  EXPECT_EQ(r.events_dropped, 1U);
  EXPECT_EQ(r.events_sent, 1U);
  EXPECT_EQ(sut->drops().too_large.load(), 1U);
  EXPECT_EQ(receiver.receive(1, kWait), std::vector<std::string>{"fine:1|c"});
}

TEST(DogStatsdExporterTest, DeliversOverUnixDatagramSocket) {
  TempDir dir;
  UnixReceiver receiver(dir.path() / "dsd.socket");
  DogStatsdOptions options;
  options.destination = receiver.destination();
  auto sut = make_sut(options);
  ASSERT_NE(sut, nullptr);
  BatchBuilder b;
  b.point(b.series("uds.count", shm::Kind::kCounter, {{"env", "test"}}, "svc"), 5);
  b.point(b.series("uds.latency", shm::Kind::kTiming), 1.25);

  const SendResult r = sut->send(b.batch());

  EXPECT_EQ(r.events_sent, 2U);
  EXPECT_EQ(r.requests, 1U);
  EXPECT_EQ(receiver.receive(1, kWait),
            std::vector<std::string>{"uds.count:5|c|#env:test,service:svc\nuds.latency:1.25|ms"});
}

TEST(DogStatsdExporterTest, OpensBreakerAgainstClosedPortAndDropsWhileOpen) {
  constexpr std::uint32_t kThreshold = 3;
  DogStatsdOptions options;
  options.destination = "127.0.0.1:" + std::to_string(testing::closed_udp_port());
  options.breaker_failures = kThreshold;
  options.breaker_open = milliseconds(60'000);
  auto sut = make_sut(options);
  ASSERT_NE(sut, nullptr);
  BatchBuilder b;
  const auto* s = b.series("down", shm::Kind::kCounter);
  b.point(s, 1).point(s, 2);
  std::uint32_t failed = 0;
  for (std::uint32_t i = 0;
       i < 2 * kThreshold + 2 && std::string(to_string(sut->breaker().state)) != "open"; ++i) {
    if (sut->send(b.batch()).send_errors > 0) ++failed;
  }
  ASSERT_EQ(failed, kThreshold);
  ASSERT_EQ(std::string(to_string(sut->breaker().state)), "open");

  const SendResult r = sut->send(b.batch());

  EXPECT_EQ(r.events_dropped, b.batch().size());
  EXPECT_EQ(r.events_sent, 0U);
  EXPECT_EQ(r.requests, 0U);
  EXPECT_EQ(sut->drops().breaker_open.load(), b.batch().size());
}

TEST(DogStatsdExporterTest, HalfOpenProbeClosesOnceListenerExists) {
  constexpr std::uint32_t kThreshold = 1;
  const std::uint16_t port = testing::closed_udp_port();
  DogStatsdOptions options;
  options.destination = "127.0.0.1:" + std::to_string(port);
  options.breaker_failures = kThreshold;
  options.breaker_open = milliseconds(100);
  auto sut = make_sut(options);
  ASSERT_NE(sut, nullptr);
  BatchBuilder b;
  b.point(b.series("probe", shm::Kind::kCounter), 1);
  ASSERT_TRUE(wait_until(
      [&] {
        (void)sut->send(b.batch());
        return std::string(to_string(sut->breaker().state)) == "open";
      },
      kWait, [&] { return "breaker " + std::string(to_string(sut->breaker().state)); }));
  UdpReceiver receiver(port);

  ASSERT_TRUE(wait_until(
      [&] {
        (void)sut->send(b.batch());
        return std::string(to_string(sut->breaker().state)) == "closed";
      },
      kWait, [&] { return "breaker " + std::string(to_string(sut->breaker().state)); }));

  // The empty probe datagram (StatsD servers skip empty lines), then the batch.
  EXPECT_EQ(receiver.receive(2, kWait), (std::vector<std::string>{"", "probe:1|c"}));
}

TEST(DogStatsdExporterTest, ProbesOfAClosedPortSendNoBatchAndCountEveryEventDropped) {
  constexpr std::uint64_t kProbes = 5;
  DogStatsdOptions options;
  options.destination = "127.0.0.1:" + std::to_string(testing::closed_udp_port());
  options.breaker_failures = 1;
  options.breaker_open = milliseconds(20);
  auto sut = make_sut(options);
  ASSERT_NE(sut, nullptr);
  BatchBuilder b;
  const auto* s = b.series("probed", shm::Kind::kCounter);
  b.point(s, 1).point(s, 2);
  ASSERT_TRUE(wait_until(
      [&] {
        (void)sut->send(b.batch());
        return std::string(to_string(sut->breaker().state)) == "open";
      },
      kWait, [&] { return "breaker " + std::string(to_string(sut->breaker().state)); }));
  std::uint64_t offered = 0;
  std::uint64_t sent = 0;
  std::uint64_t dropped = 0;

  ASSERT_TRUE(wait_until(
      [&] {
        const SendResult r = sut->send(b.batch());
        offered += b.batch().size();
        sent += r.events_sent;
        dropped += r.events_dropped;
        return sut->breaker().probes_failed >= kProbes;
      },
      kWait, [&] { return "breaker " + std::string(to_string(sut->breaker().state)); }));

  EXPECT_EQ(sent, 0U);
  EXPECT_EQ(dropped, offered);
  EXPECT_EQ(sut->breaker().probes_sent, sut->breaker().probes_failed);
  EXPECT_EQ(std::string(to_string(sut->breaker().state)), "open");
}

TEST(DogStatsdExporterTest, CreateRejectsPayloadOutOfRange) {
  DogStatsdOptions too_small;
  too_small.max_payload_bytes = kDogStatsdMinPayloadBytes - 1;
  DogStatsdOptions too_big;
  too_big.max_payload_bytes = kDogStatsdMaxDatagramBytes + 1;

  auto a = DogStatsdExporter::create(too_small);
  auto b = DogStatsdExporter::create(too_big);

  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, shm::Errc::kInvalidOptions);
  EXPECT_NE(a.error().message.find("255"), std::string::npos) << a.error().message;
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, shm::Errc::kInvalidOptions);
}

}  // namespace
}  // namespace shmstats::collector
