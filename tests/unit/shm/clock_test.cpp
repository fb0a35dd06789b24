#include "shm/clock.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace shmstats::shm {
namespace {

// Issue #5: an event's ts is untrusted; ticks that convert to 2^64 ns or more made the cast of
// the double to uint64 undefined (it returned garbage, or trapped under UBSan).
TEST(TickConverterTest, TicksBeyondTheRangeOfUint64ClampToTheLargestTime) {
  const TickConverter sut;  // 1 ns per tick from 0: the largest ticks convert to 2^64 ns
  constexpr std::uint64_t kLargestTicks = ~std::uint64_t{0};
  constexpr std::uint64_t kSmallTicks = 12345;

  EXPECT_EQ(sut.to_monotonic_ns(kLargestTicks), ~std::uint64_t{0});
  EXPECT_EQ(sut.to_monotonic_ns(kSmallTicks), kSmallTicks);
}

}  // namespace
}  // namespace shmstats::shm
