// The output seam: the Exporter interface every output implements, and the runner that isolates
// each one.
//
// Units: an exporter works in events (a point or an aggregate is one event) and requests (a
// datagram, an HTTP request). Every event of a batch ends in exactly one of: sent (handed to the
// destination), merged (taken into an aggregating output's state, which its own flush sends), or
// dropped (refused, counted by the exporter by reason). The runner adds the drops it causes itself:
// a full queue, an exception, a shutdown deadline.
//
// Completion: when an exporter is done with a batch (sent, merged or dropped, whichever way), the
// runner tells its CompletionSink once, with the batch and the outcome. The drain loop uses this to
// know which batches every output is done with (DeliveryTracker); the ring positions the batch's
// points carry (model::Origin) are what it can then commit.
//
// Flushing: each exporter names how often it must flush (flush_interval); the runner calls flush
// on that deadline whatever the load, and once more at stop. An exporter that buffers nothing
// keeps the default flush, which does nothing.
//
// Concurrency: the drain thread calls ExporterRunner::offer (never blocks: a full queue drops the
// batch and counts it). Each runner has one thread that calls its Exporter's send and flush; an
// exporter never sees two calls at once. breaker() and describe_metrics() are called from the HTTP
// thread while send runs, so what they read must be atomic. Counters are atomics readable from any
// thread.
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
#include <utility>
#include <vector>

#include "collector/latency.h"
#include "common/rate_limited_log.h"
#include "model/metric.h"

namespace shmstats::collector {

using model::Batch;
using model::BatchPtr;

// What one send or flush did.
struct SendResult {
  std::uint64_t events_sent = 0;
  std::uint64_t events_merged = 0;   // taken into an aggregating output's state
  std::uint64_t events_dropped = 0;  // e.g. refused by an open breaker or a too-large series
  std::uint64_t requests = 0;        // datagrams or HTTP requests that went out
  std::uint64_t bytes = 0;
  std::uint64_t send_errors = 0;  // requests that failed
};

enum class BreakerState : int { kNone = -1, kClosed = 0, kOpen = 1, kHalfOpen = 2 };
const char* to_string(BreakerState state) noexcept;

// A circuit breaker's state and its half-open probes (sent, and answered with an error).
struct BreakerStatus {
  BreakerState state = BreakerState::kNone;  // kNone: this exporter has no breaker
  std::uint64_t probes_sent = 0;
  std::uint64_t probes_failed = 0;
};

// One sample an exporter publishes on the collector's /metrics, beside the runner's counters. The
// page adds the label exporter="<instance name>"; samples of one name form one family, whatever
// instance they come from. Names follow shmstats_exporter_<type>_<what>[_total].
struct ExporterSample {
  std::string name;
  std::string type;  // "counter" or "gauge"
  std::string help;
  std::vector<std::pair<std::string, std::string>> labels;  // besides exporter=
  double value = 0;
};

class Exporter {
 public:
  static constexpr std::chrono::milliseconds kDefaultFlushInterval{100};

  virtual ~Exporter() = default;
  // The instance name ("udp", "udp-2", or the name configured): the exporter="..." label.
  virtual const std::string& name() const = 0;
  // Sends a batch (or merges it into the exporter's state). May throw: the runner catches,
  // counts, logs, and counts the batch dropped.
  virtual SendResult send(const Batch& batch) = 0;
  // Pushes out anything buffered. Called every flush_interval() whatever the load, and at stop.
  // Only its requests, bytes and send errors are counted: every event was counted once already,
  // when send() reported it sent, merged or dropped.
  virtual SendResult flush() { return {}; }
  virtual std::chrono::milliseconds flush_interval() const { return kDefaultFlushInterval; }
  virtual BreakerStatus breaker() const { return {}; }
  // Appends the exporter's own samples (e.g. drops by reason). Any thread; reads atomics only.
  virtual void describe_metrics(std::vector<ExporterSample>& /*out*/) const {}
  // HOST:PORT an output serving requests (a scrape endpoint) is bound to, port 0 resolved; ""
  // for outputs that only send. The collector prints it at start-up.
  virtual std::string listen_address() const { return {}; }
};

// How one exporter finished with one batch.
enum class DropCause { kNone, kQueueFull, kException, kShutdown };
struct BatchOutcome {
  std::uint64_t sent = 0;
  std::uint64_t merged = 0;
  std::uint64_t dropped = 0;
  DropCause runner_drop = DropCause::kNone;  // set when the runner dropped the whole batch
};

// Told once per (exporter, batch) when that exporter is done with the batch. Called from the
// runner's thread, or from the drain thread for a batch refused by a full queue.
class CompletionSink {
 public:
  virtual ~CompletionSink() = default;
  virtual void batch_done(const std::string& exporter, const Batch& batch,
                          const BatchOutcome& outcome) noexcept = 0;
};

struct ExporterCounters {
  std::atomic<std::uint64_t> batches_in{0};
  std::atomic<std::uint64_t> batches_dropped_queue_full{0};
  std::atomic<std::uint64_t> events_dropped_queue_full{0};
  std::atomic<std::uint64_t> events_sent{0};
  std::atomic<std::uint64_t> events_merged{0};
  std::atomic<std::uint64_t> events_dropped_exporter{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<std::uint64_t> send_errors{0};
  std::atomic<std::uint64_t> exceptions{0};
  std::atomic<std::uint64_t> events_dropped_exception{0};
  std::atomic<std::uint64_t> flushes{0};
  std::atomic<std::uint64_t> queue_depth{0};
};

class ExporterRunner {
 public:
  // `latency`, if given, records each sent event's age (event timestamp to send). `completion`,
  // if given, is told of every batch this runner is done with; it must outlive the runner.
  ExporterRunner(std::unique_ptr<Exporter> exporter, std::size_t queue_capacity,
                 LatencyHistogram* latency = nullptr, CompletionSink* completion = nullptr);
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
  BreakerStatus breaker() const { return exporter_->breaker(); }
  void describe_metrics(std::vector<ExporterSample>& out) const {
    exporter_->describe_metrics(out);
  }

 private:
  void run();
  void account(const SendResult& r);
  void send_one(const Batch& batch);
  void flush_now();
  void complete(const Batch& batch, const BatchOutcome& outcome) noexcept;

  std::unique_ptr<Exporter> exporter_;
  std::size_t capacity_;
  LatencyHistogram* latency_;
  CompletionSink* completion_;
  std::chrono::milliseconds flush_interval_;
  // At most one line a second per kind (send, flush) for this exporter.
  common::RateLimitedLog error_log_{1, std::chrono::seconds(1)};
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
