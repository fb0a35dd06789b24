// collector/source.cpp: what the collector takes from one segment's rings.
#include "collector/source.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "shm/clock.h"
#include "shm/mapping_guard.h"
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

// Drained slot pages are given back up to the start of the 64 KiB window (the kernel's fault-around
// window) the read position is in, each page once over a lap; after a lap or more between two
// releases, all of them.
TEST(SourceReleaseTest, PagesBeforeTheReadWindowAreGivenBackOnceAndTheNextLapStillDrains) {
  SegmentGuard guard(unique_prefix());
  Options o;
  o.shm_prefix = guard.prefix();
  o.rings = 1;
  o.ring_capacity = 8192;  // 256 KiB of slots
  o.read_environment = false;
  auto producer = Client::create(o);
  ASSERT_TRUE(producer) << producer.error().message;
  auto gauge = producer->gauge("release.values");
  ASSERT_TRUE(gauge);
  auto opened = Source::open(producer->segment_name(), AttachPolicy{});
  ASSERT_TRUE(opened) << opened.error().message;
  auto& sut = *opened.value();
  const ClockMap clock = ClockMap::calibrate();
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  std::uint64_t batch_id = 0;
  double next = 0;
  // Pushes n events (values counting up) and drains them; true if all came back in order.
  auto push_and_drain = [&](int n) {
    const double first = next;
    for (int i = 0; i < n; ++i) {
      if (!gauge->set(next)) return false;
      next += 1;
    }
    Batch batch;
    const DrainResult res =
        sut.drain_ring(0, static_cast<std::size_t>(n), clock, ++batch_id, batch);
    if (res.events != static_cast<std::size_t>(n) || batch.points.size() != res.events) {
      return false;
    }
    for (int i = 0; i < n; ++i) {
      if (batch.points[static_cast<std::size_t>(i)].value != first + i) return false;
    }
    return true;
  };

  constexpr std::uint64_t kWindow = 64 * 1024;
  if (page >= kWindow) GTEST_SKIP() << "pages of " << page << " B: no page is inside a window";
  const auto slots = reinterpret_cast<std::uintptr_t>(sut.ring_slots_address(0));
  constexpr int kFirst = 3400;  // 108 800 B drained: at least one whole window behind
  ASSERT_TRUE(push_and_drain(kFirst));
  const std::uint64_t behind = kFirst * sizeof(shm::Event);
  const std::uintptr_t window = std::max<std::uintptr_t>((slots + behind) & ~(kWindow - 1), slots);
  EXPECT_EQ(sut.release_drained_pages(), window - slots)
      << "every page before the read position's 64 KiB window, none in it";
  EXPECT_EQ(sut.release_drained_pages(), 0U) << "each page is given back once";

  // One lap in quarter-ring steps, with a release after each (the last ones wrap): every slot
  // page is given back exactly once.
  constexpr int kQuarter = 2048;
  std::uint64_t lap = 0;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(push_and_drain(kQuarter)) << "step " << i;
    lap += sut.release_drained_pages();
  }
  EXPECT_EQ(lap, std::uint64_t{4} * kQuarter * sizeof(shm::Event));
  // A lap and more between two releases: every slot page at once.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(push_and_drain(kQuarter)) << "step " << i;
  EXPECT_EQ(sut.release_drained_pages(), std::uint64_t{4} * kQuarter * sizeof(shm::Event));
  EXPECT_EQ(sut.stats().invalid_events, 0U);
}

// --- hostile segments (issue #5) ------------------------------------------------------------

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

shm::SegmentOptions raw_options(const std::string& prefix) {
  shm::SegmentOptions o;
  o.prefix = prefix;
  o.service = "source-test";
  o.ring_count = 2;
  o.ring_capacity = 1024;
  o.series_capacity = 8;
  o.strings_size = 4096;
  return o;
}

// A segment made with shm::Segment::create (no producer library, whose close would write to it)
// and a Source attached to it.
struct RawSegment {
  shm::Segment segment;
  std::unique_ptr<Source> source;
};

std::optional<RawSegment> make_raw(const std::string& prefix) {
  auto created = Segment::create(raw_options(prefix));
  EXPECT_TRUE(created) << created.error().message;
  if (!created) return std::nullopt;
  auto opened = Source::open(created.value().name(), AttachPolicy{});
  EXPECT_TRUE(opened) << opened.error().message;
  if (!opened) return std::nullopt;
  return RawSegment{std::move(created).value(), std::move(opened).value()};
}

