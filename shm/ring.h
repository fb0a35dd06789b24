// The single-producer/single-consumer event ring, as two views over a RingHeader and its slots.
//
// Concurrency
//   RingWriter: exactly one producer thread at a time (the thread that claimed the ring).
//   RingReader: exactly one consumer at a time (the collector's drain thread, or a test reader).
//   A successful try_push/try_push_cached/push_overwrite makes the event visible to the next
//   RingReader::poll.
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
//
// Cost (BENCHMARKS.md): a push is composed in registers and written as four 64-bit stores, then
// tail. The slot words are built from the event's fields because GCC 12 neither unrolls a loop of
// atomic_ref stores nor keeps a bit_cast Event out of the stack. try_push_with/try_push_cached
// build the event only once there is room, so a push into a full ring never reads the clock.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "shm/layout.h"

namespace shmstats::shm {

namespace detail {

// An Event as the four 64-bit words of its slot, in slot order.
struct SlotWords {
  std::uint64_t word[4];
};
static_assert(sizeof(SlotWords) == sizeof(Event));
static_assert(offsetof(Event, kind) == 4 && offsetof(Event, flags) == 5);
static_assert(offsetof(Event, sample_rate) == 8 && offsetof(Event, reserved1) == 12);

// The words of `ev`, composed from its fields: GCC 12 would copy a std::bit_cast of an Event that
// lives in registers through the stack.
constexpr SlotWords to_slot_words(const Event& ev) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    return SlotWords{{std::uint64_t{ev.series_id} | std::uint64_t{ev.kind} << 32 |
                          std::uint64_t{ev.flags} << 40 | std::uint64_t{ev.reserved0} << 48,
                      std::uint64_t{std::bit_cast<std::uint32_t>(ev.sample_rate)} |
                          std::uint64_t{ev.reserved1} << 32,
                      std::bit_cast<std::uint64_t>(ev.value), ev.ts}};
  } else {
    return std::bit_cast<SlotWords>(ev);
  }
}

// The words of an event with zero reserved fields.
constexpr SlotWords make_slot_words(std::uint32_t series_id, std::uint8_t kind, std::uint8_t flags,
                                    float sample_rate, double value, std::uint64_t ts) noexcept {
  return to_slot_words(Event{series_id, kind, flags, 0, sample_rate, 0, value, ts});
}

inline void store_slot_words(Event* slot, const SlotWords& words) noexcept {
  auto* dst = reinterpret_cast<std::uint64_t*>(slot);
  // relaxed: ordering comes from the release store of tail that follows.
  std::atomic_ref<std::uint64_t>(dst[0]).store(words.word[0], std::memory_order_relaxed);
  std::atomic_ref<std::uint64_t>(dst[1]).store(words.word[1], std::memory_order_relaxed);
  std::atomic_ref<std::uint64_t>(dst[2]).store(words.word[2], std::memory_order_relaxed);
  std::atomic_ref<std::uint64_t>(dst[3]).store(words.word[3], std::memory_order_relaxed);
}

