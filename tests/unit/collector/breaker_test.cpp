#include "collector/breaker.h"

#include <gtest/gtest.h>

#include <chrono>

namespace shmstats::collector {
namespace {

using State = CircuitBreaker::State;
using std::chrono::milliseconds;

constexpr std::uint32_t kThreshold = 3;
constexpr milliseconds kOpenFor{1000};
const CircuitBreaker::Clock::time_point kStart{std::chrono::seconds(100)};

// Drives a closed breaker to open at kStart.
void open_at_start(CircuitBreaker& b) {
  for (std::uint32_t i = 0; i < kThreshold; ++i) b.on_failure(kStart);
  ASSERT_EQ(b.state(), State::kOpen);
}

TEST(CircuitBreakerTest, StartsClosedAndAllowsSends) {
  CircuitBreaker sut(kThreshold, kOpenFor);

  EXPECT_EQ(sut.state(), State::kClosed);
  EXPECT_TRUE(sut.allow(kStart));
  EXPECT_EQ(sut.opened_count(), 0U);
}

TEST(CircuitBreakerTest, OpensAfterThresholdConsecutiveFailures) {
  CircuitBreaker sut(kThreshold, kOpenFor);

  for (std::uint32_t i = 0; i + 1 < kThreshold; ++i) sut.on_failure(kStart);
  ASSERT_EQ(sut.state(), State::kClosed);
  sut.on_failure(kStart);

  EXPECT_EQ(sut.state(), State::kOpen);
  EXPECT_EQ(sut.opened_count(), 1U);
  EXPECT_FALSE(sut.allow(kStart));
}

TEST(CircuitBreakerTest, SuccessResetsTheFailureCount) {
  CircuitBreaker sut(kThreshold, kOpenFor);

  for (std::uint32_t i = 0; i + 1 < kThreshold; ++i) sut.on_failure(kStart);
  sut.on_success();
  for (std::uint32_t i = 0; i + 1 < kThreshold; ++i) sut.on_failure(kStart);

  EXPECT_EQ(sut.state(), State::kClosed);
  EXPECT_EQ(sut.opened_count(), 0U);
}

TEST(CircuitBreakerTest, RefusesUntilTheOpenDurationElapsed) {
  CircuitBreaker sut(kThreshold, kOpenFor);
  open_at_start(sut);

  EXPECT_FALSE(sut.allow(kStart + kOpenFor - milliseconds(1)));
  EXPECT_EQ(sut.state(), State::kOpen);
}

TEST(CircuitBreakerTest, AllowsExactlyOneProbeWhenHalfOpen) {
  CircuitBreaker sut(kThreshold, kOpenFor);
  open_at_start(sut);

  EXPECT_TRUE(sut.allow(kStart + kOpenFor));
  EXPECT_EQ(sut.state(), State::kHalfOpen);
  EXPECT_FALSE(sut.allow(kStart + kOpenFor));
}

TEST(CircuitBreakerTest, ProbeSuccessCloses) {
  CircuitBreaker sut(kThreshold, kOpenFor);
  open_at_start(sut);
  ASSERT_TRUE(sut.allow(kStart + kOpenFor));

  sut.on_success();

  EXPECT_EQ(sut.state(), State::kClosed);
  EXPECT_TRUE(sut.allow(kStart + kOpenFor));
  EXPECT_EQ(sut.opened_count(), 1U);
}

TEST(CircuitBreakerTest, ProbeFailureReopensAndRestartsTheTimer) {
  CircuitBreaker sut(kThreshold, kOpenFor);
  open_at_start(sut);
  const auto probe_time = kStart + kOpenFor;
  ASSERT_TRUE(sut.allow(probe_time));

  sut.on_failure(probe_time);

  EXPECT_EQ(sut.state(), State::kOpen);
  EXPECT_EQ(sut.opened_count(), 2U);
  EXPECT_FALSE(sut.allow(probe_time + kOpenFor - milliseconds(1)));
  EXPECT_TRUE(sut.allow(probe_time + kOpenFor));
}

TEST(CircuitBreakerTest, ZeroThresholdOpensOnFirstFailure) {
  CircuitBreaker sut(0, kOpenFor);

  sut.on_failure(kStart);

  EXPECT_EQ(sut.state(), State::kOpen);
}

TEST(CircuitBreakerTest, NamesEveryState) {
  EXPECT_STREQ(CircuitBreaker::to_string(State::kClosed), "closed");
  EXPECT_STREQ(CircuitBreaker::to_string(State::kOpen), "open");
  EXPECT_STREQ(CircuitBreaker::to_string(State::kHalfOpen), "half_open");
}

}  // namespace
}  // namespace shmstats::collector
