#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "shm/segment.h"
#include "shmstats/shmstats.h"
#include "tests/support/support.h"

// Counts allocations made by this test binary, to check that the push path makes none.
// GCC's -Wmismatched-new-delete cannot see that this operator new allocates with malloc, so it
// flags the matching free in operator delete when both are inlined; the pair is consistent.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<std::uint64_t> g_allocations{0};
}  // namespace
void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace shmstats {
namespace {

using shm::DropReason;
using shm::Segment;
using testing::SegmentGuard;
using testing::unique_prefix;

constexpr std::uint32_t kSmallRing = 8;

Options small_options(const std::string& prefix, Overflow overflow = Overflow::kDefault) {
  Options o;
  o.shm_prefix = prefix;
  o.service = "client-test";
  o.rings = 2;
  o.ring_capacity = kSmallRing;
  o.series_capacity = 64;
  o.overflow = overflow;
  o.read_environment = false;
  return o;
}

Segment attach(const Client& c) {
  auto seg = Segment::attach(c.segment_name(), Segment::Access::kReadWrite);
  EXPECT_TRUE(seg) << (seg ? "" : seg.error().message);
  return std::move(seg).value();
}

std::vector<shm::Event> drain_all(const Segment& seg) {
  std::vector<shm::Event> all;
  std::vector<shm::Event> batch(64);
  for (std::uint32_t r = 0; r < seg.geometry().ring_count; ++r) {
    auto reader = seg.ring_reader(r);
    for (;;) {
      const auto got = reader.poll(batch);
      if (got.count == 0) break;
      all.insert(all.end(), batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(got.count));
    }
  }
  return all;
}

// Sum of a ring's counters across all rings.
shm::RingStats total_ring_stats(const Segment& seg) {
  shm::RingStats t;
  for (std::uint32_t r = 0; r < seg.geometry().ring_count; ++r) {
    const auto s = seg.ring_stats(r);
    t.pushed += s.pushed;
    t.folded += s.folded;
    for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) t.dropped[i] += s.dropped[i];
  }
  return t;
}

std::uint64_t dropped(const shm::RingStats& s, DropReason r) {
  return s.dropped[static_cast<std::size_t>(r)];
}

double fold_double(const std::atomic<std::uint64_t>& bits) {
  return std::bit_cast<double>(bits.load());
}

std::uint64_t segment_dropped(const Segment& seg, DropReason r) {
  return seg.counters().dropped[static_cast<std::size_t>(r)];
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Options a segment cannot be made from: create_or_disabled returns a disabled client.
Options unusable_options(const std::string& prefix, std::vector<std::string>& log_lines) {
  Options o = small_options(prefix);
  o.ring_capacity = 100;  // not a power of two
  o.log = [&log_lines](std::string_view line) { log_lines.emplace_back(line); };
  return o;
}

TEST(ClientTest, CreateMakesSegmentAndDestroyMarksItClosed) {
  SegmentGuard guard(unique_prefix());
  std::string name;
  {
    auto sut = Client::create(small_options(guard.prefix()));
    ASSERT_TRUE(sut) << sut.error().message;
    name = sut->segment_name();
    auto c = sut->counter("requests");
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->add());
    auto seg = Segment::attach(name, Segment::Access::kReadOnly);
    ASSERT_TRUE(seg);
    EXPECT_EQ(seg.value().state(), shm::SegmentState::kActive);
    EXPECT_EQ(seg.value().ring_stats(0).state, shm::RingState::kOwned);
  }
  auto seg = Segment::attach(name, Segment::Access::kReadOnly);
  ASSERT_TRUE(seg) << "a closed segment stays for the collector to drain";
  EXPECT_EQ(seg.value().state(), shm::SegmentState::kClosed);
  EXPECT_EQ(seg.value().ring_stats(0).state, shm::RingState::kRetired);
  EXPECT_EQ(seg.value().ring_stats(0).tail, 1U);
}

TEST(ClientTest, PushedEventCarriesSeriesKindValueAndTimestamp) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut);
  auto timing = sut->timing("db.query", {{"table", "users"}});
  ASSERT_TRUE(timing);
  ASSERT_TRUE(timing->record_ms(12.5));
  ASSERT_TRUE(timing->record(std::chrono::microseconds(1500)));
  const Segment seg = attach(sut.value());
  const auto events = drain_all(seg);
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[0].series_id, timing->series_id());
  EXPECT_EQ(events[0].kind, static_cast<std::uint8_t>(Kind::kTiming));
  EXPECT_EQ(events[0].value, 12.5);
  EXPECT_EQ(events[0].sample_rate, 1.0F);
  EXPECT_EQ(events[1].value, 1.5);
  EXPECT_GE(events[1].ts, events[0].ts);
  EXPECT_GE(events[0].ts, seg.header().created_ticks);
  const auto info = seg.read_series(timing->series_id());
  ASSERT_TRUE(info);
  EXPECT_EQ(info.value().name, "db.query");
  ASSERT_EQ(info.value().tags.size(), 1U);
  EXPECT_EQ(info.value().tags[0].second, "users");
  EXPECT_EQ(info.value().kind, shm::Kind::kTiming);
}

