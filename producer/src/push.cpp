// The push path. Everything reached from push() before the [[unlikely]] branches is the hot path:
// no allocation, lock, system call or exception. Binding a thread to a ring is the cold path of a
// thread's first push (one gettid system call).
#include <sys/syscall.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <limits>

#include "producer/src/state.h"
#include "shm/clock.h"

namespace shmstats::detail {
namespace {

using shm::DropReason;
using shm::Overflow;

thread_local std::array<ThreadRing, kThreadBindings> t_rings{};
thread_local pid_t t_tid = 0;

// Retires the calling thread's rings when it exits. Constructed on the thread's first binding
// (cold path), so the hot path's thread_local access stays free of initialisation guards.
struct ThreadReaper {
  ThreadReaper() = default;
  ThreadReaper(const ThreadReaper&) = delete;
  ThreadReaper& operator=(const ThreadReaper&) = delete;
  ~ThreadReaper() {
    for (auto& tr : t_rings) {
      if (tr.uid != 0 && tr.writer.valid()) retire_if_live(tr.uid, tr.writer.header());
      tr = ThreadRing{};
    }
  }
};

void ensure_reaper() {
  thread_local ThreadReaper reaper;
  (void)reaper;
}

std::uint64_t bits_of(double v) noexcept { return std::bit_cast<std::uint64_t>(v); }
double double_of(std::uint64_t b) noexcept { return std::bit_cast<double>(b); }

template <class Op>
void update_double(std::atomic<std::uint64_t>& target, Op op) noexcept {
  std::uint64_t cur = target.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t next = bits_of(op(double_of(cur)));
    if (next == cur || target.compare_exchange_weak(cur, next, std::memory_order_relaxed)) {
      return;
    }
  }
}

bool can_fold(std::uint8_t kind) noexcept {
  return kind != static_cast<std::uint8_t>(shm::Kind::kSet);
}

// Folds a value into the series' accumulators (any thread). Relaxed: each accumulator is exact
// on its own; the collector takes them with exchange, so a value lands in exactly one report.
void fold(shm::SeriesEntry& e, std::uint8_t kind, double value) noexcept {
  e.fold_count.fetch_add(1, std::memory_order_relaxed);
  if (kind == static_cast<std::uint8_t>(shm::Kind::kGauge)) {
    e.fold_last_bits.store(bits_of(value), std::memory_order_relaxed);
    return;
  }
  update_double(e.fold_sum_bits, [value](double s) { return s + value; });
  update_double(e.fold_min_bits, [value](double m) { return value < m ? value : m; });
  update_double(e.fold_max_bits, [value](double m) { return value > m ? value : m; });
  e.fold_last_bits.store(bits_of(value), std::memory_order_relaxed);
}

// Single-writer counter increment: no locked instruction needed.
void bump(std::atomic<std::uint64_t>& counter) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

std::uint64_t xorshift(std::uint64_t& s) noexcept {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

// Tries to bind a ring to the calling thread for `st`. Free rings, and retired rings whose events
// were all drained, can be claimed.
bool try_claim(ClientState& st, ThreadRing& tr) noexcept {
  if (t_tid == 0) t_tid = static_cast<pid_t>(::syscall(SYS_gettid));
  for (std::uint32_t i = 0; i < st.ring_count; ++i) {
    shm::RingHeader& r = st.segment->ring_header(i);
    // acquire: pairs with the release store of kRetired by the exiting thread, so its tail is
    // visible to the drained check below.
    std::uint32_t state = r.state.load(std::memory_order_acquire);
    if (state == static_cast<std::uint32_t>(shm::RingState::kRetired)) {
      // A retired ring is reused only once the consumer has taken everything in it.
      // acquire: pairs with the consumer's release CAS of head.
      if (r.head.load(std::memory_order_acquire) != r.tail.load(std::memory_order_relaxed)) {
        continue;
      }
    } else if (state != static_cast<std::uint32_t>(shm::RingState::kFree)) {
      continue;
    }
    // acq_rel: one thread wins the ring; it then sees the previous owner's fields.
    if (r.state.compare_exchange_strong(state, static_cast<std::uint32_t>(shm::RingState::kOwned),
                                        std::memory_order_acq_rel)) {
      r.owner_tid.store(static_cast<std::uint64_t>(t_tid), std::memory_order_relaxed);
      r.claims.fetch_add(1, std::memory_order_relaxed);
      r.cached_head = r.head.load(std::memory_order_acquire);
      tr.writer = st.segment->ring_writer(i);
      tr.ring_index = i;
      return true;
    }
  }
  tr.writer = shm::RingWriter();
  return false;
}

constexpr std::uint32_t kNoRingRetryPushes = 4096;

bool push_to_ring(ClientState& st, ThreadRing& tr, const HandleData& h, std::uint8_t kind,
                  double value) noexcept;

// A thread without a ring: fold (exact totals) or count the drop; retry a claim now and then.
bool push_without_ring(ClientState& st, ThreadRing& tr, const HandleData& h, std::uint8_t kind,
                       double value) noexcept {
  if (--tr.retry_countdown == 0) {
    tr.retry_countdown = kNoRingRetryPushes;
    if (try_claim(st, tr)) return push_to_ring(st, tr, h, kind, value);
  }
  if (can_fold(kind)) {
    fold(st.segment->series_entry(h.series_id), kind, value);
    st.header->folded_no_ring.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  count_drop(st.header, DropReason::kNoRing);
  return false;
}

// Cold: the calling thread has no binding for this client (first push, another client, a forked
// child, or a client re-created under the same address).
bool push_unbound(ClientState& st, const HandleData& h, std::uint8_t kind, double value) noexcept {
  if (st.owner_pid != ::getpid() && !recreate_after_fork(st)) {
    return false;
  }
  if (st.header == nullptr) return false;
  // Another binding of this thread may be for this client: move it to the front.
  for (std::size_t i = 1; i < kThreadBindings; ++i) {
    if (t_rings[i].uid == st.uid) {
      std::swap(t_rings[0], t_rings[i]);
      return push(h, kind, value);
    }
  }
  ensure_reaper();
  // Make room at the front; the binding pushed out (if any) retires its ring.
  ThreadRing& last = t_rings[kThreadBindings - 1];
  if (last.uid != 0 && last.writer.valid()) retire_if_live(last.uid, last.writer.header());
  for (std::size_t i = kThreadBindings - 1; i > 0; --i) t_rings[i] = t_rings[i - 1];
  ThreadRing& tr = t_rings[0];
  tr = ThreadRing{};
  tr.uid = st.uid;
  tr.state = &st;
  tr.retry_countdown = kNoRingRetryPushes;
  try_claim(st, tr);
  return push(h, kind, value);
}

bool push_to_ring(ClientState& st, ThreadRing& tr, const HandleData& h, std::uint8_t kind,
                  double value) noexcept {
  shm::RingHeader& ring = *tr.writer.header();
  bump(ring.pushed);
  shm::Event ev{h.series_id, kind, h.flags, 0, 1.0F, 0, value, shm::now_ticks()};
  const auto overflow =
      static_cast<Overflow>(h.overflow != 0 ? h.overflow : st.overflow_for_kind[kind]);
  const bool high = (h.flags & shm::kEventFlagHighPriority) != 0;
  DropReason reason = DropReason::kRingFull;
  switch (overflow) {
    case Overflow::kDropOldest:
      if (tr.writer.push_overwrite(ev))
        bump(ring.dropped[static_cast<int>(DropReason::kOldestOverwritten)]);
      return true;
    case Overflow::kPriority:
      if (tr.writer.try_push(ev, high ? st.ring_capacity : st.priority_limit)) return true;
      reason = high ? DropReason::kRingFull : DropReason::kPriorityShed;
      break;
    case Overflow::kSampled:
      if (!high && tr.writer.fill_upper_bound() > st.sample_threshold &&
          tr.writer.refresh_fill() > st.sample_threshold) {
        // Keep each normal event with probability 1/N and carry the rate, so a downstream sum
        // of value / sample_rate stays unbiased.
        if (xorshift(ring.rng_state) % st.keep_one_in != 0) {
          reason = DropReason::kSampledOut;
          break;
        }
        ev.sample_rate = st.sample_rate;
      }
      if (tr.writer.try_push(ev, st.ring_capacity)) return true;
      break;
    case Overflow::kFold:
      if (tr.writer.try_push(ev, st.ring_capacity)) return true;
      if (can_fold(kind)) {
        fold(st.segment->series_entry(h.series_id), kind, value);
        bump(ring.folded);
        return true;
      }
      break;
    case Overflow::kDefault:
    case Overflow::kDropNewest:
    default:
      if (tr.writer.try_push(ev, st.ring_capacity)) return true;
      break;
  }
  bump(ring.dropped[static_cast<int>(reason)]);
  return false;
}

}  // namespace

void count_drop(shm::SegmentHeader* header, shm::DropReason reason) noexcept {
  if (header != nullptr) {
    header->dropped[static_cast<int>(reason)].fetch_add(1, std::memory_order_relaxed);
  }
}

bool push(const HandleData& h, std::uint8_t kind, double value) noexcept {
  ClientState* st = h.state;
  if (st == nullptr) [[unlikely]] {
    return false;
  }
  ThreadRing& tr = t_rings[0];
  if (tr.uid != st->uid) [[unlikely]] {
    return push_unbound(*st, h, kind, value);
  }
  if (!tr.writer.valid()) [[unlikely]] {
    return push_without_ring(*st, tr, h, kind, value);
  }
  return push_to_ring(*st, tr, h, kind, value);
}

void release_thread_bindings(const ClientState* st) noexcept {
  for (auto& tr : t_rings) {
    if (tr.state == st) tr = ThreadRing{};
  }
}

}  // namespace shmstats::detail
