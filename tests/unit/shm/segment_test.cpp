#include "shm/segment.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "tests/support/support.h"

namespace shmstats::shm {
namespace {

using shmstats::testing::SegmentGuard;
using shmstats::testing::unique_prefix;

SegmentOptions small_options(const std::string& prefix) {
  SegmentOptions o;
  o.prefix = prefix;
  o.service = "segment-test";
  o.ring_count = 2;
  o.ring_capacity = 16;
  o.series_capacity = 8;
  return o;
}

mode_t file_mode(const std::string& name) {
  struct stat st {};
  if (::stat(("/dev/shm/" + name).c_str(), &st) != 0) return 0;
  return st.st_mode & 0777;
}

TEST(SegmentCreateTest, DefaultSegmentFitsInFiveMegabytes) {
  SegmentGuard guard(unique_prefix());
  SegmentOptions o;
  o.prefix = guard.prefix();
  auto sut = Segment::create(o);
  ASSERT_TRUE(sut) << sut.error().message;
  constexpr std::uint64_t kBudgetBytes = 5'000'000;
  EXPECT_LE(sut.value().geometry().total_size(), kBudgetBytes);
  EXPECT_EQ(sut.value().geometry().ring_count, 16U);
  EXPECT_EQ(sut.value().geometry().ring_capacity, 8192U);
  EXPECT_EQ(sut.value().geometry().series_capacity, 4096U);
}

// Layout 3: the ring headers side by side (a reader polling every ring touches their 2 pages,
// not one page per ring), each ring's slots on a page of their own, nothing overlapping.
TEST(SegmentCreateTest, RingHeadersSitTogetherAndEachRingsSlotsStartOnAPage) {
  SegmentGuard guard(unique_prefix());
  SegmentOptions o;
  o.prefix = guard.prefix();
  auto sut = Segment::create(o);
  ASSERT_TRUE(sut) << sut.error().message;
  const Segment& seg = sut.value();
  const Geometry& g = seg.geometry();
  const auto* base = reinterpret_cast<const unsigned char*>(&seg.header());
  const auto offset = [&](const void* p) {
    return static_cast<std::uint64_t>(static_cast<const unsigned char*>(p) - base);
  };
  const std::uint64_t headers_end = g.rings_offset() + g.ring_count * sizeof(RingHeader);
  EXPECT_LE((headers_end - 1) / kSlotsAlignment - g.rings_offset() / kSlotsAlignment, 1U)
      << "16 ring headers span at most 2 pages";
  for (std::uint32_t r = 0; r < g.ring_count; ++r) {
    EXPECT_EQ(offset(&seg.ring_header(r)), g.rings_offset() + r * sizeof(RingHeader)) << r;
    const std::uint64_t slots = offset(seg.ring_slots(r));
    EXPECT_EQ(slots % kSlotsAlignment, 0U) << r;
    EXPECT_GE(slots, headers_end) << r;
    EXPECT_EQ(slots, g.slots_offset() + r * g.ring_capacity * sizeof(Event)) << r;
  }
  EXPECT_EQ(offset(seg.ring_slots(g.ring_count - 1)) + g.ring_capacity * sizeof(Event),
            g.total_size());
  EXPECT_EQ(seg.header().slots_offset, g.slots_offset());
  EXPECT_EQ(g.total_size(), 4'988'928U) << "the size README.md gives";
}

TEST(SegmentCreateTest, WritesIdentityIntoHeader) {
  SegmentGuard guard(unique_prefix());
  auto sut = Segment::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut) << sut.error().message;
  const auto& h = sut.value().header();
  EXPECT_EQ(h.magic.load(), kMagic);
  EXPECT_EQ(h.layout_version, kLayoutVersion);
  EXPECT_EQ(h.owner_pid, ::getpid());
  EXPECT_EQ(h.owner_uid, ::getuid());
  EXPECT_EQ(h.owner_start_time, process_start_time(::getpid()));
  EXPECT_NE(h.owner_start_time, 0U);
  EXPECT_GT(h.created_realtime_ns, 0U);
  EXPECT_EQ(sut.value().service(), "segment-test");
  EXPECT_EQ(sut.value().state(), SegmentState::kActive);
  EXPECT_EQ(sut.value().name(),
            make_segment_name(guard.prefix(), ::getpid(), h.owner_start_time, 0));
}

TEST(SegmentCreateTest, ModeIsExactlyOwnerOnlyEvenWithPermissiveUmask) {
  SegmentGuard guard(unique_prefix());
  const mode_t old = ::umask(0);
  auto sut = Segment::create(small_options(guard.prefix()));
  ::umask(old);
  ASSERT_TRUE(sut) << sut.error().message;
  EXPECT_EQ(file_mode(sut.value().name()), 0600U);
}

TEST(SegmentCreateTest, GroupModeIsAppliedDespiteRestrictiveUmask) {
  SegmentGuard guard(unique_prefix());
  auto o = small_options(guard.prefix());
  o.mode = 0660;
  const mode_t old = ::umask(077);
  auto sut = Segment::create(o);
  ::umask(old);
  ASSERT_TRUE(sut) << sut.error().message;
  EXPECT_EQ(file_mode(sut.value().name()), 0660U);
}

TEST(SegmentCreateTest, RejectsWorldAccessibleMode) {
  auto o = small_options(unique_prefix());
  o.mode = 0666;
  const auto sut = Segment::create(o);
  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, Errc::kInvalidOptions);
  EXPECT_NE(sut.error().message.find("0666"), std::string::npos);
}

