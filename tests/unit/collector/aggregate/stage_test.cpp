#include "collector/aggregate/stage.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "tests/unit/collector/batch_builder.h"

namespace shmstats::collector::aggregate {
namespace {

using Clock = Stage::Clock;
using testing::BatchBuilder;

const SeriesState* only_series(const Stage& sut) {
  EXPECT_EQ(sut.series().size(), 1U);
  return sut.series().empty() ? nullptr : sut.series()[0].get();
}

std::uint64_t dropped(const Stage& sut, DropReason reason) {
  return sut.counters().dropped[static_cast<std::size_t>(reason)];
}

TEST(AggregationStageTest, CounterAddsIncrementsScaledByTheirSampleRate) {
  Stage sut({});
  BatchBuilder b;
  const auto* hits = b.series("hits", model::Kind::kCounter);
  b.point(hits, 3).point(hits, 2, 0.5F).point(hits, 1, 0.25F);

  const std::size_t merged = sut.merge(b.batch());

  EXPECT_EQ(merged, 3U);
  ASSERT_NE(only_series(sut), nullptr);
  EXPECT_EQ(only_series(sut)->value, 3 + 2 / 0.5 + 1 / 0.25);
}

TEST(AggregationStageTest, NegativeCounterIncrementIsDroppedAndCounted) {
  Stage sut({});
  BatchBuilder b;
  const auto* hits = b.series("hits", model::Kind::kCounter);
  b.point(hits, 5).point(hits, -2).aggregate(hits, 2, -1, -1, 0, 0);

  const std::size_t merged = sut.merge(b.batch());

  EXPECT_EQ(merged, 1U);
  EXPECT_EQ(only_series(sut)->value, 5);
  EXPECT_EQ(dropped(sut, DropReason::kNegativeCounter), 2U);
}

TEST(AggregationStageTest, GaugeKeepsTheLastValueAndAppliesDeltasInEventOrder) {
  Stage sut({});
  BatchBuilder b;
  const auto* depth = b.series("depth", model::Kind::kGauge);
  b.point(depth, 10)
      .point(depth, model::Kind::kGaugeDelta, 5)
      .point(depth, 2)
      .point(depth, model::Kind::kGaugeDelta, -3);

  (void)sut.merge(b.batch());

  EXPECT_EQ(only_series(sut)->value, 2 - 3);
}

TEST(AggregationStageTest, FoldedGaugeTakesItsGroupsLastValue) {
  constexpr double kLast = 7;
  Stage sut({});
  BatchBuilder b;
  const auto* depth = b.series("depth", model::Kind::kGauge);
  b.point(depth, 100).aggregate(depth, 3, 30, 5, 15, kLast);

  (void)sut.merge(b.batch());

  EXPECT_EQ(only_series(sut)->value, kLast);
}

TEST(AggregationStageTest, DeltaSeriesAddsEveryValueAndItsFolds) {
  Stage sut({});
  BatchBuilder b;
  const auto* open = b.series("open", model::Kind::kGaugeDelta);
  b.point(open, model::Kind::kGaugeDelta, 4).aggregate(open, 3, 6, 1, 3, 3);

  (void)sut.merge(b.batch());

  EXPECT_EQ(only_series(sut)->value, 10);
}

TEST(AggregationStageTest, TimingInMillisecondsLandsInSecondBucketsWithUpperBoundsInclusive) {
  StageOptions options;
  options.default_bounds = {0.01, 0.1, 1};
  Stage sut(options);
  BatchBuilder b;
  const auto* latency = b.series("latency", model::Kind::kTiming);
  b.point(latency, 10).point(latency, 10.5).point(latency, 100).point(latency, 5000, 0.5F);

  (void)sut.merge(b.batch());

  const SeriesState* s = only_series(sut);
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->buckets.size(), 4U);
  EXPECT_EQ(s->buckets[0], 1) << "0.010 s is <= 0.01";
  EXPECT_EQ(s->buckets[1], 2) << "0.0105 s and 0.1 s";
  EXPECT_EQ(s->buckets[2], 0);
  EXPECT_EQ(s->buckets[3], 2) << "5 s at rate 0.5 counts twice, in +Inf";
  EXPECT_EQ(s->count, 5);
  EXPECT_DOUBLE_EQ(s->sum, 0.01 + 0.0105 + 0.1 + 2 * 5.0);
}

TEST(AggregationStageTest, FoldedHistogramMergesExactlyAndPlacesItsSamplesAtTheMean) {
  StageOptions options;
  options.default_bounds = {1, 10, 100};
  Stage sut(options);
  BatchBuilder b;
  const auto* size = b.series("size", model::Kind::kHistogram);
  constexpr std::uint64_t kFolded = 4;
  b.point(size, 50).aggregate(size, kFolded, 20, 2, 9, 9);

  (void)sut.merge(b.batch());
  sut.roll();

  const SeriesState* s = only_series(sut);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->count, 1 + kFolded);
  EXPECT_EQ(s->sum, 50 + 20);
  EXPECT_EQ(s->buckets[1], kFolded) << "the mean 5 is in (1, 10]";
  EXPECT_EQ(s->buckets[2], 1);
  EXPECT_EQ(sut.counters().placed_at_mean, kFolded);
  EXPECT_TRUE(s->last_seen);
  EXPECT_EQ(s->last_min, 2);
  EXPECT_EQ(s->last_max, 50);
}