::testing::AssertionResult truncate_file(const std::string& name, off_t bytes) {
  const int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
  if (fd < 0) return ::testing::AssertionFailure() << "shm_open: " << std::strerror(errno);
  const int rc = ::ftruncate(fd, bytes);
  ::close(fd);
  if (rc != 0) return ::testing::AssertionFailure() << "ftruncate failed";
  return ::testing::AssertionSuccess();
}

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

TEST(SourceCheckTest, UntouchedSegmentChecksOut) {
  SegmentGuard guard(unique_prefix());
  auto raw = make_raw(guard.prefix());
  ASSERT_TRUE(raw);

  EXPECT_EQ(raw->source->check(), nullptr);
}

TEST(SourceCheckTest, RewrittenOwnerQuarantinesAsHeaderChangedAndKeepsTheOwnerSeenAtAttach) {
  SegmentGuard guard(unique_prefix());
  auto raw = make_raw(guard.prefix());
  ASSERT_TRUE(raw);
  constexpr std::int32_t kNoSuchPid = -1;  // would read as a dead owner, and get reclaimed
  raw->segment.header().owner_pid = kNoSuchPid;

  const Quarantine* q = raw->source->check();

  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->reason, QuarantineReason::kHeaderChanged);
  EXPECT_NE(q->message.find("owner_pid"), std::string::npos) << q->message;
  EXPECT_FALSE(raw->source->producer_finished()) << "this process, the owner at attach, lives";
  EXPECT_EQ(raw->source->stats().pid, ::getpid());
}

TEST(SourceCheckTest, UnknownSegmentStateQuarantinesAsCorruptState) {
  SegmentGuard guard(unique_prefix());
  auto raw = make_raw(guard.prefix());
  ASSERT_TRUE(raw);
  constexpr std::uint32_t kUnknownState = 77;
  raw->segment.header().state.store(kUnknownState);

  const Quarantine* q = raw->source->check();

  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->reason, QuarantineReason::kCorruptState);
  EXPECT_NE(q->message.find("77"), std::string::npos) << q->message;
}

TEST(SourceCheckTest, SeriesCountGoingBackwardsQuarantinesAsCorruptState) {
  SegmentGuard guard(unique_prefix());
  auto raw = make_raw(guard.prefix());
  ASSERT_TRUE(raw);
  constexpr std::uint32_t kPublished = 3;
  raw->segment.header().series_count.store(kPublished);
  ASSERT_EQ(raw->source->check(), nullptr) << "a growing count is normal";
  raw->segment.header().series_count.store(kPublished - 1);

  const Quarantine* q = raw->source->check();

  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->reason, QuarantineReason::kCorruptState);
}

TEST(SourceCheckTest, FileShrunkUnderTheMappingQuarantinesAsTruncated) {
  SegmentGuard guard(unique_prefix());
  auto raw = make_raw(guard.prefix());
  ASSERT_TRUE(raw);
  constexpr off_t kTruncatedBytes = 4096;
  ASSERT_TRUE(truncate_file(raw->segment.name(), kTruncatedBytes));

  const Quarantine* q = raw->source->check();

  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->reason, QuarantineReason::kTruncated);
  EXPECT_NE(q->message.find("4096 bytes"), std::string::npos) << q->message;
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

TEST(SourceOpenTest, GroupWritableSegmentIsRefusedAsUnsafeModeUnlessAllowed) {
  SegmentGuard guard(unique_prefix());
  shm::SegmentOptions o = raw_options(guard.prefix());
  o.mode = 0660;
  auto created = Segment::create(o);
  ASSERT_TRUE(created) << created.error().message;
  QuarantineReason refusal = QuarantineReason::kCount;

  const auto refused = Source::open(created.value().name(), AttachPolicy{}, &refusal);
  const auto allowed = Source::open(created.value().name(), AttachPolicy{{}, true});

  ASSERT_FALSE(refused);
  EXPECT_EQ(refusal, QuarantineReason::kUnsafeMode);
  EXPECT_NE(refused.error().message.find("0660"), std::string::npos) << refused.error().message;
  EXPECT_TRUE(allowed) << "with allow_group_writable";
}

}  // namespace
}  // namespace shmstats::collector