TEST(SegmentCreateTest, RejectsOptionsOutOfRangeNamingTheValue) {
  auto o = small_options(unique_prefix());
  o.ring_capacity = 1000;
  auto r = Segment::create(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidOptions);
  EXPECT_NE(r.error().message.find("ring capacity is 1000"), std::string::npos);
  o = small_options(unique_prefix());
  o.ring_count = 0;
  EXPECT_FALSE(Segment::create(o));
  o = small_options("bad/prefix");
  EXPECT_FALSE(Segment::create(o));
  o = small_options(unique_prefix());
  o.service = std::string(100, 's');
  EXPECT_FALSE(Segment::create(o));
}

// A new process never reuses an existing object: creation is exclusive, so a leftover segment
// with the same name (a dead process's undrained events) is left untouched.
TEST(SegmentCreateTest, NeverReusesAnExistingSegmentOfTheSameName) {
  SegmentGuard guard(unique_prefix());
  const std::string name =
      make_segment_name(guard.prefix(), ::getpid(), process_start_time(::getpid()), 0);
  {
    std::ofstream planted("/dev/shm/" + name);
    planted << "undrained";
  }
  const auto sut = Segment::create(small_options(guard.prefix()));
  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, Errc::kExists);
  std::ifstream check("/dev/shm/" + name);
  std::string content;
  check >> content;
  EXPECT_EQ(content, "undrained");
}

TEST(SegmentCreateTest, SequenceNumberSeparatesSegmentsOfOneProcess) {
  SegmentGuard guard(unique_prefix());
  auto first = Segment::create(small_options(guard.prefix()), 0);
  auto second = Segment::create(small_options(guard.prefix()), 1);
  ASSERT_TRUE(first);
  ASSERT_TRUE(second);
  EXPECT_NE(first.value().name(), second.value().name());
  EXPECT_EQ(list_segments(guard.prefix()).size(), 2U);
}

TEST(SegmentAttachTest, AttachesReadOnlyWithSameGeometry) {
  SegmentGuard guard(unique_prefix());
  auto created = Segment::create(small_options(guard.prefix()));
  ASSERT_TRUE(created);
  auto sut = Segment::attach(created.value().name(), Segment::Access::kReadOnly);
  ASSERT_TRUE(sut) << sut.error().message;
  EXPECT_FALSE(sut.value().writable());
  EXPECT_EQ(sut.value().geometry().total_size(), created.value().geometry().total_size());
  EXPECT_EQ(sut.value().service(), "segment-test");
}

TEST(SegmentAttachTest, ReportsMissingSegment) {
  const auto sut = Segment::attach("shmstats.does.not.exist", Segment::Access::kReadOnly);
  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, Errc::kNotFound);
}