TEST(ClientTest, CollectorTimestampsLeaveEveryEventUnstamped) {
  SegmentGuard guard(unique_prefix());
  auto options = small_options(guard.prefix(), Overflow::kDropOldest);
  options.timestamps = Timestamps::kCollector;
  auto sut = Client::create(options);
  ASSERT_TRUE(sut) << sut.error().message;
  auto counter = sut->counter("unstamped.total");
  ASSERT_TRUE(counter);

  // The fast path, then the full ring's drop-oldest path, which builds its event elsewhere.
  for (std::uint32_t i = 0; i < kSmallRing + 2; ++i) ASSERT_TRUE(counter->add(1));

  const Segment seg = attach(sut.value());
  const auto events = drain_all(seg);
  ASSERT_EQ(events.size(), kSmallRing);
  for (const auto& ev : events) EXPECT_EQ(ev.ts, 0U) << "0 means: the collector stamps it";
}

TEST(ClientOptionsTest, TimestampsComeFromTheEnvironmentAndABadValueIsNamed) {
  SegmentGuard guard(unique_prefix());
  auto o = small_options(guard.prefix());
  o.read_environment = true;
  ::setenv("SHMSTATS_TIMESTAMPS", "collector", 1);
  auto sut = Client::create(o);
  ::setenv("SHMSTATS_TIMESTAMPS", "sundial", 1);
  auto bad = Client::create(o);
  ::unsetenv("SHMSTATS_TIMESTAMPS");
  ASSERT_TRUE(sut) << sut.error().message;
  auto counter = sut->counter("env.stamped");
  ASSERT_TRUE(counter);
  ASSERT_TRUE(counter->add(1));

  const auto events = drain_all(attach(sut.value()));
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].ts, 0U);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidOptions);
  EXPECT_NE(bad.error().message.find("SHMSTATS_TIMESTAMPS=\"sundial\""), std::string::npos);
}

TEST(ClientTest, GaugeSetAndAddUseTheirOwnEventKinds) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut);
  auto gauge = sut->gauge("queue.depth");
  ASSERT_TRUE(gauge);
  ASSERT_TRUE(gauge->set(10));
  ASSERT_TRUE(gauge->add(-3));
  const auto events = drain_all(attach(sut.value()));
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[0].kind, static_cast<std::uint8_t>(Kind::kGauge));
  EXPECT_EQ(events[1].kind, static_cast<std::uint8_t>(Kind::kGaugeDelta));
  EXPECT_EQ(events[1].value, -3);
}

TEST(ClientRegistrationTest, SameSeriesInAnyTagOrderGetsOneId) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut);
  auto a = sut->counter("hits", {{"a", "1"}, {"b", "2"}});
  auto b = sut->counter("hits", {{"b", "2"}, {"a", "1"}});
  auto c = sut->counter("hits", {{"a", "1"}});
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->series_id(), b->series_id());
  EXPECT_NE(a->series_id(), c->series_id());
  EXPECT_EQ(sut->stats().series, 2U);
}

TEST(ClientRegistrationTest, RejectsBadNameWithRuleAndCountsIt) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut);
  auto bad = sut->counter("has space");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidName);
  EXPECT_NE(bad.error().message.find("[A-Za-z0-9_.-]"), std::string::npos);
  auto bad_tag = sut->counter("ok", {{"k:", "v"}});
  ASSERT_FALSE(bad_tag);
  EXPECT_EQ(bad_tag.error().code, ErrorCode::kInvalidTag);
  const auto counters = attach(sut.value()).counters();
  EXPECT_EQ(counters.series_rejected[static_cast<std::size_t>(shm::Errc::kInvalidName)], 1U);
  EXPECT_EQ(counters.series_rejected[static_cast<std::size_t>(shm::Errc::kInvalidTag)], 1U);
  EXPECT_EQ(sut->stats().series, 0U);
}

TEST(ClientRegistrationTest, MoreThanSixteenTagsIsRefusedAndCounted) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut);
  std::vector<std::string> keys;
  for (std::size_t i = 0; i <= shm::kMaxTags; ++i) keys.push_back("k" + std::to_string(i));
  std::vector<Tag> tags;
  for (const auto& k : keys) tags.push_back({k, "v"});

  auto over = sut->counter("tagged", tags);
  tags.pop_back();
  auto at_limit = sut->counter("tagged", tags);

  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, ErrorCode::kTooManyTags);
  EXPECT_NE(over.error().message.find("17 tags; the limit is 16"), std::string::npos);
  EXPECT_TRUE(at_limit);
  const auto counters = attach(sut.value()).counters();
  EXPECT_EQ(counters.series_rejected[static_cast<std::size_t>(shm::Errc::kTooManyTags)], 1U);
}

TEST(ClientRegistrationTest, SeriesOverTheTextBudgetIsRefusedAsTooLarge) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut);
  // 200-byte name + 8 tags of (2 + 64 + 38) bytes = 1032 > 1024.
  constexpr std::size_t kTags = 8;
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < kTags; ++i)
    keys.push_back(std::string(shm::kMaxTagPartBytes, static_cast<char>('a' + i)));
  const std::string value(38, 'v');
  std::vector<Tag> tags;
  for (const auto& k : keys) tags.push_back({k, value});

  auto sut_result = sut->counter(std::string(shm::kMaxNameBytes, 'n'), tags);

  ASSERT_FALSE(sut_result);
  EXPECT_EQ(sut_result.error().code, ErrorCode::kSeriesTooLarge);
  EXPECT_NE(sut_result.error().message.find("limit is 1024"), std::string::npos);
  const auto counters = attach(sut.value()).counters();
  EXPECT_EQ(counters.series_rejected[static_cast<std::size_t>(shm::Errc::kSeriesTooLarge)], 1U);
}

