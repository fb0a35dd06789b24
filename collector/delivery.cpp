#include "collector/delivery.h"

namespace shmstats::collector {

void DeliveryTracker::expect(std::uint64_t batch_id, std::size_t outputs) {
  std::lock_guard lock(mutex_);
  highest_expected_ = std::max(highest_expected_, batch_id);
  if (outputs == 0) {
    ++completed_total_;
  } else {
    remaining_[batch_id] = outputs;
  }
  advance_locked();
}

void DeliveryTracker::batch_done(const std::string& /*exporter*/, const Batch& batch,
                                 const BatchOutcome& /*outcome*/) noexcept {
  std::lock_guard lock(mutex_);
  const auto it = remaining_.find(batch.id);
  if (it == remaining_.end()) return;  // not tracked (offered without expect, e.g. in tests)
  if (--it->second == 0) {
    remaining_.erase(it);
    ++completed_total_;
    advance_locked();
  }
}

void DeliveryTracker::advance_locked() {
  // Everything below the oldest batch still in flight is complete.
  const std::uint64_t through =
      remaining_.empty() ? highest_expected_ : remaining_.begin()->first - 1;
  if (through != completed_through_) {
    completed_through_ = through;
    changed_.notify_all();
  }
}

std::uint64_t DeliveryTracker::completed_through() const {
  std::lock_guard lock(mutex_);
  return completed_through_;
}

std::uint64_t DeliveryTracker::in_flight() const {
  std::lock_guard lock(mutex_);
  return remaining_.size();
}

std::uint64_t DeliveryTracker::completed_total() const {
  std::lock_guard lock(mutex_);
  return completed_total_;
}

bool DeliveryTracker::wait_idle(std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_until(lock, deadline, [this] { return remaining_.empty(); });
}

}  // namespace shmstats::collector
