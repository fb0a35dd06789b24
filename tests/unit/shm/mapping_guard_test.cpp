// shm/mapping_guard.h: a segment file truncated under a reader's mapping (issue #5). Real
// /dev/shm files, truncated with ftruncate while mapped; the SIGBUS is the kernel's.
#include "shm/mapping_guard.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <string>
#include <vector>

#include "shm/segment.h"
#include "tests/support/support.h"

namespace shmstats::shm {
namespace {

using shmstats::testing::SegmentGuard;
using shmstats::testing::unique_prefix;

constexpr off_t kTruncatedBytes = 4096;  // the header page survives; the rings do not

SegmentOptions small_options(const std::string& prefix) {
  SegmentOptions o;
  o.prefix = prefix;
  o.service = "guard-test";
  o.ring_count = 2;
  o.ring_capacity = 1024;
  o.series_capacity = 8;
  o.strings_size = 4096;
  return o;
}

// ftruncate on the segment's file, as a producer could do to its own segment.
::testing::AssertionResult truncate_file(const std::string& name, off_t bytes) {
  const int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
  if (fd < 0) return ::testing::AssertionFailure() << "shm_open: " << std::strerror(errno);
  const int rc = ::ftruncate(fd, bytes);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return ::testing::AssertionFailure() << "ftruncate: " << std::strerror(err);
  return ::testing::AssertionSuccess();
}

TEST(MappingGuardTest, ReadPastTheEndOfATruncatedFileReadsZerosAndIsCounted) {
  ASSERT_TRUE(install_mapping_fault_handler());
  SegmentGuard guard(unique_prefix());
  auto created = Segment::create(small_options(guard.prefix()));
  ASSERT_TRUE(created) << created.error().message;
  constexpr std::uint64_t kTail = 7;
  created.value().ring_header(1).tail.store(kTail);
  auto sut = Segment::attach(created.value().name(), Segment::Access::kReadOnly);
  ASSERT_TRUE(sut) << sut.error().message;
  ASSERT_EQ(sut.value().ring_header(1).tail.load(), kTail) << "readable before the truncation";
  const std::uint64_t faults_before = mapping_faults_total();
  ASSERT_TRUE(truncate_file(created.value().name(), kTruncatedBytes));

  const std::uint64_t tail = sut.value().ring_header(1).tail.load();

  EXPECT_EQ(tail, 0U) << "the page past the end reads as a zero page";
  EXPECT_EQ(sut.value().truncation_faults(), 1U);
  const auto* base = reinterpret_cast<const unsigned char*>(&sut.value().header());
  const auto* field = reinterpret_cast<const unsigned char*>(&sut.value().ring_header(1).tail);
  EXPECT_EQ(sut.value().first_truncation_fault_offset(), static_cast<std::uint64_t>(field - base));
  EXPECT_EQ(mapping_faults_total(), faults_before + 1);
  EXPECT_EQ(sut.value().current_file_size(), kTruncatedBytes);
  EXPECT_EQ(sut.value().header().magic.load(), kMagic) << "the pages that remain are untouched";
}

TEST(MappingGuardTest, GuardIsRefusedWhenEverySlotIsTakenAndWorksAgainOnceOneIsFreed) {
  // Every slot but those held elsewhere in this process (none: no segment is attached here).
  std::vector<GuardedMapping> held;
  std::vector<unsigned char> memory(kMaxGuardedMappings);
  for (std::size_t i = 0; i < kMaxGuardedMappings; ++i) {
    auto g = GuardedMapping::guard(&memory[i], 1);
    ASSERT_TRUE(g) << "slot " << i << ": " << g.error().message;
    held.push_back(std::move(g).value());
  }

  const auto refused = GuardedMapping::guard(memory.data(), 1);

  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find(std::to_string(kMaxGuardedMappings)), std::string::npos)
      << refused.error().message;
  held.pop_back();
  EXPECT_TRUE(GuardedMapping::guard(memory.data(), 1)) << "a freed slot is taken again";
}

// A SIGBUS outside every guarded mapping is a real bug: the handler must not swallow it.
TEST(MappingGuardDeathTest, FaultOutsideAnyGuardedMappingStillKillsTheProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  SegmentGuard guard(unique_prefix());
  const std::string name = guard.prefix() + ".unguarded";
  constexpr std::size_t kBytes = 8192;
  EXPECT_DEATH(
      {
        (void)install_mapping_fault_handler();
        const int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
        // Unlinked at once: this child dies, so no guard of its own removes the file later.
        ::shm_unlink(("/" + name).c_str());
        if (fd < 0 || ::ftruncate(fd, kBytes) != 0) std::_Exit(0);  // no death: the test fails
        void* p = ::mmap(nullptr, kBytes, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED || ::ftruncate(fd, 0) != 0) std::_Exit(0);
        const volatile unsigned char* bytes = static_cast<unsigned char*>(p);
        (void)bytes[kBytes - 1];  // SIGBUS: past the end of the file, in no guarded mapping
        std::_Exit(0);
      },
      "");
}

}  // namespace
}  // namespace shmstats::shm