TEST(ClientRegistrationTest, RejectsSameSeriesWithAnotherKind) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut);
  ASSERT_TRUE(sut->counter("x"));
  auto as_gauge = sut->gauge("x");
  ASSERT_FALSE(as_gauge);
  EXPECT_EQ(as_gauge.error().code, ErrorCode::kKindMismatch);
  EXPECT_NE(as_gauge.error().message.find("is a counter"), std::string::npos);
}

TEST(ClientRegistrationTest, TableFullHasItsOwnError) {
  SegmentGuard guard(unique_prefix());
  auto o = small_options(guard.prefix());
  constexpr std::uint32_t kCapacity = 4;
  o.series_capacity = kCapacity;
  auto sut = Client::create(o);
  ASSERT_TRUE(sut);
  for (std::uint32_t i = 0; i < kCapacity; ++i) ASSERT_TRUE(sut->counter("s" + std::to_string(i)));
  auto full = sut->counter("one.more");
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, ErrorCode::kSeriesTableFull);
  EXPECT_NE(full.error().message.find("full (4 series)"), std::string::npos);
  EXPECT_TRUE(sut->counter("s0")) << "existing series are still found";
}

TEST(ClientDynamicTest, InternsOnceAndPushesEveryCall) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut);
  ASSERT_TRUE(sut->count("dyn", 2, {{"a", "1"}, {"b", "2"}}));
  ASSERT_TRUE(sut->count("dyn", 3, {{"b", "2"}, {"a", "1"}}));
  ASSERT_TRUE(sut->gauge_set("dyn.g", 7));
  const auto events = drain_all(attach(sut.value()));
  ASSERT_EQ(events.size(), 3U);
  EXPECT_EQ(events[0].series_id, events[1].series_id);
  EXPECT_NE(events[0].series_id, events[2].series_id);
  EXPECT_EQ(sut->stats().series, 2U);
}

TEST(ClientDynamicTest, BadSeriesIsRefusedAndCounted) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut);
  EXPECT_FALSE(sut->count("bad name"));
  EXPECT_FALSE(sut->count("ok", 1, {{"k", "a|b"}}));
  ASSERT_TRUE(sut->count("ok"));
  EXPECT_FALSE(sut->observe("ok", 1)) << "kind mismatch: ok is a counter";
  const auto c = attach(sut.value()).counters();
  EXPECT_EQ(c.dropped[static_cast<std::size_t>(DropReason::kInvalidSeries)], 3U);
}

TEST(ClientDynamicTest, PushPathAllocatesNothingAfterFirstSight) {
  SegmentGuard guard(unique_prefix());
  auto o = small_options(guard.prefix());
  o.ring_capacity = 1024;
  auto sut = Client::create(o);
  ASSERT_TRUE(sut);
  auto counter = sut->counter("alloc.handle");
  ASSERT_TRUE(counter);
  ASSERT_TRUE(counter->add());
  ASSERT_TRUE(sut->count("alloc.dynamic", 1, {{"k", "v"}}));
  constexpr int kPushes = 5000;  // enough to fill and overflow (fold) the ring
  const auto before = g_allocations.load();
  for (int i = 0; i < kPushes; ++i) {
    (void)counter->add();
    (void)sut->count("alloc.dynamic", 1, {{"k", "v"}});
  }
  EXPECT_EQ(g_allocations.load() - before, 0U);
}

// Overflow accounting: pushed = consumed + folded + dropped, exactly, for every strategy.
TEST(ClientOverflowTest, FoldKeepsExactTotalsOfValuesThatDidNotFit) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));  // counters fold by default
  ASSERT_TRUE(sut);
  auto c = sut->counter("folded");
  ASSERT_TRUE(c);
  constexpr int kPushes = 20;
  for (int i = 1; i <= kPushes; ++i) ASSERT_TRUE(c->add(i));
  const Segment seg = attach(sut.value());
  const auto events = drain_all(seg);
  const auto stats = total_ring_stats(seg);
  ASSERT_EQ(events.size(), kSmallRing);
  EXPECT_EQ(stats.pushed, static_cast<std::uint64_t>(kPushes));
  EXPECT_EQ(stats.folded, kPushes - kSmallRing);
  EXPECT_EQ(stats.dropped_total(), 0U);
  EXPECT_EQ(stats.pushed, events.size() + stats.folded + stats.dropped_total());
  const auto& entry = seg.series_entry(c->series_id());
  EXPECT_EQ(entry.fold_count.load(), kPushes - kSmallRing);
  // Values 9..20 did not fit: their sum, min and max are kept.
  EXPECT_EQ(fold_double(entry.fold_sum_bits),
            9 + 10 + 11 + 12 + 13 + 14 + 15 + 16 + 17 + 18 + 19 + 20);
  EXPECT_EQ(fold_double(entry.fold_min_bits), 9);
  EXPECT_EQ(fold_double(entry.fold_max_bits), 20);
  EXPECT_EQ(fold_double(entry.fold_last_bits), 20);
}

TEST(ClientOverflowTest, DropNewestCountsEveryRefusedEvent) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));  // gauges drop newest by default
  ASSERT_TRUE(sut);
  auto g = sut->gauge("dropped");
  ASSERT_TRUE(g);
  constexpr int kPushes = 20;
  int refused = 0;
  for (int i = 0; i < kPushes; ++i) refused += g->set(i) ? 0 : 1;
  const Segment seg = attach(sut.value());
  const auto events = drain_all(seg);
  const auto stats = total_ring_stats(seg);
  EXPECT_EQ(refused, kPushes - static_cast<int>(kSmallRing));
  EXPECT_EQ(dropped(stats, DropReason::kRingFull), kPushes - kSmallRing);
  EXPECT_EQ(stats.pushed, events.size() + stats.folded + stats.dropped_total());
  ASSERT_EQ(events.size(), kSmallRing);
  EXPECT_EQ(events.back().value, kSmallRing - 1);
}

