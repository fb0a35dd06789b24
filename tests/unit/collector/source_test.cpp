// collector/source.cpp: what the collector takes from one segment's rings.
#include "collector/source.h"

#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "shm/clock.h"
#include "shm/segment.h"
#include "shmstats/shmstats.h"
#include "tests/support/support.h"

namespace shmstats::collector {
namespace {

using shm::Segment;
using testing::SegmentGuard;
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

}  // namespace
}  // namespace shmstats::collector
