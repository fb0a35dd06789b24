// collector/page_release.cpp: drained slot pages given back, seen through the Source that drains.
#include "collector/page_release.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "collector/source.h"
#include "shm/layout.h"
#include "shmstats/shmstats.h"
#include "tests/support/support.h"

namespace shmstats::collector {
namespace {

using testing::SegmentGuard;
using testing::unique_prefix;

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

}  // namespace
}  // namespace shmstats::collector
