// The single-producer/single-consumer event ring, as two views over a RingHeader and its slots.
//
// Concurrency
//   RingWriter: exactly one producer thread at a time (the thread that claimed the ring).
//   RingReader: exactly one consumer at a time (the collector's drain thread, or a test reader).
//   A successful try_push/push_overwrite makes the event visible to the next RingReader::poll.
//   A successful poll has consumed the events: the producer may reuse their slots afterwards.
//   stats readers (shm-dump) only load: their snapshot may be stale but never torn per counter.
//
// Who writes what
//   tail         producer only (release after writing the slot).
//   head         consumer (CAS, release); under drop-oldest the producer too (CAS, when full).
//   cached_head  producer only; a stale value is always <= head, so it only under-reports room.
//
// Why the consumer claims with CAS instead of a plain store: under drop-oldest the producer may
// discard the oldest event and overwrite its slot while the consumer is copying it. The consumer
// copies a batch, then CASes head from where it started. A failed CAS means the producer moved
// head: the copies below the new head may be torn and are thrown away, the rest are kept by
// retrying the CAS from the new head:
//   1. ring [A][B][C][D] full, head=0; consumer copies A..D
//   2. producer CAS head 0->1 (drops A), writes E into A's slot, tail=5
//   3. consumer CAS head 0->4 fails, sees head=1: A's copy may be torn -> dropped; B..D kept
//   4. consumer CAS head 1->4 succeeds: the producer had not passed position 1, so B..D were
//      intact when copied (it overwrites position p only after head > p).
// Slot words are accessed through relaxed atomic_ref so that this benign race is defined.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <span>

#include "shm/layout.h"

namespace shmstats::shm {

namespace detail {

inline void store_slot(Event* slot, const Event& ev) noexcept {
  std::uint64_t words[4];
  std::memcpy(words, &ev, sizeof(words));
  auto* dst = reinterpret_cast<std::uint64_t*>(slot);
  for (int i = 0; i < 4; ++i) {
    // relaxed: ordering comes from the release store of tail that follows.
    std::atomic_ref<std::uint64_t>(dst[i]).store(words[i], std::memory_order_relaxed);
  }
}

inline Event load_slot(Event* slot) noexcept {
  std::uint64_t words[4];
  auto* src = reinterpret_cast<std::uint64_t*>(slot);
  for (int i = 0; i < 4; ++i) {
    // relaxed: ordering comes from the acquire load of tail that precedes.
    words[i] = std::atomic_ref<std::uint64_t>(src[i]).load(std::memory_order_relaxed);
  }
  Event ev;
  std::memcpy(&ev, words, sizeof(ev));
  return ev;
}

// Raises `target` to at least `value`.
inline void fetch_max(std::atomic<std::uint64_t>& target, std::uint64_t value) noexcept {
  std::uint64_t cur = target.load(std::memory_order_relaxed);
  while (cur < value && !target.compare_exchange_weak(cur, value, std::memory_order_relaxed)) {
  }
}

}  // namespace detail

class RingWriter {
 public:
  RingWriter() = default;
  RingWriter(RingHeader* header, Event* slots, std::uint32_t capacity) noexcept
      : header_(header), slots_(slots), capacity_(capacity), mask_(capacity - 1) {}

  bool valid() const noexcept { return header_ != nullptr; }
  std::uint32_t capacity() const noexcept { return capacity_; }
  RingHeader* header() const noexcept { return header_; }

