// collector/source_check.cpp: the attach policy and the integrity check, seen through the Source
// that uses them.
#include "collector/source_check.h"

#include <gtest/gtest.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "collector/source.h"
#include "shm/segment.h"
#include "tests/support/support.h"
#include "tests/unit/collector/raw_segment.h"

namespace shmstats::collector {
namespace {

using shm::Segment;
using testing::make_raw;
using testing::raw_options;
using testing::SegmentGuard;
using testing::truncate_file;
using testing::unique_prefix;

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