TEST(AggregationStageTest, FoldedGroupWhoseMeanIsABoundCountsInThatBoundsBucket) {
  StageOptions options;
  options.default_bounds = {1, 10, 100};
  Stage sut(options);
  BatchBuilder b;
  const auto* size = b.series("size", model::Kind::kHistogram);
  constexpr std::uint64_t kFolded = 2;
  b.aggregate(size, kFolded, 20, 5, 15, 15);

  (void)sut.merge(b.batch());

  const SeriesState* s = only_series(sut);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->buckets[1], kFolded) << "the mean 10 is in (1, 10]: upper bounds are inclusive";
  EXPECT_EQ(s->buckets[2], 0);
}

TEST(AggregationStageTest, SetReportsDistinctMembersOfTheLastCompleteInterval) {
  Stage sut({});
  BatchBuilder first;
  const auto* users = first.series("users", model::Kind::kSet);
  first.point(users, 1).point(users, 2).point(users, 1).point(users, 3);
  BatchBuilder second;
  const auto* users_again = second.series("users", model::Kind::kSet);
  second.point(users_again, 7);

  (void)sut.merge(first.batch());
  const std::uint64_t before_roll = only_series(sut)->last_distinct;
  sut.roll();
  const std::uint64_t after_first = only_series(sut)->last_distinct;
  (void)sut.merge(second.batch());
  sut.roll();

  EXPECT_EQ(before_roll, 0U);
  EXPECT_EQ(after_first, 3U);
  EXPECT_EQ(only_series(sut)->last_distinct, 1U);
}

TEST(AggregationStageTest, SetMembersBeyondTheCapAreDroppedAndKnownOnesStillMerge) {
  constexpr std::size_t kCap = 2;
  StageOptions options;
  options.max_set_members = kCap;
  Stage sut(options);
  BatchBuilder b;
  const auto* users = b.series("users", model::Kind::kSet);
  b.point(users, 1).point(users, 2).point(users, 3).point(users, 1);

  const std::size_t merged = sut.merge(b.batch());
  sut.roll();

  EXPECT_EQ(merged, 3U);
  EXPECT_EQ(dropped(sut, DropReason::kSetMembersCap), 1U);
  EXPECT_EQ(only_series(sut)->last_distinct, kCap);
}

