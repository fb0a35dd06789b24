#include "collector/exporter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/support.h"

namespace shmstats::collector {
namespace {

using std::chrono::milliseconds;
using testing::wait_until;

constexpr milliseconds kWait{10'000};
constexpr std::size_t kEventsPerBatch = 3;

BatchPtr make_batch() {
  auto def = std::make_shared<model::SeriesDef>();
  def->name = "runner.test";
  auto batch = std::make_shared<Batch>();
  batch->series.push_back(def);
  for (std::size_t i = 0; i < kEventsPerBatch; ++i) {
    batch->points.push_back(model::Point{def.get(), shm::Kind::kCounter, 1.0, 1.0F, 0});
  }
  return batch;
}

// A slow destination: send blocks until the test releases it, so "slow" lasts exactly as long
// as the test needs without sleeping.
class SlowExporter final : public Exporter {
 public:
  const std::string& name() const override { return name_; }
  SendResult send(const Batch& batch) override {
    std::unique_lock lock(mutex_);
    entered_.fetch_add(1);
    released_cv_.wait(lock, [this] { return released_; });
    return SendResult{.events_sent = batch.size()};
  }
  void release() {
    {
      std::lock_guard lock(mutex_);
      released_ = true;
    }
    released_cv_.notify_all();
  }
  int entered() const { return entered_.load(); }

 private:
  std::string name_ = "slow";
  std::mutex mutex_;
  std::condition_variable released_cv_;
  bool released_ = false;
  std::atomic<int> entered_{0};
};

// Throws on its first batch, then works.
class ThrowOnceExporter final : public Exporter {
 public:
  const std::string& name() const override { return name_; }
  SendResult send(const Batch& batch) override {
    if (calls_.fetch_add(1) == 0) throw std::runtime_error("destination exploded");
    return SendResult{.events_sent = batch.size(), .requests = 1};
  }

 private:
  std::string name_ = "throw_once";
  std::atomic<int> calls_{0};
};

class CountingExporter final : public Exporter {
 public:
  explicit CountingExporter(std::atomic<int>& flushes) : flushes_(flushes) {}
  const std::string& name() const override { return name_; }
  SendResult send(const Batch& batch) override { return SendResult{.events_sent = batch.size()}; }
  SendResult flush() override {
    flushes_.fetch_add(1);
    return {};
  }

 private:
  std::string name_ = "counting";
  std::atomic<int>& flushes_;
};

std::string describe(const ExporterRunner& r) {
  const auto& c = r.counters();
  return "batches_in=" + std::to_string(c.batches_in.load()) +
         " dropped_queue_full=" + std::to_string(c.batches_dropped_queue_full.load()) +
         " events_sent=" + std::to_string(c.events_sent.load()) +
         " exceptions=" + std::to_string(c.exceptions.load()) +
         " queue_depth=" + std::to_string(c.queue_depth.load());
}

TEST(ExporterRunnerTest, SlowExporterDropsBatchesWhenQueueIsFullWithoutBlockingOffer) {
  constexpr std::size_t kCapacity = 4;
  constexpr std::size_t kExtra = 3;
  auto exporter = std::make_unique<SlowExporter>();
  SlowExporter* slow = exporter.get();
  ExporterRunner sut(std::move(exporter), kCapacity);
  sut.offer(make_batch());
  ASSERT_TRUE(
      wait_until([&] { return slow->entered() == 1; }, kWait, [&] { return describe(sut); }));

  // The exporter is stuck in send: these offers must return at once, queuing or dropping.
  for (std::size_t i = 0; i < kCapacity + kExtra; ++i) sut.offer(make_batch());

  const auto& c = sut.counters();
  EXPECT_EQ(c.batches_in.load(), 1 + kCapacity + kExtra);
  EXPECT_EQ(c.batches_dropped_queue_full.load(), kExtra);
  EXPECT_EQ(c.events_dropped_queue_full.load(), kExtra * kEventsPerBatch);
  EXPECT_EQ(c.queue_depth.load(), kCapacity);
  slow->release();
  EXPECT_TRUE(wait_until([&] { return c.events_sent.load() == (1 + kCapacity) * kEventsPerBatch; },
                         kWait, [&] { return describe(sut); }));
  EXPECT_TRUE(sut.stop(kWait));
}

TEST(ExporterRunnerTest, ExporterThatThrowsIsCountedAndKeepsRunning) {
  ExporterRunner sut(std::make_unique<ThrowOnceExporter>(), 8);

  sut.offer(make_batch());
  sut.offer(make_batch());

  const auto& c = sut.counters();
  ASSERT_TRUE(wait_until(
      [&] {
        // events_sent and datagrams are counted one after the other: wait for both.
        return c.exceptions.load() == 1 && c.events_sent.load() == kEventsPerBatch &&
               c.requests.load() == 1;
      },
      kWait, [&] { return describe(sut); }));
  EXPECT_EQ(c.events_dropped_exception.load(), kEventsPerBatch);
  EXPECT_TRUE(sut.stop(kWait));
}

TEST(ExporterRunnerTest, StopSendsQueuedBatchesAndFlushes) {
  constexpr std::size_t kBatches = 5;
  std::atomic<int> flushes{0};
  ExporterRunner sut(std::make_unique<CountingExporter>(flushes), kBatches);
  for (std::size_t i = 0; i < kBatches; ++i) sut.offer(make_batch());

  const bool stopped = sut.stop(kWait);

  EXPECT_TRUE(stopped);
  EXPECT_EQ(sut.counters().events_sent.load(), kBatches * kEventsPerBatch);
  EXPECT_EQ(sut.counters().batches_dropped_queue_full.load(), 0U);
  EXPECT_GE(flushes.load(), 1);
}

TEST(ExporterRunnerTest, StopWithHungExporterReturnsFalseAtTheDeadline) {
  constexpr milliseconds kDeadline{200};
  // Generous: this bounds a hang, it does not measure speed.
  constexpr milliseconds kSlack{5000};
  constexpr std::size_t kQueued = 2;
  auto exporter = std::make_unique<SlowExporter>();
  SlowExporter* hung = exporter.get();
  ExporterRunner sut(std::move(exporter), 8);
  sut.offer(make_batch());
  ASSERT_TRUE(
      wait_until([&] { return hung->entered() == 1; }, kWait, [&] { return describe(sut); }));
  for (std::size_t i = 0; i < kQueued; ++i) sut.offer(make_batch());

  const auto start = std::chrono::steady_clock::now();
  const bool stopped = sut.stop(kDeadline);
  const auto elapsed = std::chrono::steady_clock::now() - start;

  EXPECT_FALSE(stopped);
  EXPECT_GE(elapsed, kDeadline);
  EXPECT_LT(elapsed, kDeadline + kSlack);
  EXPECT_EQ(sut.counters().batches_dropped_queue_full.load(), kQueued);
  EXPECT_EQ(sut.counters().events_dropped_queue_full.load(), kQueued * kEventsPerBatch);
  // Let the detached thread finish before `sut` (which it uses) is destroyed: stop() reports
  // true once the thread has marked itself exited under the runner's lock.
  hung->release();
  EXPECT_TRUE(
      wait_until([&] { return sut.stop(milliseconds(0)); }, kWait, [&] { return describe(sut); }));
}

// Buffers what it is sent and counts its flushes; flushes on a short deadline of its own. A flush
// reports the events it wrote, as an aggregating output does: the runner counted them at send.
class BufferingExporter final : public Exporter {
 public:
  static constexpr milliseconds kFlushInterval{20};
  const std::string& name() const override { return name_; }
  SendResult send(const Batch& batch) override {
    buffered_ += batch.size();
    return SendResult{.events_merged = batch.size()};
  }
  SendResult flush() override {
    const std::uint64_t written = buffered_;
    flushed_.fetch_add(written);
    buffered_ = 0;
    flushes_.fetch_add(1);
    return SendResult{.events_sent = written, .requests = 1};
  }
  milliseconds flush_interval() const override { return kFlushInterval; }
  int flushes() const { return flushes_.load(); }
  std::uint64_t flushed() const { return flushed_.load(); }

 private:
  std::string name_ = "buffering";
  std::uint64_t buffered_ = 0;  // the runner's thread only
  std::atomic<int> flushes_{0};
  std::atomic<std::uint64_t> flushed_{0};
};

// Records every completion the runners report.
class RecordingSink final : public CompletionSink {
 public:
  struct Entry {
    std::string exporter;
    std::uint64_t batch_id;
    BatchOutcome outcome;
  };
  void batch_done(const std::string& exporter, const Batch& batch,
                  const BatchOutcome& outcome) noexcept override {
    std::lock_guard lock(mutex_);
    entries_.push_back(Entry{exporter, batch.id, outcome});
  }
  std::vector<Entry> entries() const {
    std::lock_guard lock(mutex_);
    return entries_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;
};

BatchPtr make_batch_with_id(std::uint64_t id) {
  auto batch = std::const_pointer_cast<Batch>(make_batch());
  batch->id = id;
  return batch;
}

// Issue #13: the runner flushed only after 100 ms with an empty queue, so a buffering output under
// steady load never flushed.
TEST(ExporterRunnerTest, BufferingExporterFlushesOnItsDeadlineUnderSteadyLoad) {
  constexpr int kFlushesWanted = 3;
  constexpr milliseconds kGap{1};  // between two offers: the queue is never idle for long
  auto exporter = std::make_unique<BufferingExporter>();
  BufferingExporter* buffering = exporter.get();
  ExporterRunner sut(std::move(exporter), 1024);

  std::uint64_t offered = 0;
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (buffering->flushes() < kFlushesWanted && std::chrono::steady_clock::now() < deadline) {
    sut.offer(make_batch());
    ++offered;
    std::this_thread::sleep_for(kGap);
  }

  EXPECT_GE(buffering->flushes(), kFlushesWanted) << describe(sut);
  EXPECT_GT(buffering->flushed(), 0U);
  EXPECT_TRUE(sut.stop(kWait));
  EXPECT_EQ(buffering->flushed(), offered * kEventsPerBatch) << "the last flush at stop";
  EXPECT_EQ(sut.counters().events_merged.load(), offered * kEventsPerBatch);
  EXPECT_EQ(sut.counters().events_sent.load(), 0U) << "a flush counts no events again";
  EXPECT_GE(sut.counters().flushes.load(), static_cast<std::uint64_t>(kFlushesWanted) + 1);
}

// Offers the next batch from inside every send until a flush has happened with a batch waiting, so
// the runner's queue is never empty: only a flush deadline that ignores the load lets it flush.
class SaturatingExporter final : public Exporter {
 public:
  static constexpr milliseconds kFlushInterval{5};
  const std::string& name() const override { return name_; }
  void feed(ExporterRunner* runner, std::chrono::steady_clock::time_point give_up) {
    give_up_ = give_up;
    runner_.store(runner);
  }
  SendResult send(const Batch& batch) override {
    if (flushes_under_load_.load() == 0 && std::chrono::steady_clock::now() < give_up_) {
      runner_.load()->offer(make_batch());
    }
    return SendResult{.events_merged = batch.size()};
  }
  SendResult flush() override {
    const ExporterRunner* runner = runner_.load();
    if (runner != nullptr && runner->counters().queue_depth.load() > 0) {
      flushes_under_load_.fetch_add(1);
    }
    return {};
  }
  milliseconds flush_interval() const override { return kFlushInterval; }
  int flushes_under_load() const { return flushes_under_load_.load(); }

 private:
  std::string name_ = "saturating";
  std::atomic<ExporterRunner*> runner_{nullptr};
  std::chrono::steady_clock::time_point give_up_;  // written before runner_ is published
  std::atomic<int> flushes_under_load_{0};
};

TEST(ExporterRunnerTest, FlushDeadlineHoldsWhileTheQueueIsNeverEmpty) {
  auto exporter = std::make_unique<SaturatingExporter>();
  SaturatingExporter* saturating = exporter.get();
  ExporterRunner sut(std::move(exporter), 4);
  saturating->feed(&sut, std::chrono::steady_clock::now() + kWait);

  sut.offer(make_batch());

  EXPECT_TRUE(wait_until([&] { return saturating->flushes_under_load() > 0; }, kWait,
                         [&] { return describe(sut); }));
  EXPECT_TRUE(sut.stop(kWait));
}

// End-to-end latency ends where an output hands an event on: sent to a destination, or merged
// into an aggregating output's state (a collector whose only output is the Prometheus scrape
// endpoint still measures it). Events an output dropped are not measured.
class DroppingExporter final : public Exporter {
 public:
  const std::string& name() const override { return name_; }
  SendResult send(const Batch& batch) override {
    return SendResult{.events_dropped = batch.size()};
  }

 private:
  std::string name_ = "dropping";
};

TEST(ExporterRunnerTest, LatencyIsRecordedForEventsHandedOnNotForDroppedOnes) {
  std::atomic<int> flushes{0};
  LatencyHistogram sending_latency;
  LatencyHistogram merging_latency;
  LatencyHistogram dropping_latency;
  ExporterRunner sending(std::make_unique<CountingExporter>(flushes), 8, &sending_latency);
  ExporterRunner merging(std::make_unique<BufferingExporter>(), 8, &merging_latency);
  ExporterRunner dropping(std::make_unique<DroppingExporter>(), 8, &dropping_latency);

  sending.offer(make_batch());
  merging.offer(make_batch());
  dropping.offer(make_batch());
  EXPECT_TRUE(sending.stop(kWait));
  EXPECT_TRUE(merging.stop(kWait));
  EXPECT_TRUE(dropping.stop(kWait));

  EXPECT_EQ(sending_latency.count(), kEventsPerBatch);
  EXPECT_EQ(merging.counters().events_merged.load(), kEventsPerBatch) << "the premise";
  EXPECT_EQ(merging_latency.count(), kEventsPerBatch);
  EXPECT_EQ(dropping.counters().events_dropped_exporter.load(), kEventsPerBatch) << "the premise";
  EXPECT_EQ(dropping_latency.count(), 0U);
}

TEST(ExporterRunnerTest, CompletionIsReportedOnceForEveryBatchWhateverItsFate) {
  constexpr std::size_t kCapacity = 1;
  RecordingSink sink;
  auto exporter = std::make_unique<SlowExporter>();
  SlowExporter* slow = exporter.get();
  ExporterRunner sut(std::move(exporter), kCapacity, nullptr, &sink);
  sut.offer(make_batch_with_id(1));
  ASSERT_TRUE(
      wait_until([&] { return slow->entered() == 1; }, kWait, [&] { return describe(sut); }));
  sut.offer(make_batch_with_id(2));  // queued
  sut.offer(make_batch_with_id(3));  // the queue is full: dropped, complete at once

  ASSERT_EQ(sink.entries().size(), 1U);
  EXPECT_EQ(sink.entries()[0].batch_id, 3U);
  EXPECT_EQ(sink.entries()[0].outcome.runner_drop, DropCause::kQueueFull);
  EXPECT_EQ(sink.entries()[0].outcome.dropped, kEventsPerBatch);
  slow->release();
  ASSERT_TRUE(
      wait_until([&] { return sink.entries().size() == 3; }, kWait, [&] { return describe(sut); }));
  const auto entries = sink.entries();
  EXPECT_EQ(entries[1].batch_id, 1U);
  EXPECT_EQ(entries[1].outcome.sent, kEventsPerBatch);
  EXPECT_EQ(entries[1].outcome.runner_drop, DropCause::kNone);
  EXPECT_EQ(entries[2].batch_id, 2U);
  EXPECT_EQ(entries[2].exporter, "slow");
  EXPECT_TRUE(sut.stop(kWait));
  EXPECT_EQ(sink.entries().size(), 3U) << "stop reports nothing twice";
}

TEST(ExporterRunnerTest, BatchThatThrowsCompletesAsDroppedByException) {
  RecordingSink sink;
  ExporterRunner sut(std::make_unique<ThrowOnceExporter>(), 8, nullptr, &sink);

  sut.offer(make_batch_with_id(7));
  sut.offer(make_batch_with_id(8));

  ASSERT_TRUE(
      wait_until([&] { return sink.entries().size() == 2; }, kWait, [&] { return describe(sut); }));
  const auto entries = sink.entries();
  EXPECT_EQ(entries[0].batch_id, 7U);
  EXPECT_EQ(entries[0].outcome.runner_drop, DropCause::kException);
  EXPECT_EQ(entries[0].outcome.dropped, kEventsPerBatch);
  EXPECT_EQ(entries[1].outcome.sent, kEventsPerBatch);
  EXPECT_TRUE(sut.stop(kWait));
}

TEST(ExporterRunnerTest, BatchesLeftInAHungRunnersQueueCompleteAsShutdownDrops) {
  constexpr milliseconds kDeadline{50};
  RecordingSink sink;
  auto exporter = std::make_unique<SlowExporter>();
  SlowExporter* hung = exporter.get();
  ExporterRunner sut(std::move(exporter), 8, nullptr, &sink);
  sut.offer(make_batch_with_id(1));
  ASSERT_TRUE(
      wait_until([&] { return hung->entered() == 1; }, kWait, [&] { return describe(sut); }));
  sut.offer(make_batch_with_id(2));

  EXPECT_FALSE(sut.stop(kDeadline));

  const auto entries = sink.entries();
  ASSERT_EQ(entries.size(), 1U);
  EXPECT_EQ(entries[0].batch_id, 2U);
  EXPECT_EQ(entries[0].outcome.runner_drop, DropCause::kShutdown);
  hung->release();
  EXPECT_TRUE(
      wait_until([&] { return sut.stop(milliseconds(0)); }, kWait, [&] { return describe(sut); }));
  EXPECT_EQ(sink.entries().size(), 2U) << "the batch in send completes once it returns";
}

}  // namespace
}  // namespace shmstats::collector
