// collector/drain.cpp: the drain loop, stepped in the test's thread over segments that the real
// producer library makes in this process.
#include "collector/drain.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "collector/exporter.h"
#include "shm/segment.h"
#include "shmstats/shmstats.h"
#include "tests/support/support.h"

namespace shmstats::collector {
namespace {

using testing::SegmentGuard;
using testing::unique_prefix;
using testing::wait_until;
using namespace std::chrono_literals;

constexpr auto kWait = 10s;

// Issue #5: the drain loop kept the name of every segment it had reclaimed, so its memory grew by
// one name per producer for the whole life of the collector, and a segment made again under a
// reclaimed name (a process's second Client gets its first one's name) was never attached: its
// events were never read and it was never removed. A reclaimed, unlinked name is now forgotten.
TEST(DrainReclaimTest, SegmentMadeAgainUnderAReclaimedNameIsAttachedAndReclaimed) {
  constexpr std::uint64_t kClients = 2;  // one after another in this process
  SegmentGuard guard(unique_prefix());
  DrainOptions options;
  options.prefix = guard.prefix();
  options.rescan_interval = 0ms;
  DrainLoop sut(options, {});
  const auto attached = [&] { return sut.counters().segments_attached.load(); };
  const auto reclaimed = [&] { return sut.counters().segments_reclaimed.load(); };

  std::optional<std::string> first_name;
  for (std::uint64_t n = 1; n <= kClients; ++n) {
    Options client_options;
    client_options.shm_prefix = guard.prefix();
    client_options.service = "drain-test";
    client_options.read_environment = false;
    std::optional<Client> client;
    {
      auto created = Client::create(client_options);
      ASSERT_TRUE(created) << created.error().message;
      client.emplace(std::move(created).value());
    }
    const std::string name = client->segment_name();
    if (!first_name) first_name = name;
    ASSERT_EQ(name, *first_name) << "the premise: both clients get the same segment name";
    ASSERT_TRUE(wait_until([&] { return sut.step(false), attached() == n; }, kWait,
                           [&] { return "attached " + std::to_string(attached()); }))
        << "client " << n;
    client.reset();  // closes the segment
    ASSERT_TRUE(wait_until([&] { return sut.step(false), reclaimed() == n; }, kWait,
                           [&] { return "reclaimed " + std::to_string(reclaimed()); }))
        << "client " << n;
  }
  EXPECT_EQ(attached(), kClients);
  EXPECT_EQ(reclaimed(), kClients);
  EXPECT_TRUE(shm::list_segments(guard.prefix()).empty());
}

// An exporter whose send blocks until the test opens the gate; it counts every value it was given
// (points, and the values folded into each aggregate).
class GatedExporter final : public Exporter {
 public:
  const std::string& name() const override { return name_; }
  SendResult send(const Batch& batch) override {
    std::unique_lock lock(mutex_);
    entered_.fetch_add(1);
    open_cv_.wait(lock, [this] { return open_; });
    std::uint64_t values = batch.points.size();
    for (const auto& a : batch.aggregates) values += a.count;
    values_.fetch_add(values);
    return SendResult{.events_sent = batch.size()};
  }
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    open_cv_.notify_all();
  }
  int entered() const { return entered_.load(); }
  std::uint64_t values() const { return values_.load(); }

 private:
  std::string name_ = "gated";
  std::mutex mutex_;
  std::condition_variable open_cv_;
  bool open_ = false;
  std::atomic<int> entered_{0};
  std::atomic<std::uint64_t> values_{0};
};

// Back-pressure: with every exporter queue full, the drain stops taking events from the rings, and
// a batch that fills meanwhile (values folded by producers whose rings overflowed) waits for queue
// room instead of being offered and dropped. Once the exporter moves again every value arrives.
TEST(DrainBackpressureTest, BatchWaitsForQueueRoomInsteadOfBeingDropped) {
  constexpr int kBatch = 8;
  constexpr std::uint32_t kRingCapacity = 64;
  constexpr int kOverflowing = 100;  // folded: pushed into a full ring
  SegmentGuard guard(unique_prefix());

  auto gated = std::make_unique<GatedExporter>();
  GatedExporter* exporter = gated.get();
  ExporterRunner runner(std::move(gated), /*queue_capacity=*/1);
  DrainOptions options;
  options.prefix = guard.prefix();
  options.rescan_interval = 0ms;
  options.batch_size = kBatch;
  options.ring_quota = kBatch;
  options.flush_interval = 0ms;
  options.fold_interval = 0ms;
  DrainLoop sut(options, {&runner});

  Options client_options;
  client_options.shm_prefix = guard.prefix();
  client_options.service = "drain-test";
  client_options.read_environment = false;
  client_options.rings = 1;
  client_options.ring_capacity = kRingCapacity;
  client_options.overflow = Overflow::kFold;
  auto client = Client::create(client_options);
  ASSERT_TRUE(client) << client.error().message;
  auto counter = client->counter("drain.backpressure");
  ASSERT_TRUE(counter) << counter.error().message;
  const auto push = [&](int n) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(counter->add(1.0));
  };
  std::uint64_t pushed = 0;