inline Event load_slot(Event* slot) noexcept {
  auto* src = reinterpret_cast<std::uint64_t*>(slot);
  // relaxed: ordering comes from the acquire load of tail that precedes.
  const SlotWords words{{std::atomic_ref<std::uint64_t>(src[0]).load(std::memory_order_relaxed),
                         std::atomic_ref<std::uint64_t>(src[1]).load(std::memory_order_relaxed),
                         std::atomic_ref<std::uint64_t>(src[2]).load(std::memory_order_relaxed),
                         std::atomic_ref<std::uint64_t>(src[3]).load(std::memory_order_relaxed)}};
  return std::bit_cast<Event>(words);
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
    return try_push_with(max_fill, [&ev]() noexcept { return detail::to_slot_words(ev); });
  }

  // try_push for an event given as `make_words()` (returning detail::SlotWords), which is called
  // only if the event goes in: a push into a full ring does not build it (or read the clock).
  template <class MakeWords>
  [[nodiscard]] bool try_push_with(std::uint64_t max_fill, MakeWords&& make_words) noexcept {
    RingHeader& h = *header_;
    // relaxed: only this thread writes tail.
    const std::uint64_t tail = h.tail.load(std::memory_order_relaxed);
    if (tail - h.cached_head >= max_fill && !refresh_has_room(tail, max_fill)) return false;
    publish(h, tail, make_words());
    return true;
  }

  // The producer's fast path: try_push_with, but judged by the cached head alone, so it reads
  // only producer-owned lines. False (nothing written, make_words not called) means the ring may
  // be full: the caller decides with try_push/try_push_with/push_overwrite, which read head.
  template <class MakeWords>
  [[nodiscard]] bool try_push_cached(std::uint64_t max_fill, MakeWords&& make_words) noexcept {
    RingHeader& h = *header_;
    // relaxed: only this thread writes tail.
    const std::uint64_t tail = h.tail.load(std::memory_order_relaxed);
    if (tail - h.cached_head >= max_fill) return false;
    publish(h, tail, make_words());
    return true;
  }

  // Appends `ev`, first discarding the oldest waiting event if the ring is full (drop-oldest).
  // Returns true if an event was discarded (the caller counts it).
  bool push_overwrite(const Event& ev) noexcept {
    RingHeader& h = *header_;
    const std::uint64_t tail = h.tail.load(std::memory_order_relaxed);
    bool discarded = false;
    if (tail - h.cached_head >= capacity_) {
      // acquire: as in refresh_has_room.
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
    publish(h, tail, detail::to_slot_words(ev));
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
  // The cached head says `max_fill` or more events wait: look at the consumer's head.
  bool refresh_has_room(std::uint64_t tail, std::uint64_t max_fill) noexcept {
    RingHeader& h = *header_;
    // acquire: pairs with the consumer's release CAS of head in RingReader::poll, so its copies
    // of the slots we are about to reuse are complete.
    h.cached_head = h.head.load(std::memory_order_acquire);
    const std::uint64_t fill = tail - h.cached_head;
    detail::fetch_max(h.high_water, fill);
    return fill < max_fill;
  }

  // `h` is *header_, passed in so that it is not reloaded after the slot's atomic stores.
  void publish(RingHeader& h, std::uint64_t tail, const detail::SlotWords& words) noexcept {
    detail::store_slot_words(&slots_[tail & mask_], words);
    // release: makes the slot's bytes visible; pairs with the acquire of tail in RingReader::poll.
    h.tail.store(tail + 1, std::memory_order_release);
  }

  RingHeader* header_ = nullptr;
  Event* slots_ = nullptr;
  std::uint32_t capacity_ = 0;
  std::uint64_t mask_ = 0;
};

struct PollResult {
  std::size_t count = 0;  // events copied to the front of `out`, oldest first
  bool corrupt = false;   // the indices break 0 <= tail - head <= capacity, or head is ahead
                          // of a tail read after it: quarantine the ring
  std::uint64_t first = 0;  // the 64-bit ring index of out[0] (when count > 0)
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
      if (static_cast<std::int64_t>(waiting) < 0) {
        // Head ahead of the tail we loaded: either drop-oldest moved head past it after our
        // load (the producer pushed on meanwhile), or the indices are corrupt. The producer
        // moves head only up to a tail it has already published (release), and we only up to a
        // tail we loaded, so for an honest ring a tail loaded after this head is >= head:
        //   1. ring of 4, full: head=4, tail=8; we load tail=8
        //   2. the producer pushes 6 more under drop-oldest: head=10, tail=14; we load head=10
        //   3. 10 > 8, but the tail we load now is 14 >= 10: the race of step 2 -> poll again
        //   4. a hostile head=100 with tail=10 stays ahead of every fresh tail -> corrupt
        // acquire: pairs with the producer's release store of tail, as above.
        const std::uint64_t tail_after = h.tail.load(std::memory_order_acquire);
        if (static_cast<std::int64_t>(tail_after - head) < 0) return PollResult{0, true, 0};
        continue;
      }
      if (waiting > capacity_) return PollResult{0, true, 0};
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
          return PollResult{n, false, head};
        }
        // The producer discarded [head, expected) under drop-oldest; those copies may be torn.
        const auto moved = static_cast<std::int64_t>(expected - head);
        if (moved < 0) return PollResult{0, true, 0};       // head went backwards: corrupt
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