TEST(SegmentAttachTest, RejectsWrongMagic) {
  SegmentGuard guard(unique_prefix());
  auto created = Segment::create(small_options(guard.prefix()));
  ASSERT_TRUE(created);
  created.value().header().magic.store(0x1122334455667788ULL);
  const auto sut = Segment::attach(created.value().name(), Segment::Access::kReadOnly);
  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, Errc::kInvalidSegment);
  EXPECT_NE(sut.error().message.find("0x1122334455667788"), std::string::npos);
}

TEST(SegmentAttachTest, RejectsOtherLayoutVersionNamingBoth) {
  SegmentGuard guard(unique_prefix());
  auto created = Segment::create(small_options(guard.prefix()));
  ASSERT_TRUE(created);
  created.value().header().layout_version = kLayoutVersion + 6;
  const auto sut = Segment::attach(created.value().name(), Segment::Access::kReadOnly);
  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, Errc::kVersionMismatch);
  EXPECT_NE(sut.error().message.find("version is " + std::to_string(kLayoutVersion + 6)),
            std::string::npos);
  EXPECT_NE(sut.error().message.find("reads version " + std::to_string(kLayoutVersion)),
            std::string::npos);
}

TEST(SegmentAttachTest, RejectsGeometryThatDoesNotMatchTheMapping) {
  SegmentGuard guard(unique_prefix());
  auto created = Segment::create(small_options(guard.prefix()));
  ASSERT_TRUE(created);
  auto& h = created.value().header();
  h.ring_count = 4000;  // would reach far past the mapping
  auto sut = Segment::attach(created.value().name(), Segment::Access::kReadOnly);
  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, Errc::kInvalidSegment);
  h.ring_count = 2;
  h.ring_capacity = 24;  // not a power of two
  sut = Segment::attach(created.value().name(), Segment::Access::kReadOnly);
  ASSERT_FALSE(sut);
  h.ring_capacity = 16;
  h.rings_offset += 8;
  sut = Segment::attach(created.value().name(), Segment::Access::kReadOnly);
  ASSERT_FALSE(sut);
  EXPECT_NE(sut.error().message.find("rings offset"), std::string::npos);
  h.rings_offset -= 8;
  h.slots_offset -= kSlotsAlignment;  // the slots would overlap the ring headers
  sut = Segment::attach(created.value().name(), Segment::Access::kReadOnly);
  ASSERT_FALSE(sut);
  EXPECT_NE(sut.error().message.find("slots offset"), std::string::npos);
  h.slots_offset += kSlotsAlignment;
  EXPECT_TRUE(Segment::attach(created.value().name(), Segment::Access::kReadOnly));
}

TEST(SegmentAttachTest, ValidatorRejectsBufferSmallerThanHeader) {
  alignas(64) unsigned char small[64] = {};
  const auto sut = validate_segment(small, sizeof(small));
  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, Errc::kInvalidSegment);
}

TEST(SegmentReadTest, ReadSeriesBoundsChecksUntrustedEntries) {
  SegmentGuard guard(unique_prefix());
  auto created = Segment::create(small_options(guard.prefix()));
  ASSERT_TRUE(created);
  auto& seg = created.value();
  // Publish one entry by hand whose text points past the pool.
  auto& e = seg.series_entry(0);
  e.id = 0;
  e.kind = static_cast<std::uint8_t>(Kind::kCounter);
  e.text_offset = seg.geometry().strings_size - 2;
  e.text_len = 10;
  e.name_len = 10;
  e.state.store(kSeriesPublished);
  seg.header().series_count.store(1000);  // lies: more than the capacity
  EXPECT_EQ(seg.series_count(), seg.geometry().series_capacity);
  const auto sut = seg.read_series(0);
  ASSERT_FALSE(sut);
  EXPECT_NE(sut.error().message.find("runs past the string pool"), std::string::npos);
  EXPECT_FALSE(seg.read_series(1));  // not published
  EXPECT_FALSE(seg.read_series(1u << 30));
}