  // One batch in the exporter's hands (blocked in send), one in its queue: no room left.
  push(kBatch);
  pushed += kBatch;
  ASSERT_TRUE(wait_until([&] { return sut.step(false), exporter->entered() == 1; }, kWait,
                         [] { return std::string("exporter not entered"); }));
  push(kBatch);
  pushed += kBatch;
  ASSERT_TRUE(wait_until([&] { return sut.step(false), !runner.has_room(); }, kWait,
                         [] { return std::string("queue still has room"); }));

  // Fill the ring and fold past it; the drain steps on with no room anywhere.
  push(static_cast<int>(kRingCapacity) + kOverflowing);
  pushed += kRingCapacity + kOverflowing;
  const auto rounds_before = sut.counters().backpressure_rounds.load();
  for (int i = 0; i < 50; ++i) sut.step(false);
  EXPECT_GT(sut.counters().backpressure_rounds.load(), rounds_before);
  EXPECT_EQ(runner.counters().batches_dropped_queue_full.load(), 0U)
      << "a batch was offered to a full queue and dropped";
  EXPECT_GE(client->stats().folded, static_cast<std::uint64_t>(kOverflowing)) << "the premise";

  exporter->open();
  ASSERT_TRUE(wait_until([&] { return sut.step(false), exporter->values() == pushed; }, kWait,
                         [&] { return "delivered " + std::to_string(exporter->values()); }));
  sut.step(true);
  EXPECT_TRUE(runner.stop(std::chrono::milliseconds(2000)));
  EXPECT_EQ(exporter->values(), pushed);
  EXPECT_EQ(runner.counters().batches_dropped_queue_full.load(), 0U);
  EXPECT_EQ(runner.counters().events_dropped_queue_full.load(), 0U);
}

// Records, for every point it is sent, the batch's id, the series' service and the point's origin.
class RecordingExporter final : public Exporter {
 public:
  struct Seen {
    std::uint64_t batch_id = 0;
    std::string service;
    model::Origin origin;
  };
  const std::string& name() const override { return name_; }
  SendResult send(const Batch& batch) override {
    std::lock_guard lock(mutex_);
    batch_ids_.push_back(batch.id);
    for (const auto& p : batch.points) seen_.push_back(Seen{batch.id, p.series->service, p.origin});
    return SendResult{.events_sent = batch.size()};
  }
  std::vector<std::uint64_t> batch_ids() const {
    std::lock_guard lock(mutex_);
    return batch_ids_;
  }
  std::vector<Seen> seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  std::string name_ = "recording";
  mutable std::mutex mutex_;
  std::vector<std::uint64_t> batch_ids_;
  std::vector<Seen> seen_;
};

// A producer of its own segment (one ring) under the test's prefix.
Client make_client(const std::string& prefix, const std::string& service) {
  Options o;
  o.shm_prefix = prefix;
  o.service = service;
  o.read_environment = false;
  o.rings = 1;
  auto created = Client::create(o);
  if (!created) throw std::runtime_error(created.error().message);
  return std::move(created).value();
}

DrainOptions stepped_options(const std::string& prefix, std::size_t batch_size) {
  DrainOptions options;
  options.prefix = prefix;
  options.rescan_interval = 0ms;
  options.batch_size = batch_size;
  options.ring_quota = batch_size;
  options.flush_interval = 0ms;
  return options;
}