TEST(ClientOverflowTest, DropOldestKeepsFreshestEvents) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix(), Overflow::kDropOldest));
  ASSERT_TRUE(sut);
  auto h = sut->histogram("fresh");
  ASSERT_TRUE(h);
  constexpr int kPushes = 20;
  for (int i = 0; i < kPushes; ++i) ASSERT_TRUE(h->record(i));
  const Segment seg = attach(sut.value());
  const auto events = drain_all(seg);
  const auto stats = total_ring_stats(seg);
  ASSERT_EQ(events.size(), kSmallRing);
  EXPECT_EQ(events.front().value, kPushes - kSmallRing);
  EXPECT_EQ(events.back().value, kPushes - 1);
  EXPECT_EQ(dropped(stats, DropReason::kOldestOverwritten), kPushes - kSmallRing);
  // Discarded events had entered the ring, so pushed = consumed + discarded.
  EXPECT_EQ(stats.pushed, events.size() + stats.dropped_total());
}

TEST(ClientOverflowTest, PriorityReservesRoomForHighPriorityEvents) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix(), Overflow::kPriority));
  ASSERT_TRUE(sut);
  auto normal = sut->counter("normal");
  ASSERT_TRUE(normal);
  auto urgent = normal->with_priority(Priority::kHigh);
  constexpr int kNormalPushes = 20;
  constexpr std::uint32_t kReserve = kSmallRing / 8;
  int normal_refused = 0;
  for (int i = 0; i < kNormalPushes; ++i) normal_refused += normal->add() ? 0 : 1;
  EXPECT_EQ(normal_refused, kNormalPushes - static_cast<int>(kSmallRing - kReserve));
  EXPECT_TRUE(urgent.add()) << "the reserve takes a high-priority event";
  EXPECT_FALSE(urgent.add()) << "then the ring is full";
  const Segment seg = attach(sut.value());
  const auto stats = total_ring_stats(seg);
  EXPECT_EQ(dropped(stats, DropReason::kPriorityShed), static_cast<std::uint64_t>(normal_refused));
  EXPECT_EQ(dropped(stats, DropReason::kRingFull), 1U);
  const auto events = drain_all(seg);
  ASSERT_EQ(events.size(), kSmallRing);
  EXPECT_EQ(events.back().flags & shm::kEventFlagHighPriority, shm::kEventFlagHighPriority);
  EXPECT_EQ(stats.pushed, events.size() + stats.dropped_total());
}

TEST(ClientOverflowTest, SampledKeepsOneInNAboveThresholdAndCarriesRate) {
  SegmentGuard guard(unique_prefix());
  auto o = small_options(guard.prefix(), Overflow::kSampled);
  constexpr std::uint32_t kRing = 256;
  constexpr std::uint32_t kKeepOneIn = 4;
  o.ring_capacity = kRing;
  o.sample_keep_one_in = kKeepOneIn;
  auto sut = Client::create(o);
  ASSERT_TRUE(sut);
  auto c = sut->counter("sampled");
  ASSERT_TRUE(c);
  constexpr int kPushes = 400;
  for (int i = 0; i < kPushes; ++i) (void)c->add();
  const Segment seg = attach(sut.value());
  const auto stats = total_ring_stats(seg);
  const auto events = drain_all(seg);
  std::size_t full_rate = 0;
  std::size_t sampled = 0;
  for (const auto& ev : events) {
    if (ev.sample_rate == 1.0F) {
      ++full_rate;
    } else {
      EXPECT_FLOAT_EQ(ev.sample_rate, 1.0F / kKeepOneIn);
      ++sampled;
    }
  }
  EXPECT_EQ(full_rate, kRing / 4 * 3 + 1) << "below 75% fill every event is kept";
  EXPECT_GT(sampled, 0U);
  EXPECT_GT(dropped(stats, DropReason::kSampledOut), 0U);
  EXPECT_EQ(stats.pushed, events.size() + stats.dropped_total());
  // Each kept sampled event stands for 1/rate events: the estimate is near the pushed count.
  const double estimate =
      static_cast<double>(full_rate) + static_cast<double>(sampled) * kKeepOneIn;
  const double represented =
      static_cast<double>(stats.pushed - dropped(stats, DropReason::kRingFull));
  EXPECT_NEAR(estimate, represented, represented * 0.25);
}

TEST(ClientOverflowTest, PerHandleOverrideBeatsClientDefault) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut);
  auto c = sut->counter("override");
  ASSERT_TRUE(c);
  auto dropping = c->with_overflow(Overflow::kDropNewest);
  for (std::uint32_t i = 0; i < kSmallRing; ++i) ASSERT_TRUE(dropping.add());
  EXPECT_FALSE(dropping.add());
  EXPECT_TRUE(c->add()) << "the original handle still folds";
  const auto stats = total_ring_stats(attach(sut.value()));
  EXPECT_EQ(dropped(stats, DropReason::kRingFull), 1U);
  EXPECT_EQ(stats.folded, 1U);
}

