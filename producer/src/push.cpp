// The push path. Everything reached from push() is the hot path: no allocation, lock, system call
// or exception. Binding a thread to a ring is the cold path of a thread's first push (one gettid
// system call).
//
// Cost: push() runs about 60 instructions for an event that fits (BENCHMARKS.md). That case is a
// straight line: the value is finite, the ring has room by the cached head -> read the clock,
// write the slot's four words, publish tail. Anything else (a NaN or infinity, a ring that looks
// full, a strategy that must decide, a thread without a ring, a disabled client) leaves the line
// by a tail call to an out-of-line function, so the fast path needs no stack frame and no
// callee-saved register.
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "producer/src/state.h"
#include "shm/clock.h"

namespace shmstats::detail {
namespace {

using shm::DropReason;
using shm::Overflow;

// initial-exec: the library is position-independent code, for which GCC reaches a thread_local
// through a __tls_get_addr call. The linker turns that call into a %fs access when it links an
// executable, but too late: push() was compiled around a call, with its arguments kept in
// callee-saved registers and a stack frame. Initial-exec compiles to a %fs access. Its cost: a
// shared object containing this library and loaded with dlopen takes these 224 bytes from
// glibc's static TLS reserve (dlopen fails if the reserve is used up).
[[gnu::tls_model("initial-exec")]] thread_local std::array<ThreadRing, kThreadBindings> t_rings{};
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

// The event's timestamp: the TSC, or 0 ("stamp when drained") for Timestamps::kCollector.
std::uint64_t event_ticks(const ClientState& st) noexcept {
  return st.stamp_events ? shm::now_ticks() : 0;
}

std::uint64_t bits_of(double v) noexcept { return std::bit_cast<std::uint64_t>(v); }
double double_of(std::uint64_t b) noexcept { return std::bit_cast<double>(b); }

// False for NaN and the infinities. islessgreater is a quiet compare that is false when its
// operands are equal or unordered, so each test is one ucomisd with a memory operand and a je:
// 4 instructions, no scratch register and no FP exception for a quiet NaN or an infinity.
// (GCC's std::isfinite takes 5 here, a test on the value's bits costs a callee-saved register,
// and v - v would raise FE_INVALID, which traps in a service that enabled FP exceptions.)
constexpr bool is_finite(double v) noexcept {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  return std::islessgreater(v, kInf) && std::islessgreater(v, -kInf);
}

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

std::uint8_t resolve_overflow(const ClientState& st, const HandleData& h,
                              std::uint8_t kind) noexcept {
  return h.overflow != 0 ? h.overflow : st.overflow_for_kind[kind];
}

// The ring cannot take the event without a decision, by the cached head: it looks full, or a
// normal event reached the part of the ring its strategy treats differently. Decides with the
// consumer's head, as the strategy says. `pushed` was counted by the caller.
[[gnu::noinline]] bool push_decide(ClientState& st, ThreadRing& tr, const HandleData& h,
                                   std::uint8_t kind, double value,
                                   std::uint8_t overflow) noexcept {
  shm::RingHeader& ring = *tr.writer.header();
  const bool high = (h.flags & shm::kEventFlagHighPriority) != 0;
  float sample_rate = 1.0F;
  // Called only if the event goes in, so dropping or folding does not read the clock.
  const auto make_words = [&]() noexcept {
    return shm::detail::make_slot_words(h.series_id, kind, h.flags, sample_rate, value,
                                        event_ticks(st));
  };
  DropReason reason = DropReason::kRingFull;
  switch (static_cast<Overflow>(overflow)) {
    case Overflow::kDropOldest:
      if (tr.writer.push_overwrite(
              shm::Event{h.series_id, kind, h.flags, 0, 1.0F, 0, value, event_ticks(st)})) {
        bump(ring.dropped[static_cast<int>(DropReason::kOldestOverwritten)]);
      }
      return true;
    case Overflow::kPriority:
      if (tr.writer.try_push_with(high ? st.ring_capacity : st.priority_limit, make_words)) {
        return true;
      }
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
        sample_rate = st.sample_rate;
      }
      if (tr.writer.try_push_with(st.ring_capacity, make_words)) return true;
      break;
    case Overflow::kFold:
      if (tr.writer.try_push_with(st.ring_capacity, make_words)) return true;
      if (can_fold(kind)) {
        fold(st.segment->series_entry(h.series_id), kind, value);
        bump(ring.folded);
        return true;
      }
      break;
    case Overflow::kDefault:
    case Overflow::kDropNewest:
    default:
      if (tr.writer.try_push_with(st.ring_capacity, make_words)) return true;
      break;
  }
  bump(ring.dropped[static_cast<int>(reason)]);
  return false;
}

// A push by a thread bound to a ring. The fast path takes events that fit below `room` by the
// cached head; `room` never exceeds the limit the strategy applies in push_decide, so an event
// the fast path takes is one push_decide would have pushed the same way, and every other event
// gets push_decide's full decision.
inline bool push_to_ring(ClientState& st, ThreadRing& tr, const HandleData& h, std::uint8_t kind,
                         double value) noexcept {
  bump(tr.writer.header()->pushed);
  const std::uint8_t overflow = resolve_overflow(st, h, kind);
  std::uint64_t room = tr.writer.capacity();
  if ((overflow == static_cast<std::uint8_t>(Overflow::kPriority) ||
       overflow == static_cast<std::uint8_t>(Overflow::kSampled)) &&
      (h.flags & shm::kEventFlagHighPriority) == 0) [[unlikely]] {
    // Normal events stay below the priority reserve, or at most at the sampling threshold.
    room = overflow == static_cast<std::uint8_t>(Overflow::kPriority)
               ? st.priority_limit
               : std::min<std::uint64_t>(st.sample_threshold + 1, st.ring_capacity);
  }
  if (tr.writer.try_push_cached(room, [&]() noexcept {
        return shm::detail::make_slot_words(h.series_id, kind, h.flags, 1.0F, value,
                                            event_ticks(st));
      })) [[likely]] {
    return true;
  }
  return push_decide(st, tr, h, kind, value, overflow);
}

// A thread without a ring: fold (exact totals) or count the drop; retry a claim now and then.
[[gnu::noinline]] bool push_without_ring(ClientState& st, ThreadRing& tr, const HandleData& h,
                                         std::uint8_t kind, double value) noexcept {
  if (--tr.retry_countdown == 0) {
    tr.retry_countdown = kNoRingRetryPushes;
    if (try_claim(st, tr)) return push_to_ring(st, tr, h, kind, value);
  }
  if (can_fold(kind)) {
    fold(st.segment->series_entry(h.series_id), kind, value);
    st.header->folded_no_ring.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  count_drop(st, DropReason::kNoRing);
  return false;
}

// NaN or an infinity: refused before it reaches a ring or a fold accumulator (one poisoned sum
// would make every later total of the series NaN), and counted in the segment.
[[gnu::noinline, gnu::cold]] bool push_invalid_value(ClientState& st) noexcept {
  count_drop(st, DropReason::kInvalidValue);
  return false;
}

// A client without a segment. Counted in the process (relaxed fetch_add): no lock, no system call.
[[gnu::noinline, gnu::cold]] bool push_disabled(ClientState& st) noexcept {
  st.local_dropped[static_cast<std::size_t>(DropReason::kDisabled)].fetch_add(
      1, std::memory_order_relaxed);
  return false;
}

// Cold: the calling thread has no binding for this client (first push, another client, a forked
// child, a client re-created under the same address, or a disabled client, which never binds).
[[gnu::noinline, gnu::cold]] bool push_unbound(ClientState& st, const HandleData& h,
                                               std::uint8_t kind, double value) noexcept {
  // First, so that a disabled client's pushes make no system call (getpid below).
  if (st.disabled.load(std::memory_order_relaxed)) return push_disabled(st);
  if (st.owner_pid != ::getpid() && !recreate_after_fork(st)) return push_disabled(st);
  if (st.header == nullptr) return push_disabled(st);
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

}  // namespace

bool push(const HandleData& h, std::uint8_t kind, double value) noexcept {
  ClientState* st = h.state;
  if (st == nullptr) [[unlikely]] {
    return false;
  }
  ThreadRing& tr = t_rings[0];
  if (tr.uid != st->uid) [[unlikely]] {
    return push_unbound(*st, h, kind, value);  // comes back here once bound
  }
  if (!is_finite(value)) [[unlikely]] {
    return push_invalid_value(*st);
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