TEST(AggregationStageTest, SameSeriesFromTwoSegmentsIsOneSeries) {
  Stage sut({});
  BatchBuilder a;
  BatchBuilder b;
  a.point(a.series("hits", model::Kind::kCounter, {{"k", "v"}}, "svc"), 1);
  b.point(b.series("hits", model::Kind::kCounter, {{"k", "v"}}, "svc"), 2);

  (void)sut.merge(a.batch());
  (void)sut.merge(b.batch());

  EXPECT_EQ(only_series(sut)->value, 3);
}

TEST(AggregationStageTest, SeriesIdleBeyondExpiryIsRemovedAtARoll) {
  StageOptions options;
  options.expiry = std::chrono::seconds(60);
  Stage sut(options);
  BatchBuilder b;
  b.point(b.series("old", model::Kind::kCounter), 1);
  const auto t0 = Clock::now();

  (void)sut.merge(b.batch(), t0);
  sut.roll(t0 + std::chrono::seconds(59));
  const std::size_t kept = sut.series().size();
  sut.roll(t0 + std::chrono::seconds(61));

  EXPECT_EQ(kept, 1U);
  EXPECT_TRUE(sut.series().empty());
  EXPECT_EQ(sut.counters().series_expired, 1U);
}

TEST(AggregationStageTest, SeriesIdleForExactlyTheExpiryIsKept) {
  constexpr std::chrono::seconds kExpiry{60};
  StageOptions options;
  options.expiry = kExpiry;
  Stage sut(options);
  BatchBuilder b;
  b.point(b.series("edge", model::Kind::kCounter), 1);
  const auto t0 = Clock::now();

  (void)sut.merge(b.batch(), t0);
  sut.roll(t0 + kExpiry);

  EXPECT_EQ(sut.series().size(), 1U) << "only series idle for longer than the expiry go";
  EXPECT_EQ(sut.counters().series_expired, 0U);
}

TEST(AggregationStageTest, UpdateWithinTheExpiryRestartsTheSeriesIdleTime) {
  constexpr std::chrono::seconds kExpiry{60};
  constexpr std::chrono::seconds kLater{50};
  StageOptions options;
  options.expiry = kExpiry;
  Stage sut(options);
  BatchBuilder first;
  first.point(first.series("busy", model::Kind::kCounter), 1);
  BatchBuilder second;
  second.point(second.series("busy", model::Kind::kCounter), 1);
  const auto t0 = Clock::now();

  (void)sut.merge(first.batch(), t0);
  (void)sut.merge(second.batch(), t0 + kLater);
  sut.roll(t0 + kExpiry + kLater / 2);

  ASSERT_EQ(sut.series().size(), 1U) << "idle beyond the expiry since t0, not since the update";
  EXPECT_EQ(sut.series()[0]->value, 2);
  EXPECT_EQ(sut.counters().series_expired, 0U);
}

TEST(AggregationStageTest, SeriesBeyondTheCapAreRefusedAndCounted) {
  StageOptions options;
  options.max_series = 2;
  Stage sut(options);
  BatchBuilder b;
  b.point(b.series("a", model::Kind::kCounter), 1)
      .point(b.series("b", model::Kind::kCounter), 1)
      .point(b.series("c", model::Kind::kCounter), 1)
      .point(b.series("c", model::Kind::kCounter), 1);

  const std::size_t merged = sut.merge(b.batch());

  EXPECT_EQ(merged, 2U);
  EXPECT_EQ(sut.series().size(), 2U);
  EXPECT_EQ(dropped(sut, DropReason::kCardinalityCap), 2U);
}

TEST(AggregationStageTest, FoldedSetIsUnsupportedAndCounted) {
  Stage sut({});
  BatchBuilder b;
  b.aggregate(b.series("users", model::Kind::kSet), 2, 0, 0, 0, 0);

  EXPECT_EQ(sut.merge(b.batch()), 0U);
  EXPECT_EQ(dropped(sut, DropReason::kUnsupported), 1U);
}

