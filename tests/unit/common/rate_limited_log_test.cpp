// The rate limiter: its budget per window and key, what it counts as held back, and the count the
// next line written reports; and the spdlog front that writes that count.
#include "common/rate_limited_log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <thread>

namespace shmstats::common {
namespace {

using namespace std::chrono_literals;
using Clock = RateLimiter::Clock;

constexpr std::size_t kBudget = 3;
constexpr auto kWindow = 10s;

TEST(RateLimiterTest, WritesUpToItsBudgetThenHoldsBackAndCounts) {
  RateLimiter sut(kBudget, kWindow);
  const auto now = Clock::now();
  constexpr std::size_t kOverBudget = 2;

  std::size_t written = 0;
  for (std::size_t i = 0; i < kBudget + kOverBudget; ++i) {
    const auto decision = sut.admit("key", now + std::chrono::milliseconds(i));
    if (decision.write) {
      ++written;
      EXPECT_EQ(decision.suppressed_before, 0U);
    }
  }

  EXPECT_EQ(written, kBudget);
  EXPECT_EQ(sut.written_total(), kBudget);
  EXPECT_EQ(sut.suppressed_total(), kOverBudget);
}

TEST(RateLimiterTest, FirstLineOfTheNextWindowSaysHowManyWereHeldBack) {
  RateLimiter sut(1, kWindow);
  const auto start = Clock::now();
  ASSERT_TRUE(sut.admit(start).write);
  EXPECT_FALSE(sut.admit(start + kWindow / 2).write);
  EXPECT_FALSE(sut.admit(start + kWindow - 1ms).write);

  const auto next = sut.admit(start + kWindow);
  const auto after = sut.admit(start + 2 * kWindow);

  EXPECT_TRUE(next.write);
  EXPECT_EQ(next.suppressed_before, 2U);
  EXPECT_TRUE(after.write);
  EXPECT_EQ(after.suppressed_before, 0U);
  EXPECT_EQ(sut.suppressed_total(), 2U);
}

TEST(RateLimiterTest, EachKeyHasItsOwnBudget) {
  RateLimiter sut(1, kWindow);
  const auto now = Clock::now();

  EXPECT_TRUE(sut.admit("a", now).write);
  EXPECT_TRUE(sut.admit("b", now).write);
  EXPECT_FALSE(sut.admit("a", now).write);
  EXPECT_FALSE(sut.admit("b", now).write);
  EXPECT_EQ(sut.suppressed_total(), 2U);
}

TEST(RateLimitedLogTest, WritesThroughSpdlogWithTheHeldBackCount) {
  std::ostringstream out;
  auto logger = std::make_shared<spdlog::logger>(
      "rate_limited_log_test", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
  logger->set_pattern("%v");
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  constexpr auto kShortWindow = 50ms;
  RateLimitedLog sut(1, kShortWindow);

  const bool first = sut.log(spdlog::level::warn, "k", "line {}", 1);
  const bool second = sut.log(spdlog::level::warn, "k", "line {}", 2);
  std::this_thread::sleep_for(kShortWindow);
  const bool third = sut.log(spdlog::level::warn, "k", "line {}", 3);
  spdlog::set_default_logger(previous);

  EXPECT_TRUE(first);
  EXPECT_FALSE(second);
  EXPECT_TRUE(third);
  EXPECT_EQ(out.str(), "line 1\nline 3 (1 more suppressed since the last one)\n");
  EXPECT_EQ(sut.limiter().suppressed_total(), 1U);
}

}  // namespace
}  // namespace shmstats::common