// Twice as many threads as rings: none blocks; values of threads without a ring fold, so the
// totals stay exact; sets from such threads are dropped and counted.
TEST(ClientThreadsTest, ThreadsBeyondRingsFoldWithoutLoss) {
  SegmentGuard guard(unique_prefix());
  auto o = small_options(guard.prefix(), Overflow::kDropNewest);
  constexpr std::uint32_t kRings = 2;
  constexpr int kThreads = 2 * kRings;
  constexpr int kPerThread = 5000;
  o.rings = kRings;
  o.ring_capacity = 1U << 14;  // large enough that ring owners never overflow here
  auto sut = Client::create(o);
  ASSERT_TRUE(sut);
  auto c = sut->counter("many.threads");
  auto s = sut->set("many.sets");
  ASSERT_TRUE(c && s);
  std::atomic<int> ready{0};
  std::atomic<int> set_refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      Counter mine = c.value();
      Set set = s.value();
      ++ready;
      while (ready.load() < kThreads) std::this_thread::yield();  // all alive at once
      for (int i = 0; i < kPerThread; ++i) EXPECT_TRUE(mine.add(2));
      if (!set.add(1)) ++set_refused;
      // Stay alive until every thread has pushed, so no ring is handed over mid-test.
      ++ready;
      while (ready.load() < 2 * kThreads) std::this_thread::yield();
    });
  }
  for (auto& t : threads) t.join();
  const Segment seg = attach(sut.value());
  const auto events = drain_all(seg);
  double ring_sum = 0;
  std::size_t ring_counter_events = 0;
  for (const auto& ev : events) {
    if (ev.series_id == c->series_id()) {
      ring_sum += ev.value;
      ++ring_counter_events;
    }
  }
  const auto& entry = seg.series_entry(c->series_id());
  EXPECT_EQ(ring_counter_events + entry.fold_count.load(),
            static_cast<std::uint64_t>(kThreads) * kPerThread);
  EXPECT_EQ(ring_sum + fold_double(entry.fold_sum_bits), 2.0 * kThreads * kPerThread);
  EXPECT_GT(entry.fold_count.load(), 0U) << "some threads had no ring";
  EXPECT_EQ(seg.counters().folded_no_ring, entry.fold_count.load());
  EXPECT_EQ(seg.counters().dropped[static_cast<std::size_t>(DropReason::kNoRing)],
            static_cast<std::uint64_t>(set_refused.load()));
  EXPECT_EQ(set_refused.load(), kThreads - static_cast<int>(kRings));
}

TEST(ClientThreadsTest, ExitedThreadRingIsReusedOnlyAfterDrain) {
  SegmentGuard guard(unique_prefix());
  auto o = small_options(guard.prefix());
  o.rings = 1;
  auto sut = Client::create(o);
  ASSERT_TRUE(sut);
  auto c = sut->counter("reuse");
  ASSERT_TRUE(c);
  std::thread([&] { EXPECT_TRUE(c->add(1)); }).join();
  const Segment seg = attach(sut.value());
  EXPECT_EQ(seg.ring_stats(0).state, shm::RingState::kRetired);
  // Undrained: a new thread must not take the ring; it folds instead.
  std::thread([&] { EXPECT_TRUE(c->add(5)); }).join();
  EXPECT_EQ(seg.ring_stats(0).claims, 1U);
  EXPECT_EQ(seg.counters().folded_no_ring, 1U);
  ASSERT_EQ(drain_all(seg).size(), 1U);
  std::thread([&] { EXPECT_TRUE(c->add(7)); }).join();
  EXPECT_EQ(seg.ring_stats(0).claims, 2U);
  const auto events = drain_all(seg);
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].value, 7);
}

TEST(ClientForkTest, ChildGetsOwnSegmentAndNeverWritesParentRings) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut);
  auto c = sut->counter("forked");
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->add(1));
  const std::string parent_name = sut->segment_name();
  const Segment parent_seg = attach(sut.value());
  const auto tail_before = parent_seg.ring_stats(0).tail;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // In the child: push, then report through the exit code.
    const bool pushed = c->add(42);
    const bool moved = sut->segment_name() != parent_name;
    std::_Exit(pushed && moved ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(parent_seg.ring_stats(0).tail, tail_before) << "child wrote into the parent's ring";
  // The child's segment holds the same series under the same id, and its event.
  std::string child_name;
  for (const auto& n : shm::list_segments(guard.prefix())) {
    if (n != parent_name) child_name = n;
  }
  ASSERT_FALSE(child_name.empty());
  auto child_seg = Segment::attach(child_name, Segment::Access::kReadWrite);
  ASSERT_TRUE(child_seg) << child_seg.error().message;
  EXPECT_EQ(child_seg.value().header().owner_pid, child);
  const auto info = child_seg.value().read_series(c->series_id());
  ASSERT_TRUE(info);
  EXPECT_EQ(info.value().name, "forked");
  const auto events = drain_all(child_seg.value());
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].value, 42);
  ASSERT_TRUE(c->add(2)) << "the parent keeps pushing to its own ring";
  EXPECT_EQ(parent_seg.ring_stats(0).tail, tail_before + 1);
}

TEST(ClientForkTest, ChildRegistrationBeforeFirstPushLeavesParentTableAlone) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut);
  ASSERT_TRUE(sut->counter("parent.series"));
  const std::string parent_name = sut->segment_name();
  const Segment parent_seg = attach(sut.value());

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto mine = sut->counter("child.series");
    const bool own_segment = sut->segment_name() != parent_name;
    std::_Exit(mine && own_segment && mine->add() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);

  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(parent_seg.series_count(), 1U) << "the child published into the parent's table";
  std::string child_name;
  for (const auto& n : shm::list_segments(guard.prefix())) {
    if (n != parent_name) child_name = n;
  }
  ASSERT_FALSE(child_name.empty());
  auto child_seg = Segment::attach(child_name, Segment::Access::kReadOnly);
  ASSERT_TRUE(child_seg) << child_seg.error().message;
  EXPECT_EQ(child_seg.value().series_count(), 2U);
  const auto info = child_seg.value().read_series(1);
  ASSERT_TRUE(info);
  EXPECT_EQ(info.value().name, "child.series");
}