  // Appends `ev` if fewer than `max_fill` (<= capacity) events wait in the ring. Never blocks.
  [[nodiscard]] bool try_push(const Event& ev, std::uint64_t max_fill) noexcept {
    RingHeader& h = *header_;
    // relaxed: only this thread writes tail.
    const std::uint64_t tail = h.tail.load(std::memory_order_relaxed);
    if (tail - h.cached_head >= max_fill) {
      // acquire: pairs with the consumer's release CAS of head in RingReader::poll, so its
      // copies of the slots we are about to reuse are complete.
      h.cached_head = h.head.load(std::memory_order_acquire);
      const std::uint64_t fill = tail - h.cached_head;
      detail::fetch_max(h.high_water, fill);
      if (fill >= max_fill) return false;
    }
    detail::store_slot(&slots_[tail & mask_], ev);
    // release: makes the slot's bytes visible; pairs with the acquire of tail in RingReader::poll.
    h.tail.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Appends `ev`, first discarding the oldest waiting event if the ring is full (drop-oldest).
  // Returns true if an event was discarded (the caller counts it).
  bool push_overwrite(const Event& ev) noexcept {
    RingHeader& h = *header_;
    const std::uint64_t tail = h.tail.load(std::memory_order_relaxed);
    bool discarded = false;
    if (tail - h.cached_head >= capacity_) {
      // acquire: as in try_push.
      std::uint64_t head = h.head.load(std::memory_order_acquire);
      while (tail - head >= capacity_) {
        // acq_rel: we take position `head` away from the consumer; its failed CAS will tell it
        // the copy it may be making of that slot is void (see the sketch above).
        if (h.head.compare_exchange_weak(head, head + 1, std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
          ++head;
          discarded = true;
          break;
        }
      }
      h.cached_head = head;
      if (discarded) detail::fetch_max(h.high_water, capacity_);
    }
    detail::store_slot(&slots_[tail & mask_], ev);
    // release: as in try_push.
    h.tail.store(tail + 1, std::memory_order_release);
    return discarded;
  }

  // Number of waiting events; refreshes the cached head (one acquire load of the consumer line).
  std::uint64_t refresh_fill() noexcept {
    RingHeader& h = *header_;
    h.cached_head = h.head.load(std::memory_order_acquire);
    return h.tail.load(std::memory_order_relaxed) - h.cached_head;
  }

  // Upper bound on the waiting events, from the cached head (no shared read).
  std::uint64_t fill_upper_bound() const noexcept {
    return header_->tail.load(std::memory_order_relaxed) - header_->cached_head;
  }

 private:
  RingHeader* header_ = nullptr;
  Event* slots_ = nullptr;
  std::uint32_t capacity_ = 0;
  std::uint64_t mask_ = 0;
};

struct PollResult {
  std::size_t count = 0;  // events copied to the front of `out`, oldest first
  bool corrupt = false;   // the indices break 0 <= tail - head <= capacity: quarantine the ring
};

class RingReader {
 public:
  RingReader() = default;
  RingReader(RingHeader* header, Event* slots, std::uint32_t capacity) noexcept
      : header_(header), slots_(slots), capacity_(capacity), mask_(capacity - 1) {}

  // Copies up to out.size() events, oldest first, and consumes them. Consumer only.
  PollResult poll(std::span<Event> out) noexcept {
    RingHeader& h = *header_;
    constexpr int kMaxAttempts = 8;
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
      // Read tail before head: the producer never lets tail - head exceed capacity at the time
      // it publishes tail, and head only grows, so tail - head <= capacity holds for an honest
      // producer and a larger gap means the indices are corrupt.
      // acquire: pairs with the producer's release store of tail; slot bytes are visible.
      const std::uint64_t tail = h.tail.load(std::memory_order_acquire);
      // acquire: pairs with a drop-oldest CAS of head by the producer.
      std::uint64_t head = h.head.load(std::memory_order_acquire);
      // Indices compare by signed difference, so the arithmetic stays right across a wrap of
      // the 64-bit counters.
      const std::uint64_t waiting = tail - head;
      if (static_cast<std::int64_t>(waiting) < 0) continue;  // drop-oldest lapped us; look again
      if (waiting > capacity_) return PollResult{0, true};
      detail::fetch_max(h.high_water, waiting);
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(waiting, out.size()));
      if (n == 0) return PollResult{};
      for (std::size_t i = 0; i < n; ++i) out[i] = detail::load_slot(&slots_[(head + i) & mask_]);
      const std::uint64_t end = head + n;
      std::uint64_t expected = head;
      for (int cas = 0; cas < kMaxAttempts * 8; ++cas) {
        // release: our copies of the slots happen-before the producer reuses them; pairs with
        // the acquire loads of head in RingWriter.
        if (h.head.compare_exchange_strong(expected, end, std::memory_order_release,
                                           std::memory_order_acquire)) {
          return PollResult{n, false};
        }
        // The producer discarded [head, expected) under drop-oldest; those copies may be torn.
        const auto moved = static_cast<std::int64_t>(expected - head);
        if (moved < 0) return PollResult{0, true};          // head went backwards: corrupt
        if (static_cast<std::uint64_t>(moved) >= n) break;  // all of our batch was discarded
        const std::size_t lost = static_cast<std::size_t>(expected - head);
        std::memmove(out.data(), out.data() + lost, (n - lost) * sizeof(Event));
        n -= lost;
        head = expected;
      }
    }
    return PollResult{};
  }

  // Waiting events, as of now. Any thread; may be stale.
  std::uint64_t size_estimate() const noexcept {
    const std::uint64_t tail = header_->tail.load(std::memory_order_acquire);
    const std::uint64_t head = header_->head.load(std::memory_order_acquire);
    const std::uint64_t waiting = tail - head;
    return static_cast<std::int64_t>(waiting) < 0 ? 0 : waiting;
  }

 private:
  RingHeader* header_ = nullptr;
  Event* slots_ = nullptr;
  std::uint32_t capacity_ = 0;
  std::uint64_t mask_ = 0;
};

}  // namespace shmstats::shm
