// collector/source.cpp: what the collector takes from one segment's rings (events, folds, ledger).
#include "collector/source.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <limits>

#include "shm/clock.h"
#include "shm/mapping_guard.h"
#include "shm/segment.h"
#include "shmstats/shmstats.h"
#include "tests/support/support.h"
#include "tests/unit/collector/raw_segment.h"

namespace shmstats::collector {
namespace {

using shm::Segment;
using testing::make_raw;
using testing::SegmentGuard;
using testing::truncate_file;
using testing::unique_prefix;

// Writes `value` into ring 0 the way a process that ignores the producer's rules would: straight
// into the slot, bypassing the producer library's checks.
void write_raw_event(const Segment& seg, std::uint32_t series_id, double value) {
  auto writer = seg.ring_writer(0);
  const shm::Event ev{
      series_id,       static_cast<std::uint8_t>(shm::Kind::kGauge), 0, 0, 1.0F, 0, value,
      shm::now_ticks()};
  ASSERT_TRUE(writer.try_push(ev, writer.capacity()));
}

TEST(SourceDrainTest, NonFiniteValueInARingIsCountedInvalidAndNotForwarded) {
  SegmentGuard guard(unique_prefix());
  Options o;
  o.shm_prefix = guard.prefix();
  o.service = "source-test";
  o.rings = 1;
  o.ring_capacity = 64;
  o.read_environment = false;
  auto producer = Client::create(o);
  ASSERT_TRUE(producer) << producer.error().message;
  auto gauge = producer->gauge("hostile.values");
  ASSERT_TRUE(gauge);
  constexpr double kBefore = 1.5;
  constexpr double kAfter = -2.5;
  ASSERT_TRUE(gauge->set(kBefore)) << "this thread claims ring 0";
  auto raw = Segment::attach(producer->segment_name(), Segment::Access::kReadWrite);
  ASSERT_TRUE(raw) << raw.error().message;
  constexpr int kNonFinite = 3;
  write_raw_event(raw.value(), gauge->series_id(), std::numeric_limits<double>::quiet_NaN());
  write_raw_event(raw.value(), gauge->series_id(), std::numeric_limits<double>::infinity());
  write_raw_event(raw.value(), gauge->series_id(), -std::numeric_limits<double>::infinity());
  ASSERT_TRUE(gauge->set(kAfter));
  auto opened = Source::open(producer->segment_name(), AttachPolicy{});
  ASSERT_TRUE(opened) << opened.error().message;
  auto& sut = *opened.value();
  constexpr std::size_t kBudget = 100;
  constexpr std::uint64_t kBatchId = 1;
  Batch batch;

  const DrainResult result = sut.drain_ring(0, kBudget, ClockMap::calibrate(), kBatchId, batch);

  EXPECT_EQ(result.events, 2U + kNonFinite) << "every event is taken from the ring";
  ASSERT_EQ(batch.points.size(), 2U) << "only the finite values are forwarded";
  EXPECT_EQ(batch.points[0].value, kBefore);
  EXPECT_EQ(batch.points[1].value, kAfter);
  const SourceStats stats = sut.stats();
  EXPECT_EQ(stats.invalid_events, static_cast<std::uint64_t>(kNonFinite));
  EXPECT_EQ(stats.drained, 2U + kNonFinite);
}

TEST(SourceDrainTest, UnstampedEventsGetTheirDrainTime) {
  SegmentGuard guard(unique_prefix());
  Options o;
  o.shm_prefix = guard.prefix();
  o.rings = 1;
  o.ring_capacity = 64;
  o.timestamps = Timestamps::kCollector;
  o.read_environment = false;
  auto producer = Client::create(o);
  ASSERT_TRUE(producer) << producer.error().message;
  auto counter = producer->counter("unstamped.total");
  ASSERT_TRUE(counter);
  constexpr int kEvents = 3;
  for (int i = 0; i < kEvents; ++i) ASSERT_TRUE(counter->add(1));
  auto opened = Source::open(producer->segment_name(), AttachPolicy{});
  ASSERT_TRUE(opened) << opened.error().message;
  const ClockMap clock = ClockMap::calibrate();
  Batch batch;
  const std::int64_t before = clock.now_unix_ns();

  (void)opened.value()->drain_ring(0, kEvents, clock, 1, batch);

  const std::int64_t after = clock.now_unix_ns();
  ASSERT_EQ(batch.points.size(), static_cast<std::size_t>(kEvents));
  for (const auto& p : batch.points) {
    EXPECT_GE(p.time_unix_ns, before);
    EXPECT_LE(p.time_unix_ns, after);
  }
}

// --- hostile segments (issue #5) ------------------------------------------------------------

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

// Issue #5: a hostile ts near 2^63 with clock_source kMonotonicNs overflowed the signed sum.
TEST(ClockMapTest, HostileMonotonicTimestampSaturatesInsteadOfOverflowing) {
  const ClockMap sut = ClockMap::calibrate();
  ASSERT_GT(sut.monotonic_to_unix_ns, 0) << "Unix time is ahead of the time since boot";
  constexpr std::uint64_t kTwoTo63 = std::uint64_t{1} << 63;

  EXPECT_EQ(sut.to_unix_ns(kTwoTo63 - 1, shm::ClockSource::kMonotonicNs), kInt64Max);
  EXPECT_EQ(sut.to_unix_ns(kTwoTo63, shm::ClockSource::kMonotonicNs), kInt64Max);
  EXPECT_EQ(sut.to_unix_ns(~std::uint64_t{0}, shm::ClockSource::kMonotonicNs), kInt64Max);
  EXPECT_EQ(sut.to_unix_ns(0, shm::ClockSource::kMonotonicNs), sut.monotonic_to_unix_ns);
}

// Issue #5: the ledger balance was summed in signed arithmetic, which hostile counters overflow
// (undefined; UBSan stops the ASan build here). Unsigned, it wraps to the same difference.
TEST(SourceStatsTest, HostileRingCountersWrapTheLedgerInsteadOfOverflowing) {
  SegmentGuard guard(unique_prefix());
  auto raw = make_raw(guard.prefix());
  ASSERT_TRUE(raw);
  constexpr std::uint64_t kPushed = static_cast<std::uint64_t>(kInt64Max);
  constexpr std::uint64_t kFolded = std::uint64_t{1} << 63;
  shm::RingHeader& ring = raw->segment.ring_header(0);
  ring.pushed.store(kPushed);
  ring.folded.store(kFolded);

  const SourceStats stats = raw->source->stats();

  EXPECT_EQ(stats.pushed, kPushed);
  EXPECT_EQ(stats.folded, kFolded);
  EXPECT_EQ(stats.unaccounted, static_cast<std::int64_t>(kPushed - kFolded));
}

// The drain reads ring headers past the new end before any check runs: SIGBUS, caught.
TEST(SourceDrainTest, DrainOfATruncatedSegmentSurvivesTheFaultAndQuarantinesIt) {
  ASSERT_TRUE(shm::install_mapping_fault_handler());
  SegmentGuard guard(unique_prefix());
  auto raw = make_raw(guard.prefix());
  ASSERT_TRUE(raw);
  constexpr off_t kTruncatedBytes = 4096;
  ASSERT_TRUE(truncate_file(raw->segment.name(), kTruncatedBytes));
  constexpr std::size_t kBudget = 100;
  Batch batch;

  const DrainResult result = raw->source->drain_ring(0, kBudget, ClockMap::calibrate(), 1, batch);

  EXPECT_EQ(result.events, 0U);
  ASSERT_NE(raw->source->quarantine(), nullptr);
  EXPECT_EQ(raw->source->quarantine()->reason, QuarantineReason::kTruncated);
  EXPECT_NE(raw->source->quarantine()->message.find("SIGBUS"), std::string::npos)
      << raw->source->quarantine()->message;
}

TEST(SourceDrainTest, CorruptRingQuarantinesTheWholeSegment) {
  SegmentGuard guard(unique_prefix());
  auto raw = make_raw(guard.prefix());
  ASSERT_TRUE(raw);
  auto writer = raw->segment.ring_writer(1);
  const shm::Event ev{0, static_cast<std::uint8_t>(shm::Kind::kCounter), 0, 0, 1.0F, 0, 1.0, 0};
  ASSERT_TRUE(writer.try_push(ev, writer.capacity())) << "an event waits in ring 1";
  constexpr std::uint64_t kBeyondCapacity = 1024 + 1;
  raw->segment.ring_header(0).tail.store(kBeyondCapacity);
  constexpr std::size_t kBudget = 100;
  const ClockMap clock = ClockMap::calibrate();
  Batch batch;

  const DrainResult corrupt = raw->source->drain_ring(0, kBudget, clock, 1, batch);
  const DrainResult other = raw->source->drain_ring(1, kBudget, clock, 1, batch);

  EXPECT_TRUE(corrupt.corrupt);
  ASSERT_NE(raw->source->quarantine(), nullptr);
  EXPECT_EQ(raw->source->quarantine()->reason, QuarantineReason::kCorruptRing);
  EXPECT_NE(raw->source->quarantine()->message.find("ring 0"), std::string::npos);
  EXPECT_EQ(other.events, 0U) << "nothing more is read from a quarantined segment";
  EXPECT_EQ(raw->source->check(), raw->source->quarantine()) << "and it stays quarantined";
}

}  // namespace
}  // namespace shmstats::collector
