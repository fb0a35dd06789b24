// Exporters and the runner that isolates them.
//
// Concurrency: the drain thread calls ExporterRunner::offer (never blocks: a full queue drops the
// batch and counts it). Each runner has one thread that calls its Exporter's send and flush; an
// exporter never sees two calls at once. Counters are atomics readable from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "model/metric.h"
#include "collector/latency.h"

namespace shmstats::collector {

using model::Batch;
using model::BatchPtr;

// The result of sending one batch.
struct SendResult {
  std::uint64_t events_sent = 0;
  std::uint64_t events_dropped = 0;  // e.g. refused by an open breaker or a too-large series
  std::uint64_t datagrams = 0;
  std::uint64_t bytes = 0;
  std::uint64_t send_errors = 0;
};

class Exporter {
 public:
  virtual ~Exporter() = default;
  virtual const std::string& name() const = 0;
  // Sends a batch. May throw: the runner catches, counts and logs.
  virtual SendResult send(const Batch& batch) = 0;
  // Pushes out anything buffered (called on shutdown and when the queue runs dry).
  virtual SendResult flush() { return {}; }
  // "closed", "open" or "half_open" for exporters with a circuit breaker; "" otherwise.
  virtual std::string breaker_state() const { return {}; }
  // Probes of the half-open breaker: sent, and answered with an error. {0, 0} without a breaker.
  struct Probes {
    std::uint64_t sent = 0;
    std::uint64_t failed = 0;
  };
  virtual Probes breaker_probes() const { return {}; }
};

struct ExporterCounters {
  std::atomic<std::uint64_t> batches_in{0};
  std::atomic<std::uint64_t> batches_dropped_queue_full{0};
  std::atomic<std::uint64_t> events_dropped_queue_full{0};
  std::atomic<std::uint64_t> events_sent{0};
  std::atomic<std::uint64_t> events_dropped_exporter{0};
  std::atomic<std::uint64_t> datagrams{0};
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<std::uint64_t> send_errors{0};
  std::atomic<std::uint64_t> exceptions{0};
  std::atomic<std::uint64_t> events_dropped_exception{0};
  std::atomic<std::uint64_t> queue_depth{0};
};

class ExporterRunner {
 public:
  // `latency`, if given, records each sent event's age (event timestamp to send).
  ExporterRunner(std::unique_ptr<Exporter> exporter, std::size_t queue_capacity,
                 LatencyHistogram* latency = nullptr);
  ~ExporterRunner();  // stop(), if not stopped
  ExporterRunner(const ExporterRunner&) = delete;
  ExporterRunner& operator=(const ExporterRunner&) = delete;

  // Drain thread: queues the batch or, when the queue is full, drops it and counts why.
  void offer(BatchPtr batch) noexcept;
  // Sends what is queued, flushes, and joins the thread; waits at most `deadline`.
  // Returns false if the exporter was still busy at the deadline (its queue is counted dropped).
  bool stop(std::chrono::milliseconds deadline);

  // True if offer() would queue rather than drop (a racy read; any thread).
  bool has_room() const noexcept {
    return counters_.queue_depth.load(std::memory_order_relaxed) < capacity_;
  }
  const std::string& name() const { return exporter_->name(); }
  const ExporterCounters& counters() const { return counters_; }
  std::string breaker_state() const { return exporter_->breaker_state(); }
  Exporter::Probes breaker_probes() const { return exporter_->breaker_probes(); }

 private:
  void run();
  void account(const SendResult& r);

  std::unique_ptr<Exporter> exporter_;
  std::size_t capacity_;
  LatencyHistogram* latency_;
  ExporterCounters counters_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<BatchPtr> queue_;
  std::condition_variable exited_cv_;
  bool stopping_ = false;
  bool stopped_ = false;
  bool exited_ = false;
  std::thread thread_;
};

}  // namespace shmstats::collector