TEST(ClientOptionsTest, EnvironmentOverridesOptions) {
  SegmentGuard guard(unique_prefix());
  auto o = small_options(guard.prefix());
  o.read_environment = true;
  ::setenv("SHMSTATS_RING_CAPACITY", "64", 1);
  ::setenv("SHMSTATS_SERVICE", "from-env", 1);
  auto sut = Client::create(o);
  ::unsetenv("SHMSTATS_RING_CAPACITY");
  ::unsetenv("SHMSTATS_SERVICE");
  ASSERT_TRUE(sut) << sut.error().message;
  const Segment seg = attach(sut.value());
  EXPECT_EQ(seg.geometry().ring_capacity, 64U);
  EXPECT_EQ(seg.service(), "from-env");
}

TEST(ClientOptionsTest, BadEnvironmentValueNamesVariableAndValue) {
  auto o = small_options(unique_prefix());
  o.read_environment = true;
  ::setenv("SHMSTATS_RINGS", "lots", 1);
  auto sut = Client::create(o);
  ::unsetenv("SHMSTATS_RINGS");
  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, ErrorCode::kInvalidOptions);
  EXPECT_NE(sut.error().message.find("SHMSTATS_RINGS=\"lots\""), std::string::npos);
  ::setenv("SHMSTATS_OVERFLOW", "whatever", 1);
  auto bad_overflow = Client::create(o);
  ::unsetenv("SHMSTATS_OVERFLOW");
  ASSERT_FALSE(bad_overflow);
  EXPECT_NE(bad_overflow.error().message.find("drop_oldest"), std::string::npos);
}

TEST(ClientOptionsTest, InvalidOptionIsRefusedAtCreate) {
  auto o = small_options(unique_prefix());
  o.ring_capacity = 100;
  auto sut = Client::create(o);
  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, ErrorCode::kInvalidOptions);
}

TEST(ClientTest, DefaultHandleIsInert) {
  Counter none;
  EXPECT_FALSE(none.valid());
  EXPECT_FALSE(none.add());
}

// ---- values: NaN and the infinities are refused; every finite double goes through unchanged --

TEST(ClientValuesTest, NonFiniteValuesAreRefusedByEveryPushAndCountedAsInvalidValue) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut);
  auto counter = sut->counter("v.counter");
  auto gauge = sut->gauge("v.gauge");
  auto histogram = sut->histogram("v.histogram");
  auto timing = sut->timing("v.timing");
  auto set = sut->set("v.set");
  ASSERT_TRUE(counter && gauge && histogram && timing && set);
  constexpr std::uint64_t kPushesPerValue = 11;  // 6 handle calls + 5 dynamic calls
  std::uint64_t accepted = 0;

  for (const double bad : {kNaN, -kNaN, kInf, -kInf}) {
    accepted += counter->add(bad) ? 1 : 0;
    accepted += gauge->set(bad) ? 1 : 0;
    accepted += gauge->add(bad) ? 1 : 0;
    accepted += histogram->record(bad) ? 1 : 0;
    accepted += timing->record_ms(bad) ? 1 : 0;
    accepted += set->add(bad) ? 1 : 0;
    accepted += sut->count("v.dyn.counter", bad) ? 1 : 0;
    accepted += sut->gauge_set("v.dyn.gauge", bad) ? 1 : 0;
    accepted += sut->observe("v.dyn.histogram", bad) ? 1 : 0;
    accepted += sut->time_ms("v.dyn.timing", bad) ? 1 : 0;
    accepted += sut->set_add("v.dyn.set", bad) ? 1 : 0;
  }

  constexpr std::uint64_t kRefused = 4 * kPushesPerValue;
  EXPECT_EQ(accepted, 0U);
  const Segment seg = attach(sut.value());
  EXPECT_EQ(segment_dropped(seg, DropReason::kInvalidValue), kRefused);
  EXPECT_TRUE(drain_all(seg).empty()) << "no non-finite value entered a ring";
  const auto stats = sut->stats();
  EXPECT_EQ(stats.dropped, kRefused);
  EXPECT_EQ(stats.pushed, 0U) << "refused before reaching a ring";
  EXPECT_EQ(stats.folded, 0U);
}

TEST(ClientValuesTest, NonFiniteValueIntoFullRingNeverReachesFoldAccumulators) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));  // counters fold by default
  ASSERT_TRUE(sut);
  auto c = sut->counter("fold.guard");
  ASSERT_TRUE(c);
  for (std::uint32_t i = 0; i < kSmallRing; ++i) ASSERT_TRUE(c->add(1));
  constexpr double kFolded = 2.5;

  const bool nan_pushed = c->add(kNaN);
  const bool inf_pushed = c->add(kInf);
  const bool finite_pushed = c->add(kFolded);

  EXPECT_FALSE(nan_pushed);
  EXPECT_FALSE(inf_pushed);
  EXPECT_TRUE(finite_pushed);
  const Segment seg = attach(sut.value());
  const auto& entry = seg.series_entry(c->series_id());
  EXPECT_EQ(entry.fold_count.load(), 1U);
  EXPECT_EQ(fold_double(entry.fold_sum_bits), kFolded);
  EXPECT_EQ(fold_double(entry.fold_min_bits), kFolded);
  EXPECT_EQ(fold_double(entry.fold_max_bits), kFolded);
  EXPECT_EQ(segment_dropped(seg, DropReason::kInvalidValue), 2U);
  const auto rings = total_ring_stats(seg);
  EXPECT_EQ(rings.pushed, kSmallRing + 1U) << "the refused values never reached the ring";
  EXPECT_EQ(rings.folded, 1U);
}

