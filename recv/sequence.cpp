#include "recv/sequence.h"

namespace shmstats::recv {

const char* to_string(SequenceVerdict verdict) noexcept {
  switch (verdict) {
    case SequenceVerdict::kFirst:
      return "first";
    case SequenceVerdict::kInOrder:
      return "in_order";
    case SequenceVerdict::kGap:
      return "gap";
    case SequenceVerdict::kReordered:
      return "reordered";
    case SequenceVerdict::kLate:
      return "late";
    case SequenceVerdict::kRestart:
      return "restart";
    case SequenceVerdict::kDuplicate:
      return "duplicate";
    case SequenceVerdict::kStaleEpoch:
      return "stale_epoch";
  }
  return "unknown";
}

SequenceCounters& SequenceCounters::operator+=(const SequenceCounters& other) noexcept {
  accepted += other.accepted;
  lost += other.lost;
  duplicates += other.duplicates;
  reordered += other.reordered;
  late += other.late;
  restarts += other.restarts;
  stale_epoch += other.stale_epoch;
  return *this;
}

void SequenceTracker::restart(std::uint64_t epoch, std::uint64_t sequence,
                              std::uint64_t base) noexcept {
  started_ = true;
  epoch_ = epoch;
  highest_ = sequence;
  base_ = base;
  window_.reset();
  window_.set(sequence % kWindow);
}

void SequenceTracker::advance(std::uint64_t sequence) noexcept {
  // Clear the bits of the sequences the window now slides over (they have not arrived), unless
  // the jump empties the whole window.
  if (sequence - highest_ >= kWindow) {
    window_.reset();
  } else {
    for (std::uint64_t s = highest_ + 1; s < sequence; ++s) window_.reset(s % kWindow);
  }
  window_.set(sequence % kWindow);
  highest_ = sequence;
}

void SequenceTracker::forget_lost() noexcept {
  if (counters_.lost > 0) --counters_.lost;
}

SequenceVerdict SequenceTracker::observe(std::uint64_t epoch, std::uint64_t sequence) noexcept {
  if (!started_) {
    restart(epoch, sequence, sequence);
    ++counters_.accepted;
    return SequenceVerdict::kFirst;
  }
  if (epoch < epoch_) {
    ++counters_.stale_epoch;
    return SequenceVerdict::kStaleEpoch;
  }
  if (epoch > epoch_) {
    // The new epoch numbers from 0: what came before `sequence` in it went missing.
    restart(epoch, sequence, 0);
    ++counters_.restarts;
    counters_.lost += sequence;
    ++counters_.accepted;
    return SequenceVerdict::kRestart;
  }
  if (sequence > highest_) {
    const std::uint64_t missing = sequence - highest_ - 1;
    advance(sequence);
    counters_.lost += missing;
    ++counters_.accepted;
    return missing == 0 ? SequenceVerdict::kInOrder : SequenceVerdict::kGap;
  }
  if (highest_ - sequence < kWindow) {
    if (seen(sequence)) {
      ++counters_.duplicates;
      return SequenceVerdict::kDuplicate;
    }
    window_.set(sequence % kWindow);
    ++counters_.reordered;
    // Before base_ it was never counted lost (we had not started listening, as far as we know).
    if (sequence >= base_) forget_lost();
    ++counters_.accepted;
    return SequenceVerdict::kReordered;
  }
  ++counters_.late;
  if (sequence >= base_) forget_lost();
  ++counters_.accepted;
  return SequenceVerdict::kLate;
}

}  // namespace shmstats::recv
