#include "collector/exporter.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include "common/rate_limited_log.h"

namespace shmstats::collector {

const char* to_string(BreakerState state) noexcept {
  switch (state) {
    case BreakerState::kNone:
      return "";
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "?";
}

ExporterRunner::ExporterRunner(std::unique_ptr<Exporter> exporter, std::size_t queue_capacity,
                               LatencyHistogram* latency, CompletionSink* completion)
    : exporter_(std::move(exporter)),
      capacity_(queue_capacity == 0 ? 1 : queue_capacity),
      latency_(latency),
      completion_(completion),
      flush_interval_(std::max(exporter_->flush_interval(), std::chrono::milliseconds(1))) {
  thread_ = std::thread([this] { run(); });
}

ExporterRunner::~ExporterRunner() { stop(std::chrono::milliseconds(1000)); }

void ExporterRunner::complete(const Batch& batch, const BatchOutcome& outcome) noexcept {
  if (completion_ != nullptr) completion_->batch_done(exporter_->name(), batch, outcome);
}

void ExporterRunner::offer(BatchPtr batch) noexcept {
  if (!batch) return;
  counters_.batches_in.fetch_add(1, std::memory_order_relaxed);
  bool queued = false;
  {
    std::lock_guard lock(mutex_);
    if (!stopping_ && queue_.size() < capacity_) {
      queue_.push_back(batch);
      counters_.queue_depth.store(queue_.size(), std::memory_order_relaxed);
      queued = true;
    }
  }
  if (queued) {
    wake_.notify_one();
    return;
  }
  // A slow or stuck exporter loses its own batches, counted; the drain loop never waits.
  counters_.batches_dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
  counters_.events_dropped_queue_full.fetch_add(batch->size(), std::memory_order_relaxed);
  complete(*batch, BatchOutcome{0, 0, batch->size(), DropCause::kQueueFull});
}

void ExporterRunner::account(const SendResult& r) {
  counters_.events_sent.fetch_add(r.events_sent, std::memory_order_relaxed);
  counters_.events_merged.fetch_add(r.events_merged, std::memory_order_relaxed);
  counters_.events_dropped_exporter.fetch_add(r.events_dropped, std::memory_order_relaxed);
  counters_.requests.fetch_add(r.requests, std::memory_order_relaxed);
  counters_.bytes.fetch_add(r.bytes, std::memory_order_relaxed);
  counters_.send_errors.fetch_add(r.send_errors, std::memory_order_relaxed);
}

void ExporterRunner::send_one(const Batch& batch) {
  SendResult r;
  try {
    r = exporter_->send(batch);
  } catch (const std::exception& e) {
    counters_.exceptions.fetch_add(1, std::memory_order_relaxed);
    counters_.events_dropped_exception.fetch_add(batch.size(), std::memory_order_relaxed);
    error_log_.log(spdlog::level::err, "send", "exporter {}: {} (batch dropped and counted)",
                   exporter_->name(), e.what());
    complete(batch, BatchOutcome{0, 0, batch.size(), DropCause::kException});
    return;
  }
  account(r);
  // Latency ends where an output hands the event on: sent, or merged into its state.
  if (latency_ != nullptr && r.events_sent + r.events_merged > 0) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    const std::int64_t now = ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
    for (const auto& p : batch.points) latency_->record_ns(now - p.time_unix_ns);
  }
  complete(batch, BatchOutcome{r.events_sent, r.events_merged, r.events_dropped});
}

void ExporterRunner::flush_now() {
  counters_.flushes.fetch_add(1, std::memory_order_relaxed);
  try {
    SendResult r = exporter_->flush();
    r.events_sent = r.events_merged = r.events_dropped = 0;  // counted at send (exporter.h)
    account(r);
  } catch (const std::exception& e) {
    counters_.exceptions.fetch_add(1, std::memory_order_relaxed);
    error_log_.log(spdlog::level::err, "flush", "exporter {}: flush failed: {}", exporter_->name(),
                   e.what());
  }
}

void ExporterRunner::run() {
  using Clock = std::chrono::steady_clock;
  auto next_flush = Clock::now() + flush_interval_;
  for (;;) {
    BatchPtr batch;
    {
      std::unique_lock lock(mutex_);
      if (queue_.empty() && !stopping_) {
        // Sleep until work arrives or the flush is due, whichever comes first.
        wake_.wait_until(lock, next_flush, [this] { return !queue_.empty() || stopping_; });
      }
      if (!queue_.empty()) {
        batch = std::move(queue_.front());
        queue_.pop_front();
        counters_.queue_depth.store(queue_.size(), std::memory_order_relaxed);
      } else if (stopping_) {
        break;
      }
    }
    if (batch) send_one(*batch);
    // The flush deadline holds under any load: a steady stream of batches does not defer it.
    if (const auto now = Clock::now(); now >= next_flush) {
      flush_now();
      next_flush = now + flush_interval_;
    }
  }
  flush_now();
  std::lock_guard lock(mutex_);
  exited_ = true;
  exited_cv_.notify_all();
}

bool ExporterRunner::stop(std::chrono::milliseconds deadline) {
  std::unique_lock lock(mutex_);
  if (stopped_) return exited_;
  stopping_ = true;
  wake_.notify_all();
  // The thread sends what is queued, flushes, then reports that it exited.
  const bool exited = exited_cv_.wait_for(lock, deadline, [this] { return exited_; });
  std::deque<BatchPtr> abandoned;
  if (!exited) {
    // Still busy at the deadline (a hung destination): what it did not send is counted dropped.
    for (const auto& b : queue_) {
      counters_.batches_dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
      counters_.events_dropped_queue_full.fetch_add(b->size(), std::memory_order_relaxed);
    }
    abandoned.swap(queue_);
    counters_.queue_depth.store(0, std::memory_order_relaxed);
  }
  stopped_ = true;
  lock.unlock();
  for (const auto& b : abandoned) complete(*b, BatchOutcome{0, 0, b->size(), DropCause::kShutdown});
  if (exited) {
    thread_.join();
  } else {
    // A thread stuck inside send() cannot be joined; it is left to the process exit, which
    // follows a stop() in the collector. The runner must outlive it, so main keeps runners alive.
    thread_.detach();
    spdlog::warn("exporter {} did not finish within {} ms; its queue was dropped and counted",
                 exporter_->name(), deadline.count());
  }
  return exited;
}

}  // namespace shmstats::collector