TEST(ClientValuesTest, NonFiniteValueFromThreadWithoutRingIsCountedAsInvalidValue) {
  SegmentGuard guard(unique_prefix());
  auto o = small_options(guard.prefix());
  o.rings = 1;
  auto sut = Client::create(o);
  ASSERT_TRUE(sut);
  auto c = sut->counter("no.ring");
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->add(1)) << "this thread takes the only ring";
  bool nan_pushed = true;
  bool finite_pushed = false;

  std::thread([&] {
    nan_pushed = c->add(kNaN);
    finite_pushed = c->add(3);
  }).join();

  EXPECT_FALSE(nan_pushed);
  EXPECT_TRUE(finite_pushed) << "a finite value from a thread without a ring folds";
  const Segment seg = attach(sut.value());
  EXPECT_EQ(segment_dropped(seg, DropReason::kInvalidValue), 1U);
  EXPECT_EQ(seg.counters().folded_no_ring, 1U);
  EXPECT_EQ(fold_double(seg.series_entry(c->series_id()).fold_sum_bits), 3);
}

TEST(ClientValuesTest, ExtremeFiniteValuesArePushedBitForBit) {
  SegmentGuard guard(unique_prefix());
  auto o = small_options(guard.prefix());
  o.ring_capacity = 16;
  auto sut = Client::create(o);
  ASSERT_TRUE(sut);
  auto g = sut->gauge("extremes");
  ASSERT_TRUE(g);
  const std::vector<double> values{DBL_MAX,
                                   -DBL_MAX,
                                   DBL_MIN,
                                   std::numeric_limits<double>::denorm_min(),
                                   -std::numeric_limits<double>::denorm_min(),
                                   -0.0,
                                   0.0,
                                   -1.5,
                                   1e308};

  for (const double v : values) ASSERT_TRUE(g->set(v)) << v;

  const auto events = drain_all(attach(sut.value()));
  ASSERT_EQ(events.size(), values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(std::bit_cast<std::uint64_t>(events[i].value),
              std::bit_cast<std::uint64_t>(values[i]))
        << "value " << values[i] << " at " << i;
  }
}

TEST(ClientValuesTest, FoldedSumOfHugeValuesOverflowsToInfinity) {
  SegmentGuard guard(unique_prefix());
  auto sut = Client::create(small_options(guard.prefix()));
  ASSERT_TRUE(sut);
  auto h = sut->histogram("huge");
  ASSERT_TRUE(h);
  for (std::uint32_t i = 0; i < kSmallRing; ++i) ASSERT_TRUE(h->record(1));

  ASSERT_TRUE(h->record(DBL_MAX));
  ASSERT_TRUE(h->record(DBL_MAX));

  // Documented: each value is finite and accepted; only their folded sum overflows.
  const Segment seg = attach(sut.value());
  const auto& entry = seg.series_entry(h->series_id());
  EXPECT_EQ(entry.fold_count.load(), 2U);
  EXPECT_EQ(fold_double(entry.fold_sum_bits), kInf);
  EXPECT_EQ(fold_double(entry.fold_min_bits), DBL_MAX);
  EXPECT_EQ(fold_double(entry.fold_max_bits), DBL_MAX);
}

// ---- disabled client: no segment, the service runs on --------------------------------------

TEST(ClientDisabledTest, CreateOrDisabledLogsOneLineNamingReasonDirectoryAndFix) {
  std::vector<std::string> log_lines;
  const Options o = unusable_options(unique_prefix(), log_lines);

  const Client sut = Client::create_or_disabled(o);

  EXPECT_FALSE(sut.enabled());
  ASSERT_NE(sut.creation_error(), nullptr);
  EXPECT_EQ(sut.creation_error()->code, ErrorCode::kInvalidOptions);
  EXPECT_NE(sut.creation_error()->message.find("ring capacity is 100"), std::string::npos);
  ASSERT_EQ(log_lines.size(), 1U);
  const std::string& line = log_lines[0];
  EXPECT_EQ(line.rfind("shmstats: metrics disabled for service \"client-test\"", 0), 0U) << line;
  EXPECT_NE(line.find("/dev/shm"), std::string::npos) << line;
  EXPECT_NE(line.find("ring capacity is 100"), std::string::npos) << line;
  EXPECT_NE(line.find("To fix:"), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos) << "one line";
  EXPECT_TRUE(sut.segment_name().empty());
}

TEST(ClientDisabledTest, CreateStaysStrictForTheSameOptions) {
  std::vector<std::string> log_lines;
  const Options o = unusable_options(unique_prefix(), log_lines);

  auto sut = Client::create(o);

  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, ErrorCode::kInvalidOptions);
  EXPECT_TRUE(log_lines.empty()) << "create reports through its Result, not the log";
}

