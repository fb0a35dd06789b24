// Per-sender sequence tracking for shmstats-recv: decides, from a datagram's (epoch, sequence),
// whether to write it and what it says about loss, duplication, reordering and restarts.
//
// Each collector start picks a new, higher epoch, and numbers its datagrams 0, 1, 2, ... within it
// (proto/datagram.h). A tracker keeps, for one sender: the current epoch, the highest sequence
// seen in it, and a window of kWindow bits saying which of the latest sequences have arrived.
//
//   same epoch, s == highest + 1     in order
//   same epoch, s >  highest + 1     gap: the (s - highest - 1) missing ones count as lost, for now
//   same epoch, s <= highest, inside the window:
//                 bit set            duplicate: drop the datagram (its events are written already)
//                 bit clear          reordered: it was counted lost, so lost -= 1
//   same epoch, s older than window  late: written (it cannot be checked for duplication) and
//                                    lost -= 1
//   higher epoch                     sender restarted: state reset; not loss. The datagrams of the
//                                    new epoch before s (it numbers from 0) count as lost.
//   lower epoch                      stale: a datagram from before the restart; dropped
//   first datagram of a sender       accepted whatever its sequence: a receiver may start long
//                                    after the collector, so earlier sequences are not loss.
//
// `lost` is therefore provisional: it can go down when a datagram arrives late. It never goes
// below zero (a late datagram that predates the first one this tracker saw was never counted).
//
// Concurrency: none. A tracker belongs to one thread (the receiver guards its table with a mutex).
#pragma once

#include <bitset>
#include <cstdint>

namespace shmstats::recv {

enum class SequenceVerdict : std::uint8_t {
  kFirst,       // first datagram of a sender: accepted
  kInOrder,     // highest + 1: accepted
  kGap,         // beyond highest + 1: accepted, the missing ones counted lost
  kReordered,   // inside the window and not seen before: accepted
  kLate,        // older than the window: accepted
  kRestart,     // a higher epoch: accepted, state reset
  kDuplicate,   // inside the window and seen before: dropped
  kStaleEpoch,  // a lower epoch: dropped
};

// True if the datagram is to be written (every verdict but kDuplicate and kStaleEpoch).
constexpr bool accepted(SequenceVerdict verdict) noexcept {
  return verdict != SequenceVerdict::kDuplicate && verdict != SequenceVerdict::kStaleEpoch;
}

const char* to_string(SequenceVerdict verdict) noexcept;

// Cumulative over every epoch of one sender (or, summed, of all senders).
struct SequenceCounters {
  std::uint64_t accepted = 0;  // datagrams accepted (written)
  std::uint64_t lost = 0;      // provisional, see above: may decrease
  std::uint64_t duplicates = 0;
  std::uint64_t reordered = 0;
  std::uint64_t late = 0;
  std::uint64_t restarts = 0;
  std::uint64_t stale_epoch = 0;

  SequenceCounters& operator+=(const SequenceCounters& other) noexcept;
  bool operator==(const SequenceCounters&) const = default;
};

class SequenceTracker {
 public:
  // How many of the latest sequences are remembered to tell a duplicate from a reordered datagram.
  static constexpr std::uint64_t kWindow = 4096;

  SequenceVerdict observe(std::uint64_t epoch, std::uint64_t sequence) noexcept;

  const SequenceCounters& counters() const noexcept { return counters_; }
  bool started() const noexcept { return started_; }
  std::uint64_t epoch() const noexcept { return epoch_; }
  std::uint64_t highest() const noexcept { return highest_; }

 private:
  void restart(std::uint64_t epoch, std::uint64_t sequence, std::uint64_t base) noexcept;
  void advance(std::uint64_t sequence) noexcept;
  bool seen(std::uint64_t sequence) const noexcept { return window_.test(sequence % kWindow); }
  void forget_lost() noexcept;

  bool started_ = false;
  std::uint64_t epoch_ = 0;
  std::uint64_t highest_ = 0;
  // The lowest sequence of this epoch that would have been counted lost had it gone missing:
  // the first one seen for a new sender, 0 after a restart.
  std::uint64_t base_ = 0;
  // Bit (s % kWindow) is set iff s arrived, for s in (highest_ - kWindow, highest_].
  std::bitset<kWindow> window_;
  SequenceCounters counters_;
};

}  // namespace shmstats::recv