TEST(SegmentCountersTest, InvalidValueDropsAreReadBackByReason) {
  SegmentGuard guard(unique_prefix());
  auto sut = Segment::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut) << sut.error().message;
  constexpr std::uint64_t kInvalidValues = 3;
  constexpr std::uint64_t kFoldedNoRing = 2;
  constexpr std::uint64_t kRingFolded = 5;
  auto& h = sut.value().header();
  h.dropped[static_cast<std::size_t>(DropReason::kInvalidValue)].store(kInvalidValues);
  h.folded_no_ring.store(kFoldedNoRing);
  sut.value().ring_header(0).folded.store(kRingFolded);
  sut.value().ring_header(0).dropped[static_cast<std::size_t>(DropReason::kInvalidValue)].store(1);

  const SegmentCounters counters = sut.value().counters();
  const RingStats ring = sut.value().ring_stats(0);

  EXPECT_EQ(counters.dropped[static_cast<std::size_t>(DropReason::kInvalidValue)], kInvalidValues);
  EXPECT_EQ(counters.folded_no_ring, kFoldedNoRing);
  EXPECT_EQ(ring.folded, kRingFolded);
  EXPECT_EQ(ring.dropped[static_cast<std::size_t>(DropReason::kInvalidValue)], 1U);
  EXPECT_EQ(ring.dropped_total(), 1U);
}

// small_options with the smallest string pool: the whole segment fits in a CopiedSegment.
SegmentOptions copyable_options(const std::string& prefix) {
  auto o = small_options(prefix);
  o.strings_size = static_cast<std::uint32_t>(kMaxSeriesTextBytes);
  return o;
}

// Memory aligned like a mapping, holding a copy of `source`'s segment.
struct alignas(kCacheLine) CopiedSegment {
  explicit CopiedSegment(const Segment& source) : size(source.mapped_size()) {
    std::memcpy(bytes, &source.header(), std::min(size, sizeof(bytes)));
  }
  std::size_t size;
  alignas(kCacheLine) unsigned char bytes[64 * 1024];
};

TEST(SegmentViewTest, ReadsACopyOfACreatedSegment) {
  SegmentGuard guard(unique_prefix());
  auto created = Segment::create(copyable_options(guard.prefix()));
  ASSERT_TRUE(created) << created.error().message;
  auto copy = std::make_unique<CopiedSegment>(created.value());
  ASSERT_LE(copy->size, sizeof(copy->bytes));
  auto sut = Segment::view(copy->bytes, copy->size);
  ASSERT_TRUE(sut) << sut.error().message;
  EXPECT_TRUE(sut.value().name().empty());
  EXPECT_TRUE(sut.value().writable());
  EXPECT_EQ(sut.value().mapped_size(), copy->size);
  EXPECT_EQ(&sut.value().header(), static_cast<void*>(copy->bytes));
  EXPECT_EQ(sut.value().service(), "segment-test");
  EXPECT_EQ(sut.value().geometry().ring_count, created.value().geometry().ring_count);
}

TEST(SegmentViewTest, RejectsMemorySmallerThanTheClaimedSize) {
  SegmentGuard guard(unique_prefix());
  auto created = Segment::create(copyable_options(guard.prefix()));
  ASSERT_TRUE(created) << created.error().message;
  auto copy = std::make_unique<CopiedSegment>(created.value());
  const auto sut = Segment::view(copy->bytes, copy->size - 1);
  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, Errc::kInvalidSegment);
  EXPECT_NE(sut.error().message.find("only"), std::string::npos) << sut.error().message;
}

TEST(SegmentViewTest, RejectsMisalignedMemory) {
  SegmentGuard guard(unique_prefix());
  auto created = Segment::create(copyable_options(guard.prefix()));
  ASSERT_TRUE(created) << created.error().message;
  auto copy = std::make_unique<CopiedSegment>(created.value());
  const auto sut = Segment::view(copy->bytes + 8, copy->size);
  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, Errc::kInvalidOptions);
}

TEST(OwnerStatusTest, TellsLiveOwnerFromDeadOrReusedPid) {
  const auto start = process_start_time(::getpid());
  EXPECT_EQ(owner_status(::getpid(), start), OwnerStatus::kAlive);
  EXPECT_EQ(owner_status(::getpid(), start + 1), OwnerStatus::kDead);  // pid reused
  EXPECT_EQ(owner_status(0, 0), OwnerStatus::kDead);
  EXPECT_EQ(owner_status(4'000'000, 1), OwnerStatus::kDead);  // above pid_max
}

}  // namespace
}  // namespace shmstats::shm
