#include "collector/exporter.h"

#include <spdlog/spdlog.h>

#include <ctime>

#include "common/rate_limited_log.h"

namespace shmstats::collector {

ExporterRunner::ExporterRunner(std::unique_ptr<Exporter> exporter, std::size_t queue_capacity,
                               LatencyHistogram* latency)
    : exporter_(std::move(exporter)),
      capacity_(queue_capacity == 0 ? 1 : queue_capacity),
      latency_(latency) {
  thread_ = std::thread([this] { run(); });
}

ExporterRunner::~ExporterRunner() { stop(std::chrono::milliseconds(1000)); }

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
}

void ExporterRunner::account(const SendResult& r) {
  counters_.events_sent.fetch_add(r.events_sent, std::memory_order_relaxed);
  counters_.events_dropped_exporter.fetch_add(r.events_dropped, std::memory_order_relaxed);
  counters_.datagrams.fetch_add(r.datagrams, std::memory_order_relaxed);
  counters_.bytes.fetch_add(r.bytes, std::memory_order_relaxed);
  counters_.send_errors.fetch_add(r.send_errors, std::memory_order_relaxed);
}

void ExporterRunner::run() {
  for (;;) {
    BatchPtr batch;
    bool idle_flush = false;
    {
      std::unique_lock lock(mutex_);
      if (queue_.empty() && !stopping_) {
        // Wake at least every 100 ms so buffering exporters flush on age.
        if (!wake_.wait_for(lock, std::chrono::milliseconds(100),
                            [this] { return !queue_.empty() || stopping_; })) {
          idle_flush = true;
        }
      }
      if (!queue_.empty()) {
        batch = std::move(queue_.front());
        queue_.pop_front();
        counters_.queue_depth.store(queue_.size(), std::memory_order_relaxed);
      } else if (stopping_) {
        break;
      }
    }
    try {
      if (batch) {
        const SendResult r = exporter_->send(*batch);
        account(r);
        if (latency_ != nullptr && r.events_sent > 0) {
          timespec ts{};
          clock_gettime(CLOCK_REALTIME, &ts);
          const std::int64_t now = ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
          for (const auto& p : batch->points) latency_->record_ns(now - p.time_unix_ns);
        }
      } else if (idle_flush) {
        account(exporter_->flush());
      }
    } catch (const std::exception& e) {
      counters_.exceptions.fetch_add(1, std::memory_order_relaxed);
      if (batch)
        counters_.events_dropped_exception.fetch_add(batch->size(), std::memory_order_relaxed);
      // Rate-limited: at most one line per exporter (this thread) per second.
      static thread_local common::RateLimitedLog error_log{1, std::chrono::seconds(1)};
      error_log.log(spdlog::level::err, {}, "exporter {}: {} (batch dropped and counted)",
                    exporter_->name(), e.what());
    }
  }
  try {
    account(exporter_->flush());
  } catch (const std::exception& e) {
    counters_.exceptions.fetch_add(1, std::memory_order_relaxed);
    spdlog::error("exporter {}: flush at shutdown failed: {}", exporter_->name(), e.what());
  }
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
  if (!exited) {
    // Still busy at the deadline (a hung destination): what it did not send is counted dropped.
    for (const auto& b : queue_) {
      counters_.batches_dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
      counters_.events_dropped_queue_full.fetch_add(b->size(), std::memory_order_relaxed);
    }
    queue_.clear();
  }
  stopped_ = true;
  lock.unlock();
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
