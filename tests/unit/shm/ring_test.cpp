#include "shm/ring.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

namespace shmstats::shm {
namespace {

// A ring in ordinary memory, laid out as in a segment.
class LocalRing {
 public:
  explicit LocalRing(std::uint32_t capacity)
      : capacity_(capacity),
        storage_(static_cast<unsigned char*>(
            std::aligned_alloc(kCacheLine, sizeof(RingHeader) + capacity * sizeof(Event)))) {
    std::memset(storage_.get(), 0, sizeof(RingHeader) + capacity * sizeof(Event));
    header_ = new (storage_.get()) RingHeader;
  }
  RingWriter writer() { return RingWriter(header_, slots(), capacity_); }
  RingReader reader() { return RingReader(header_, slots(), capacity_); }
  RingHeader& header() { return *header_; }

 private:
  struct Free {
    void operator()(unsigned char* p) const { std::free(p); }
  };
  Event* slots() { return reinterpret_cast<Event*>(storage_.get() + sizeof(RingHeader)); }
  std::uint32_t capacity_;
  std::unique_ptr<unsigned char, Free> storage_;
  RingHeader* header_;
};

Event event_with(std::uint64_t seq) {
  Event ev{};
  ev.series_id = static_cast<std::uint32_t>(seq % 7);
  ev.kind = static_cast<std::uint8_t>(Kind::kCounter);
  ev.sample_rate = 1.0F;
  ev.value = static_cast<double>(seq);
  ev.ts = seq;
  return ev;
}

constexpr std::uint32_t kCapacity = 8;

TEST(RingTest, PollReturnsNothingWhenEmpty) {
  LocalRing ring(kCapacity);
  auto sut = ring.reader();
  std::vector<Event> out(kCapacity);
  const auto got = sut.poll(out);
  EXPECT_EQ(got.count, 0U);
  EXPECT_FALSE(got.corrupt);
  EXPECT_EQ(sut.size_estimate(), 0U);
}

TEST(RingTest, PushFailsWhenFull) {
  LocalRing ring(kCapacity);
  auto sut = ring.writer();
  for (std::uint64_t i = 0; i < kCapacity; ++i) ASSERT_TRUE(sut.try_push(event_with(i), kCapacity));
  EXPECT_FALSE(sut.try_push(event_with(kCapacity), kCapacity));
  EXPECT_EQ(ring.header().tail.load(), kCapacity);
  EXPECT_EQ(ring.header().high_water.load(), kCapacity);
}

TEST(RingTest, PushRespectsLowerFillLimit) {
  LocalRing ring(kCapacity);
  auto sut = ring.writer();
  constexpr std::uint64_t kLimit = 5;
  for (std::uint64_t i = 0; i < kLimit; ++i) ASSERT_TRUE(sut.try_push(event_with(i), kLimit));
  EXPECT_FALSE(sut.try_push(event_with(kLimit), kLimit));
  EXPECT_TRUE(sut.try_push(event_with(kLimit), kCapacity));
}

TEST(RingTest, PollReturnsEventsInOrderAndFreesRoom) {
  LocalRing ring(kCapacity);
  auto writer = ring.writer();
  auto sut = ring.reader();
  for (std::uint64_t i = 0; i < kCapacity; ++i)
    ASSERT_TRUE(writer.try_push(event_with(i), kCapacity));
  std::vector<Event> out(3);
  const auto got = sut.poll(out);
  ASSERT_EQ(got.count, 3U);
  for (std::size_t i = 0; i < got.count; ++i) EXPECT_EQ(out[i].value, static_cast<double>(i));
  EXPECT_EQ(ring.header().head.load(), 3U);
  EXPECT_TRUE(writer.try_push(event_with(kCapacity), kCapacity));
}

TEST(RingTest, WrapsAroundManyLapsWithoutLossOrReorder) {
  LocalRing ring(kCapacity);
  auto writer = ring.writer();
  auto sut = ring.reader();
  constexpr std::uint64_t kLaps = 10'000;
  std::vector<Event> out(5);
  std::uint64_t next_push = 0;
  std::uint64_t next_read = 0;
  while (next_read < kLaps * kCapacity) {
    while (writer.try_push(event_with(next_push), kCapacity)) ++next_push;
    const auto got = sut.poll(out);
    ASSERT_FALSE(got.corrupt);
    for (std::size_t i = 0; i < got.count; ++i) {
      ASSERT_EQ(out[i].value, static_cast<double>(next_read)) << "at " << next_read;
      ++next_read;
    }
  }
  EXPECT_EQ(ring.header().head.load(), next_read);
  EXPECT_EQ(ring.header().tail.load(), next_push);
}

TEST(RingTest, IndexArithmeticHoldsNearUint64Wrap) {
  LocalRing ring(kCapacity);
  // Start both indices just below 2^64 so they wrap while in use.
  constexpr std::uint64_t kStart = ~std::uint64_t{0} - 3;
  ring.header().head.store(kStart);
  ring.header().tail.store(kStart);
  ring.header().cached_head = kStart;
  auto writer = ring.writer();
  auto sut = ring.reader();
  for (std::uint64_t i = 0; i < kCapacity; ++i)
    ASSERT_TRUE(writer.try_push(event_with(i), kCapacity));
  EXPECT_FALSE(writer.try_push(event_with(99), kCapacity));
  std::vector<Event> out(kCapacity);
  const auto got = sut.poll(out);
  ASSERT_EQ(got.count, kCapacity);
  for (std::size_t i = 0; i < got.count; ++i) EXPECT_EQ(out[i].value, static_cast<double>(i));
}

TEST(RingTest, OverwriteDiscardsOldestWhenFull) {
  LocalRing ring(kCapacity);
  auto sut = ring.writer();
  auto reader = ring.reader();
  constexpr std::uint64_t kExtra = 3;
  std::uint64_t discarded = 0;
  for (std::uint64_t i = 0; i < kCapacity + kExtra; ++i)
    discarded += sut.push_overwrite(event_with(i)) ? 1 : 0;
  EXPECT_EQ(discarded, kExtra);
  std::vector<Event> out(kCapacity);
  const auto got = reader.poll(out);
  ASSERT_EQ(got.count, kCapacity);
  // The freshest kCapacity events survive, oldest first.
  for (std::size_t i = 0; i < got.count; ++i)
    EXPECT_EQ(out[i].value, static_cast<double>(i + kExtra));
}

TEST(RingTest, SlotWordsRoundTripEveryEventField) {
  Event ev{};
  ev.series_id = 0xA1B2C3D4;
  ev.kind = static_cast<std::uint8_t>(Kind::kGaugeDelta);
  ev.flags = kEventFlagHighPriority;
  ev.sample_rate = 0.25F;
  ev.value = -1234.5;
  ev.ts = 0x0123456789ABCDEFULL;
  const detail::SlotWords words = detail::to_slot_words(ev);
  Event back{};
  std::memcpy(&back, words.word, sizeof(back));
  EXPECT_EQ(back.series_id, ev.series_id);
  EXPECT_EQ(back.kind, ev.kind);
  EXPECT_EQ(back.flags, ev.flags);
  EXPECT_EQ(back.sample_rate, ev.sample_rate);
  EXPECT_EQ(back.value, ev.value);
  EXPECT_EQ(back.ts, ev.ts);
  const detail::SlotWords made =
      detail::make_slot_words(ev.series_id, ev.kind, ev.flags, ev.sample_rate, ev.value, ev.ts);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(made.word[i], words.word[i]) << "word " << i;
}

TEST(RingTest, PushWithBuildsTheEventOnlyWhenItGoesIn) {
  LocalRing ring(kCapacity);
  auto sut = ring.writer();
  int built = 0;
  auto make = [&]() noexcept {
    ++built;
    return detail::to_slot_words(event_with(static_cast<std::uint64_t>(built)));
  };
  for (std::uint32_t i = 0; i < kCapacity; ++i) ASSERT_TRUE(sut.try_push_with(kCapacity, make));
  EXPECT_FALSE(sut.try_push_with(kCapacity, make));
  EXPECT_EQ(built, static_cast<int>(kCapacity)) << "a full ring must not build (or time) the event";
  auto reader = ring.reader();
  std::vector<Event> out(kCapacity);
  ASSERT_EQ(reader.poll(out).count, kCapacity);
  EXPECT_EQ(out[0].value, 1.0);
  EXPECT_EQ(out[kCapacity - 1].value, static_cast<double>(kCapacity));
}

TEST(RingTest, PushCachedRefusesOnStaleHeadUntilAFullCheckRefreshesIt) {
  LocalRing ring(kCapacity);
  auto sut = ring.writer();
  auto make = [] { return detail::to_slot_words(event_with(7)); };
  for (std::uint32_t i = 0; i < kCapacity; ++i) ASSERT_TRUE(sut.try_push_cached(kCapacity, make));
  auto reader = ring.reader();
  std::vector<Event> out(2);
  ASSERT_EQ(reader.poll(out).count, 2U);  // two slots free, but the cached head does not know
  EXPECT_FALSE(sut.try_push_cached(kCapacity, make));
  EXPECT_TRUE(sut.try_push_with(kCapacity, make)) << "the checked path reads head and finds room";
  EXPECT_TRUE(sut.try_push_cached(kCapacity, make)) << "and the refreshed cache now knows";
  EXPECT_FALSE(sut.try_push_cached(kCapacity, make));
}

TEST(RingTest, PollReportsCorruptWhenIndicesBreakInvariant) {
  LocalRing ring(kCapacity);
  ring.header().head.store(0);
  ring.header().tail.store(kCapacity * 4);  // more waiting than the ring can hold
  auto sut = ring.reader();
  std::vector<Event> out(kCapacity);
  const auto got = sut.poll(out);
  EXPECT_TRUE(got.corrupt);
  EXPECT_EQ(got.count, 0U);
}

TEST(RingTest, PollTerminatesWhenHeadIsAheadOfTail) {
  LocalRing ring(kCapacity);
  ring.header().head.store(100);
  ring.header().tail.store(10);
  auto sut = ring.reader();
  std::vector<Event> out(kCapacity);
  const auto got = sut.poll(out);
  EXPECT_EQ(got.count, 0U);
}

// Issue #5: a head stuck ahead of the tail used to read as an empty ring, never as corrupt, so a
// hostile producer could park a ring for ever without it being quarantined.
TEST(RingTest, HeadStuckAheadOfTailIsReportedCorrupt) {
  constexpr std::uint64_t kTail = 10;
  constexpr std::uint64_t kHead = 100;
  LocalRing ring(kCapacity);
  ring.header().head.store(kHead);
  ring.header().tail.store(kTail);
  auto sut = ring.reader();
  std::vector<Event> out(kCapacity);

  const auto got = sut.poll(out);

  EXPECT_TRUE(got.corrupt);
  EXPECT_EQ(got.count, 0U);
  EXPECT_EQ(ring.header().head.load(), kHead) << "a corrupt ring is left as it was";
  EXPECT_EQ(ring.header().tail.load(), kTail);
}

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::uint64_t kStressEvents = 200'000;
#else
constexpr std::uint64_t kStressEvents = 10'000'000;
#endif

// One producer thread and one consumer thread: no loss, no duplicate, order kept.
TEST(RingStressTest, TwoThreadsMoveEverySequenceValueOnceInOrder) {
  constexpr std::uint32_t kStressCapacity = 1024;
  LocalRing ring(kStressCapacity);
  std::thread producer([&] {
    auto writer = ring.writer();
    for (std::uint64_t i = 0; i < kStressEvents; ++i) {
      while (!writer.try_push(event_with(i), kStressCapacity)) std::this_thread::yield();
    }
  });
  auto sut = ring.reader();
  std::vector<Event> out(256);
  std::uint64_t next = 0;
  std::uint64_t mismatches = 0;
  while (next < kStressEvents) {
    const auto got = sut.poll(out);
    ASSERT_FALSE(got.corrupt);
    for (std::size_t i = 0; i < got.count; ++i) {
      if (out[i].value != static_cast<double>(next) || out[i].ts != next) ++mismatches;
      ++next;
    }
    if (got.count == 0) std::this_thread::yield();
  }
  producer.join();
  EXPECT_EQ(mismatches, 0U);
  EXPECT_EQ(next, kStressEvents);
  EXPECT_EQ(ring.header().tail.load(), kStressEvents);
}

// Drop-oldest under a live consumer: every event read is intact (never torn), strictly increasing,
// and read + discarded + left == pushed.
TEST(RingStressTest, OverwriteRacingConsumerNeverYieldsTornOrDuplicateEvents) {
  constexpr std::uint32_t kStressCapacity = 64;
  constexpr std::uint64_t kEvents = kStressEvents / 10;
  LocalRing ring(kStressCapacity);
  std::atomic<std::uint64_t> discarded{0};
  std::atomic<bool> done{false};
  std::thread producer([&] {
    auto writer = ring.writer();
    std::uint64_t local = 0;
    for (std::uint64_t i = 0; i < kEvents; ++i)
      local += writer.push_overwrite(event_with(i)) ? 1 : 0;
    discarded = local;
    done = true;
  });
  auto sut = ring.reader();
  std::vector<Event> out(16);
  std::uint64_t read = 0;
  std::uint64_t torn = 0;
  std::uint64_t out_of_order = 0;
  double last = -1;
  for (;;) {
    const bool finished = done.load();
    const auto got = sut.poll(out);
    ASSERT_FALSE(got.corrupt);
    for (std::size_t i = 0; i < got.count; ++i) {
      const auto seq = static_cast<std::uint64_t>(out[i].value);
      if (out[i].ts != seq || out[i].series_id != seq % 7) ++torn;
      if (out[i].value <= last) ++out_of_order;
      last = out[i].value;
      ++read;
    }
    if (finished && got.count == 0) break;
  }
  producer.join();
  EXPECT_EQ(torn, 0U);
  EXPECT_EQ(out_of_order, 0U);
  EXPECT_EQ(read + discarded.load(), kEvents);
}

// Drop-oldest in a ring of two: the producer laps the reader between its loads of tail and head
// all the time, so the reader often sees head ahead of the tail it loaded. That race must never
// be taken for corruption (the check that quarantines a head stuck ahead of the tail).
TEST(RingStressTest, OverwriteLappingTheReaderIsNeverReportedCorrupt) {
  constexpr std::uint32_t kTinyCapacity = 2;
  constexpr std::uint64_t kEvents = kStressEvents / 10;
  LocalRing ring(kTinyCapacity);
  std::atomic<bool> done{false};
  std::thread producer([&] {
    auto writer = ring.writer();
    for (std::uint64_t i = 0; i < kEvents; ++i) (void)writer.push_overwrite(event_with(i));
    done = true;
  });
  auto sut = ring.reader();
  std::vector<Event> out(kTinyCapacity);
  std::uint64_t polls = 0;
  std::uint64_t corrupt = 0;
  for (;;) {
    const bool finished = done.load();
    const auto got = sut.poll(out);
    ++polls;
    if (got.corrupt) ++corrupt;
    if (finished && got.count == 0) break;
  }
  producer.join();
  EXPECT_EQ(corrupt, 0U) << "of " << polls << " polls";
}

}  // namespace
}  // namespace shmstats::shm