TEST(ClientDisabledTest, RegistrationSucceedsAndEveryPushIsRefusedAndCounted) {
  std::vector<std::string> log_lines;
  Client sut = Client::create_or_disabled(unusable_options(unique_prefix(), log_lines));
  auto counter = sut.counter("d.counter", {{"k", "v"}});
  auto gauge = sut.gauge("d.gauge");
  auto histogram = sut.histogram("d.histogram");
  auto timing = sut.timing("d.timing");
  auto set = sut.set("d.set");
  ASSERT_TRUE(counter && gauge && histogram && timing && set);
  EXPECT_TRUE(counter->valid());
  EXPECT_NE(counter->series_id(), gauge->series_id());
  constexpr int kRounds = 3;
  constexpr std::uint64_t kPushesPerRound = 11;
  std::uint64_t accepted = 0;

  for (int i = 0; i < kRounds; ++i) {
    accepted += counter->add() ? 1 : 0;
    accepted += gauge->set(1) ? 1 : 0;
    accepted += gauge->add(1) ? 1 : 0;
    accepted += histogram->record(1) ? 1 : 0;
    accepted += timing->record(std::chrono::milliseconds(1)) ? 1 : 0;
    accepted += set->add(1) ? 1 : 0;
    accepted += sut.count("d.dyn", 1, {{"k", "v"}}) ? 1 : 0;
    accepted += sut.gauge_set("d.dyn.g", 1) ? 1 : 0;
    accepted += sut.observe("d.dyn.h", 1) ? 1 : 0;
    accepted += sut.time_ms("d.dyn.t", 1) ? 1 : 0;
    accepted += sut.set_add("bad name", 1) ? 1 : 0;  // disabled first, whatever the series
  }

  EXPECT_EQ(accepted, 0U);
  const auto stats = sut.stats();
  EXPECT_EQ(stats.dropped, kRounds * kPushesPerRound);
  EXPECT_EQ(stats.pushed, 0U);
  EXPECT_EQ(stats.folded, 0U);
  EXPECT_EQ(stats.series, 5U) << "the registered series, none of the dynamic ones";
  EXPECT_EQ(log_lines.size(), 1U) << "pushes log nothing";
}

TEST(ClientDisabledTest, RegistrationStillValidatesNamesAndKinds) {
  std::vector<std::string> log_lines;
  Client sut = Client::create_or_disabled(unusable_options(unique_prefix(), log_lines));
  ASSERT_TRUE(sut.counter("same"));

  auto bad_name = sut.counter("has space");
  auto other_kind = sut.gauge("same");
  auto again = sut.counter("same");

  ASSERT_FALSE(bad_name);
  EXPECT_EQ(bad_name.error().code, ErrorCode::kInvalidName);
  ASSERT_FALSE(other_kind);
  EXPECT_EQ(other_kind.error().code, ErrorCode::kKindMismatch);
  ASSERT_TRUE(again);
  EXPECT_EQ(sut.stats().series, 1U);
}

TEST(ClientDisabledTest, PushesAllocateNothing) {
  std::vector<std::string> log_lines;
  Client sut = Client::create_or_disabled(unusable_options(unique_prefix(), log_lines));
  auto counter = sut.counter("d.alloc");
  ASSERT_TRUE(counter);
  constexpr int kPushes = 1000;
  const auto before = g_allocations.load();

  for (int i = 0; i < kPushes; ++i) {
    (void)counter->add();
    (void)sut.count("d.alloc.dynamic", 1, {{"k", "v"}});
  }

  EXPECT_EQ(g_allocations.load() - before, 0U);
  EXPECT_EQ(sut.stats().dropped, 2U * kPushes);
}

TEST(ClientDisabledTest, ConcurrentPushesAreEachCountedOnce) {
  std::vector<std::string> log_lines;
  Client sut = Client::create_or_disabled(unusable_options(unique_prefix(), log_lines));
  auto counter = sut.counter("d.threads");
  ASSERT_TRUE(counter);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10'000;
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;

  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      Counter mine = counter.value();
      for (int i = 0; i < kPerThread; ++i) {
        if (mine.add()) ++accepted;
        if (sut.count("d.threads.dynamic")) ++accepted;
      }
    });
  }
  for (auto& t : threads) t.join();

  EXPECT_EQ(accepted.load(), 0);
  EXPECT_EQ(sut.stats().dropped, 2U * kThreads * kPerThread);
}

TEST(ClientDisabledTest, UsableOptionsGiveAnEnabledClientAndNoLogLine) {
  SegmentGuard guard(unique_prefix());
  std::vector<std::string> log_lines;
  Options o = small_options(guard.prefix());
  o.log = [&log_lines](std::string_view line) { log_lines.emplace_back(line); };

  Client sut = Client::create_or_disabled(o);

  EXPECT_TRUE(sut.enabled());
  EXPECT_EQ(sut.creation_error(), nullptr);
  EXPECT_TRUE(log_lines.empty());
  EXPECT_FALSE(sut.segment_name().empty());
  auto c = sut.counter("enabled");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->add());
}

TEST(ClientDisabledTest, BadEnvironmentDisablesInsteadOfFailing) {
  std::vector<std::string> log_lines;
  Options o = small_options(unique_prefix());
  o.read_environment = true;
  o.log = [&log_lines](std::string_view line) { log_lines.emplace_back(line); };
  ::setenv("SHMSTATS_RINGS", "lots", 1);

  Client sut = Client::create_or_disabled(o);
  ::unsetenv("SHMSTATS_RINGS");

  EXPECT_FALSE(sut.enabled());
  ASSERT_EQ(log_lines.size(), 1U);
  EXPECT_NE(log_lines[0].find("SHMSTATS_RINGS=\"lots\""), std::string::npos) << log_lines[0];
}

}  // namespace
}  // namespace shmstats