TEST(DrainDeliveryTest, EverySealedBatchHasANewIdThatTheTrackerCompletes) {
  constexpr std::size_t kBatch = 4;
  constexpr int kBatches = 3;
  SegmentGuard guard(unique_prefix());
  DeliveryTracker tracker;
  auto recording = std::make_unique<RecordingExporter>();
  RecordingExporter* exporter = recording.get();
  ExporterRunner runner(std::move(recording), 64, nullptr, &tracker);
  DrainLoop sut(stepped_options(guard.prefix(), kBatch), {&runner}, &tracker);
  Client client = make_client(guard.prefix(), "drain-ids");
  auto counter = client.counter("drain.ids");
  ASSERT_TRUE(counter) << counter.error().message;

  for (int b = 0; b < kBatches; ++b) {
    for (std::size_t i = 0; i < kBatch; ++i) ASSERT_TRUE(counter->add(1.0));
    ASSERT_TRUE(wait_until(
        [&] {
          return sut.step(false), exporter->batch_ids().size() == static_cast<std::size_t>(b + 1);
        },
        kWait, [&] { return std::to_string(exporter->batch_ids().size()); }));
  }
  ASSERT_TRUE(wait_until([&] { return tracker.in_flight() == 0; }, kWait,
                         [&] { return "in flight " + std::to_string(tracker.in_flight()); }));

  const auto ids = exporter->batch_ids();
  ASSERT_EQ(ids.size(), static_cast<std::size_t>(kBatches));
  EXPECT_NE(ids.front(), 0U);
  for (std::size_t i = 1; i < ids.size(); ++i) EXPECT_GT(ids[i], ids[i - 1]) << "batch " << i;
  EXPECT_EQ(tracker.completed_through(), ids.back());
  EXPECT_EQ(tracker.completed_total(), static_cast<std::uint64_t>(kBatches));
  EXPECT_TRUE(runner.stop(std::chrono::milliseconds(2000)));
}

// The origin a point carries is what the crash-proof delivery commits (issue #14): a segment
// attached under a reclaimed name (a process's next Client) starts its positions again, so it must
// get an origin of its own.
TEST(DrainDeliveryTest, EachAttachedSegmentGivesItsPointsANewOriginWithTheirRingPositions) {
  constexpr std::size_t kEvents = 5;
  constexpr std::size_t kSegments = 2;  // one after another in this process, under one name
  SegmentGuard guard(unique_prefix());
  auto recording = std::make_unique<RecordingExporter>();
  RecordingExporter* exporter = recording.get();
  ExporterRunner runner(std::move(recording), 64);
  DrainLoop sut(stepped_options(guard.prefix(), kEvents), {&runner});
  const auto reclaimed = [&] { return sut.counters().segments_reclaimed.load(); };

  for (std::size_t n = 0; n < kSegments; ++n) {
    {
      Client client = make_client(guard.prefix(), "segment" + std::to_string(n));
      auto counter = client.counter("drain.origin");
      ASSERT_TRUE(counter) << counter.error().message;
      for (std::size_t i = 0; i < kEvents; ++i) ASSERT_TRUE(counter->add(1.0));
      ASSERT_TRUE(
          wait_until([&] { return sut.step(false), exporter->seen().size() == (n + 1) * kEvents; },
                     kWait, [&] { return "seen " + std::to_string(exporter->seen().size()); }));
    }
    ASSERT_TRUE(wait_until([&] { return sut.step(false), reclaimed() == n + 1; }, kWait,
                           [&] { return "reclaimed " + std::to_string(reclaimed()); }));
  }
  EXPECT_TRUE(runner.stop(std::chrono::milliseconds(2000)));

  std::map<std::string, std::vector<model::Origin>> by_service;
  for (const auto& s : exporter->seen()) by_service[s.service].push_back(s.origin);
  ASSERT_EQ(by_service["segment0"].size(), kEvents);
  ASSERT_EQ(by_service["segment1"].size(), kEvents);
  EXPECT_NE(by_service["segment0"][0].source, by_service["segment1"][0].source);
  for (const auto& [service, origins] : by_service) {
    for (std::size_t i = 0; i < origins.size(); ++i) {
      EXPECT_TRUE(origins[i].known()) << service << " point " << i;
      EXPECT_EQ(origins[i].source, origins[0].source) << service << " point " << i;
      EXPECT_EQ(origins[i].ring, 0U) << service << " point " << i;
      EXPECT_EQ(origins[i].position, i) << service << " point " << i;
    }
  }
}

}  // namespace
}  // namespace shmstats::collector