TEST(AggregationStageTest, OverflowingTotalIsDroppedAsNonFinite) {
  Stage sut({});
  BatchBuilder b;
  const auto* big = b.series("big", model::Kind::kCounter);
  b.point(big, 1.5e308).point(big, 1.5e308);

  EXPECT_EQ(sut.merge(b.batch()), 1U);
  EXPECT_EQ(only_series(sut)->value, 1.5e308);
  EXPECT_EQ(dropped(sut, DropReason::kNonFinite), 1U);
}

TEST(AggregationStageTest, BucketRulesPickBoundsByNamePatternFirstMatchWins) {
  auto rules = parse_bucket_rules("http.*=0.1,1;http.db*=5,50;*.size=100");
  ASSERT_TRUE(rules) << rules.error().message;
  StageOptions options;
  options.rules = rules.value();
  Stage sut(options);
  BatchBuilder b;
  b.point(b.series("http.db.time", model::Kind::kTiming), 1)
      .point(b.series("queue.size", model::Kind::kHistogram), 1)
      .point(b.series("other", model::Kind::kHistogram), 1);

  (void)sut.merge(b.batch());

  ASSERT_EQ(sut.series().size(), 3U);
  std::map<std::string, Bounds> bounds;
  for (const auto& s : sut.series()) bounds[s->def->name] = *s->bounds;
  EXPECT_EQ(bounds["http.db.time"], (Bounds{0.1, 1})) << "the first matching rule";
  EXPECT_EQ(bounds["queue.size"], (Bounds{100}));
  EXPECT_EQ(bounds["other"], default_bounds());
}

TEST(AggregationStageTest, BadBucketRulesNameTheRule) {
  const auto decreasing = parse_bucket_rules("a=1,0.5");
  const auto not_number = parse_bucket_rules("a=1,x");
  const auto no_pattern = parse_bucket_rules("=1");
  const auto infinite = parse_bounds("1,inf");

  ASSERT_FALSE(decreasing);
  EXPECT_NE(decreasing.error().message.find("must increase"), std::string::npos);
  ASSERT_FALSE(not_number);
  EXPECT_NE(not_number.error().message.find("\"x\""), std::string::npos);
  EXPECT_FALSE(no_pattern);
  EXPECT_FALSE(infinite);
}

TEST(AggregationStageTest, GlobMatchesStarsAnywhere) {
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("http.*", "http.latency"));
  EXPECT_TRUE(glob_match("*.size", "queue.size"));
  EXPECT_TRUE(glob_match("a*b*c", "aXbYc"));
  EXPECT_FALSE(glob_match("a*b*c", "aXbY"));
  EXPECT_FALSE(glob_match("http.*", "https.x"));
}

// Expiry looked up each expired series' definitions with a pass over every definition held: a
// roll that expired n series took n * n steps (about 10^10 for the default cap of 100000).
TEST(AggregationStageTest, ExpiringManySeriesAtOnceLeavesNoStateBehind) {
  constexpr std::size_t kSeries = 20000;
  StageOptions options;
  options.expiry = std::chrono::seconds(60);
  options.max_series = kSeries;
  Stage sut(options);
  BatchBuilder b;
  for (std::size_t i = 0; i < kSeries; ++i) {
    b.point(b.series("h" + std::to_string(i), model::Kind::kHistogram), 1);
  }
  const auto t0 = Clock::now();
  (void)sut.merge(b.batch(), t0);
  const std::size_t held = sut.memory_estimate();

  sut.roll(t0 + std::chrono::seconds(61));

  EXPECT_GT(held, 0U);
  EXPECT_TRUE(sut.series().empty());
  EXPECT_EQ(sut.counters().series_expired, kSeries);
  EXPECT_EQ(sut.memory_estimate(), 0U);
}

}  // namespace
}  // namespace shmstats::collector::aggregate
