#include "collector/delivery.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

namespace shmstats::collector {
namespace {

Batch batch_with_id(std::uint64_t id) {
  Batch b;
  b.id = id;
  return b;
}

void done(DeliveryTracker& sut, std::uint64_t id) {
  sut.batch_done("out", batch_with_id(id), BatchOutcome{});
}

TEST(DeliveryTrackerTest, BatchCompletesWhenEveryOutputReported) {
  constexpr std::size_t kOutputs = 2;
  DeliveryTracker sut;
  sut.expect(1, kOutputs);

  done(sut, 1);
  const auto after_one = sut.completed_through();
  done(sut, 1);

  EXPECT_EQ(after_one, 0U);
  EXPECT_EQ(sut.completed_through(), 1U);
  EXPECT_EQ(sut.in_flight(), 0U);
  EXPECT_EQ(sut.completed_total(), 1U);
}

TEST(DeliveryTrackerTest, WatermarkWaitsForTheOldestBatch) {
  DeliveryTracker sut;
  sut.expect(1, 1);
  sut.expect(2, 1);
  sut.expect(3, 1);

  done(sut, 2);
  done(sut, 3);
  const auto before_oldest = sut.completed_through();
  done(sut, 1);

  EXPECT_EQ(before_oldest, 0U);
  EXPECT_EQ(sut.completed_through(), 3U);
  EXPECT_EQ(sut.completed_total(), 3U);
}

TEST(DeliveryTrackerTest, BatchWithNoOutputsIsCompleteAtOnce) {
  DeliveryTracker sut;

  sut.expect(1, 0);

  EXPECT_EQ(sut.completed_through(), 1U);
  EXPECT_EQ(sut.in_flight(), 0U);
  EXPECT_TRUE(sut.wait_idle(std::chrono::steady_clock::now()));
}

TEST(DeliveryTrackerTest, UnknownAndRepeatedReportsChangeNothing) {
  DeliveryTracker sut;
  sut.expect(5, 1);

  done(sut, 4);  // never expected
  done(sut, 5);
  done(sut, 5);  // a second report of a finished batch

  EXPECT_EQ(sut.completed_total(), 1U);
  EXPECT_EQ(sut.completed_through(), 5U);
  EXPECT_EQ(sut.in_flight(), 0U);
}

TEST(DeliveryTrackerTest, WaitIdleTimesOutWhileABatchIsOut) {
  DeliveryTracker sut;
  sut.expect(1, 1);

  const bool idle = sut.wait_idle(std::chrono::steady_clock::now() + std::chrono::milliseconds(1));

  EXPECT_FALSE(idle);
  EXPECT_EQ(sut.in_flight(), 1U);
}

}  // namespace
}  // namespace shmstats::collector
