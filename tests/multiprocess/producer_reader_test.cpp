// Real processes on a real /dev/shm segment: a producer process (tests/support/helper_main.cpp
// "produce") and a reader process ("drain") or this test as the reader.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <vector>

#include "shm/segment.h"
#include "tests/support/support.h"

namespace shmstats {
namespace {

using shm::Segment;
using testing::ChildProcess;
using testing::helper_path;
using testing::SegmentGuard;
using testing::unique_prefix;
using testing::wait_until;
using namespace std::chrono_literals;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kEventsPerThread = 20'000;
#else
constexpr int kEventsPerThread = 250'000;
#endif

// A producer process with 4 threads pushes known sequences; a separate reader process drains and
// checks each value arrives exactly once and in order per thread; the counts close.
TEST(MultiProcessTest, FourThreadProducerDeliversEachValueOnceToReaderProcess) {
  SegmentGuard guard(unique_prefix());
  constexpr int kThreads = 4;
  auto producer =
      ChildProcess::spawn({helper_path(), "produce", "--prefix", guard.prefix(), "--threads",
                           std::to_string(kThreads), "--events", std::to_string(kEventsPerThread),
                           "--ring-capacity", "4096", "--overflow", "drop_newest", "--hold"});
  const std::string name = producer.read_line_starting("segment ", 10s);
  ASSERT_FALSE(name.empty()) << "producer did not report its segment";
  auto reader = ChildProcess::spawn({helper_path(), "drain", "--segment", name, "--threads",
                                     std::to_string(kThreads), "--events",
                                     std::to_string(kEventsPerThread), "--timeout-ms", "120000"});
  const std::string done = producer.read_line_starting("done ", 150s);
  ASSERT_FALSE(done.empty()) << "producer did not finish";
  const std::string result = reader.read_all(true);
  ASSERT_EQ(reader.wait(30s), 0) << result;
  const std::uint64_t consumed = testing::line_field(result, "consumed");
  EXPECT_EQ(consumed, static_cast<std::uint64_t>(kThreads) * kEventsPerThread) << result;
  EXPECT_EQ(testing::line_field(done, "failures"), 0U) << done;
  EXPECT_EQ(testing::line_field(done, "folded"), 0U) << done;
  // Every push attempt is accounted for: consumed, or refused (and retried) as ring_full.
  EXPECT_EQ(testing::line_field(done, "pushed"), consumed + testing::line_field(done, "dropped"))
      << done;
  producer.kill(SIGTERM);
  EXPECT_EQ(producer.wait(10s), 128 + SIGTERM);
}

// A producer SIGKILLed mid-stream: every event it had committed (below its ring's tail) is still
// readable, in order; a new producer process never touches the dead one's segment.
TEST(MultiProcessTest, SigkilledProducerLeavesEveryCommittedEventReadable) {
  SegmentGuard guard(unique_prefix());
  constexpr int kThreads = 2;
  constexpr std::uint64_t kMinCommitted = 10'000;
  auto producer = ChildProcess::spawn({helper_path(), "produce", "--prefix", guard.prefix(),
                                       "--threads", std::to_string(kThreads), "--forever",
                                       "--ring-capacity", "65536", "--overflow", "drop_newest"});
  const std::string name = producer.read_line_starting("segment ", 10s);
  ASSERT_FALSE(name.empty());
  auto watch = Segment::attach(name, Segment::Access::kReadOnly);
  ASSERT_TRUE(watch) << watch.error().message;
  auto committed_rings = [&] {
    int n = 0;
    for (std::uint32_t r = 0; r < watch.value().geometry().ring_count; ++r) {
      if (watch.value().ring_stats(r).tail >= kMinCommitted) ++n;
    }
    return n;
  };
  ASSERT_TRUE(
      wait_until([&] { return committed_rings() == kThreads; }, 30s,
                 [&] { return std::to_string(committed_rings()) + " rings past the mark"; }));
  producer.kill(SIGKILL);
  ASSERT_EQ(producer.wait(10s), 128 + SIGKILL);

  auto sut = Segment::attach(name, Segment::Access::kReadWrite);
  ASSERT_TRUE(sut) << sut.error().message;
  const auto& h = sut.value().header();
  EXPECT_EQ(shm::owner_status(h.owner_pid, h.owner_start_time), shm::OwnerStatus::kDead);
  EXPECT_EQ(sut.value().state(), shm::SegmentState::kActive) << "a crash cannot mark it closed";

  // A new producer with the same prefix makes its own segment and leaves this one alone.
  std::map<std::uint32_t, std::uint64_t> tails;
  for (std::uint32_t r = 0; r < sut.value().geometry().ring_count; ++r) {
    tails[r] = sut.value().ring_stats(r).tail;
  }
  auto next = ChildProcess::spawn(
      {helper_path(), "produce", "--prefix", guard.prefix(), "--threads", "1", "--events", "100"});
  const std::string next_name = next.read_line_starting("segment ", 10s);
  EXPECT_NE(next_name, name);
  EXPECT_EQ(next.wait(30s), 0);

  std::vector<shm::Event> batch(1024);
  std::uint64_t total = 0;
  for (std::uint32_t r = 0; r < sut.value().geometry().ring_count; ++r) {
    EXPECT_EQ(sut.value().ring_stats(r).tail, tails[r]) << "ring " << r << " changed";
    auto reader = sut.value().ring_reader(r);
    std::map<std::uint32_t, std::uint64_t> expected;
    std::uint64_t read = 0;
    for (;;) {
      const auto got = reader.poll(batch);
      ASSERT_FALSE(got.corrupt);
      if (got.count == 0) break;
      for (std::size_t i = 0; i < got.count; ++i) {
        ASSERT_EQ(batch[i].value, static_cast<double>(expected[batch[i].series_id]++))
            << "ring " << r << " position " << read + i;
      }
      read += got.count;
    }
    EXPECT_EQ(read, tails[r]) << "ring " << r << ": every committed event is readable";
    total += read;
  }
  EXPECT_GE(total, kMinCommitted * kThreads);
}

}  // namespace
}  // namespace shmstats
