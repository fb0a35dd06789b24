// The shared-memory segment layout: the one source of truth for the producer, the collector and
// shm-dump. Every struct here lives in a mapping shared between processes, so it holds only
// fixed-width integers and lock-free atomics, and its size and field offsets are an ABI pinned by
// static_asserts below. Any change to a struct here bumps kLayoutVersion.
//
// Segment (default options: 16 rings x 8192 events, 4096 series, 256 KiB of names):
//
//   offset 0        SegmentHeader            512 B   identity, geometry, state, segment counters
//   series_offset   SeriesEntry[capacity]    128 B each   (published one by one)
//   strings_offset  string pool              strings_size B, rounded up to 64   (names, tags)
//   rings_offset    RingHeader[ring_count]   ring_stride (384) B each, side by side
//   slots_offset    Event[ring_capacity] per ring, ring i's at slots_offset + i * ring_capacity
//                   * 32; slots_offset is rings_offset + ring_count * 384 rounded up to 4096,
//                   so each ring's slots start on a page
//
//   default total: 512 + 4096*128 + 262144 = 786,944 (rings_offset), + 16*384 = 793,088,
//   rounded up to 794,624 (slots_offset), + 16*8192*32 = 4,988,928 bytes (< 5 MB)
//
// The ring headers sit together so that a reader that polls every ring's indices touches 2 pages
// per segment, not one page per ring (layout 2 put each header in front of its slots).
//
// SegmentHeader (cache lines 0-7):
//   0   magic            written LAST at creation, release: the "ready" signal (pairs with the
//                        acquire load in validate_segment)
//   8   layout_version .. 208: identity and geometry, immutable after creation
//   256 state, series_count, strings_used   producer-written, readers acquire
//   272 folded_no_ring   values folded by threads without a ring (any thread, fetch_add)
//   320 dropped[8]       events refused before any ring, by DropReason: threads without a ring,
//                        invalid series or values (any thread, fetch_add); exactly one line
//   384 series_rejected[16]   rejected registrations by shm::Errc (cold path, fetch_add)
//
// RingHeader (one per ring):
//   line 0-1  producer line: tail (release), cached_head, pushed, rng   -- written by the producer
//   line 2-3  consumer line: head                                       -- consumer, and the
//                                                                          producer under
//                                                                          drop-oldest (CAS)
//   line 4    owner: state, owner_tid, high_water, claims; folded       -- folded: producer, only
//                                                                          when folding
//   line 5    dropped[8], by DropReason                                 -- producer, only when
//                                                                          dropping
//
// Invariants (checked by readers, since a segment is untrusted):
//   - head and tail are 64-bit and only grow; 0 <= tail - head <= ring_capacity.
//   - ring_capacity is a power of two; slot of position p is p & (ring_capacity - 1).
//   - a series id is never reused while the segment lives; ids are 0 .. series_count-1, dense.
//   - a series entry is read only after its `state` is kSeriesPublished (acquire).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace shmstats::shm {

inline constexpr std::size_t kCacheLine = 64;
// "SHMSTATS" read as a little-endian 64-bit word.
inline constexpr std::uint64_t kMagic = 0x5354415453'4D4853ULL;
// 2: DropReason::kInvalidValue; RingHeader::folded and SegmentHeader::folded_no_ring moved to
//    line 4 so that each dropped[] array fills one line.
// 3: the ring headers side by side after the string pool, the slots after them from a page
//    boundary (SegmentHeader::slots_offset); ring_stride is now the distance between headers.
inline constexpr std::uint32_t kLayoutVersion = 3;
// Slots start on a boundary of this many bytes (the smallest page size on Linux).
inline constexpr std::uint64_t kSlotsAlignment = 4096;

inline constexpr std::size_t kMaxServiceNameBytes = 63;
inline constexpr std::size_t kMaxNameBytes = 200;
inline constexpr std::size_t kMaxTags = 16;
inline constexpr std::size_t kMaxTagPartBytes = 64;
// The canonical text of one series (name, then per tag: length byte, key, length byte, value) is
// at most this long. The per-part limits alone would allow 2,280 bytes, but a series definition
// must fit in one datagram of at most 1472 bytes together with its event, so that every datagram
// decodes on its own; 1024 leaves room for the framing, the service name and an event.
inline constexpr std::size_t kMaxSeriesTextBytes = 1024;

// Limits a reader enforces on an untrusted header before it trusts any geometry.
inline constexpr std::uint32_t kMaxRings = 1024;
inline constexpr std::uint32_t kMaxRingCapacity = 1U << 24;
inline constexpr std::uint32_t kMaxSeriesCapacity = 1U << 20;
inline constexpr std::uint32_t kMaxStringsBytes = 1U << 28;

enum class Kind : std::uint8_t {
  kCounter = 1,
  kGauge = 2,
  kGaugeDelta = 3,
  kHistogram = 4,
  kTiming = 5,
  kSet = 6,
};
inline constexpr std::uint8_t kMaxKind = 6;

// What a producer does when its ring cannot take an event. Stored per series and per segment.
enum class Overflow : std::uint8_t {
  kDefault = 0,  // fold for counters, timings, histograms; drop-newest for gauges and sets
  kFold = 1,
  kDropNewest = 2,
  kDropOldest = 3,
  kPriority = 4,
  kSampled = 5,
};
inline constexpr std::uint8_t kMaxOverflow = 5;

enum class SegmentState : std::uint32_t { kActive = 1, kClosing = 2, kClosed = 3 };
enum class RingState : std::uint32_t { kFree = 0, kOwned = 1, kRetired = 2 };
enum class ClockSource : std::uint32_t { kTsc = 1, kMonotonicNs = 2 };

// Why an event did not enter a ring and was not folded. Counted per ring (ring_full ..
// sampled_out) or per segment (no_ring, invalid_series, invalid_value: refused before any ring);
// a disabled client, which has no segment, counts `disabled` in the process.
enum class DropReason : std::uint32_t {
  kRingFull = 0,           // drop-newest (or any strategy's last resort) found the ring full
  kOldestOverwritten = 1,  // drop-oldest discarded the oldest undrained event
  kPriorityShed = 2,       // a normal event hit the reserve kept for high-priority events
  kSampledOut = 3,         // sampling under pressure kept another event in its place
  kNoRing = 4,             // thread without a ring, kind that cannot be folded (sets)
  kInvalidSeries = 5,      // dynamic path: name or tags rejected, or the table is full
  kDisabled = 6,           // client without a segment (creation failed), or a closed client
  kInvalidValue = 7,       // the value was NaN or an infinity, which no downstream format carries
  kCount = 8,
};
inline constexpr std::size_t kDropReasonCount = static_cast<std::size_t>(DropReason::kCount);

const char* to_string(DropReason reason) noexcept;
const char* to_string(Kind kind) noexcept;
const char* to_string(Overflow overflow) noexcept;

inline constexpr std::uint8_t kEventFlagHighPriority = 0x01;

// One pushed value. 32 bytes, so two share a cache line and a ring slot is one aligned copy.
struct Event {
  std::uint32_t series_id;
  std::uint8_t kind;   // Kind
  std::uint8_t flags;  // kEventFlag*
  std::uint16_t reserved0;
  float sample_rate;  // (0, 1]; 1 unless sampling kept this event for others
  std::uint32_t reserved1;
  double value;
  std::uint64_t ts;  // ticks of header.clock_source (TSC on x86-64); 0: not stamped by the
                     // producer (Timestamps::kCollector), the collector uses its drain time
};
static_assert(sizeof(Event) == 32);
static_assert(std::is_trivially_copyable_v<Event>);
static_assert(offsetof(Event, value) == 16);
static_assert(offsetof(Event, ts) == 24);

inline constexpr std::uint32_t kSeriesEmpty = 0;
inline constexpr std::uint32_t kSeriesPublished = 1;

// A registered series. Line 0 is immutable once `state` is published; line 1 holds the overflow
// accumulators that a producer folds values into when a ring is full (any producer thread, CAS) and
// that the collector takes with exchange, so each folded value is reported once.
struct alignas(kCacheLine) SeriesEntry {
  std::atomic<std::uint32_t>
      state;  // release by the producer after every other field; readers acquire
  std::uint32_t id;
  std::uint64_t hash;
  std::uint32_t text_offset;  // into the string pool
  std::uint16_t text_len;     // name, then per tag: u8 key_len, key, u8 value_len, value
  std::uint8_t name_len;
  std::uint8_t kind;  // Kind
  std::uint8_t tag_count;
  std::uint8_t overflow;  // Overflow chosen at registration
  std::uint8_t reserved[38];
  // line 1: fold accumulators; doubles stored as their bit patterns.
  std::atomic<std::uint64_t> fold_count;
  std::atomic<std::uint64_t> fold_sum_bits;
  std::atomic<std::uint64_t> fold_min_bits;
  std::atomic<std::uint64_t> fold_max_bits;
  std::atomic<std::uint64_t> fold_last_bits;
  std::uint8_t reserved_fold[24];
};
static_assert(sizeof(SeriesEntry) == 2 * kCacheLine);
static_assert(offsetof(SeriesEntry, text_offset) == 16);
static_assert(offsetof(SeriesEntry, fold_count) == kCacheLine);

struct alignas(kCacheLine) SegmentHeader {
  std::atomic<std::uint64_t> magic;  // release-stored last at creation
  std::uint32_t layout_version;
  std::uint32_t header_size;
  std::uint64_t total_size;
  std::uint64_t series_offset;
  std::uint32_t series_capacity;
  std::uint32_t series_entry_size;
  std::uint64_t strings_offset;
  std::uint32_t strings_size;
  std::uint32_t ring_count;
  std::uint64_t rings_offset;
  std::uint32_t ring_capacity;
  std::uint32_t ring_header_size;
  std::uint64_t ring_stride;
  std::int32_t owner_pid;
  std::uint32_t owner_uid;
  std::uint64_t owner_start_time;      // /proc/<pid>/stat field 22, clock ticks since boot
  std::uint64_t created_realtime_ns;   // CLOCK_REALTIME at creation
  std::uint64_t created_monotonic_ns;  // CLOCK_MONOTONIC at creation, paired with created_ticks
  std::uint64_t created_ticks;         // clock ticks (see clock_source) at creation
  std::uint32_t clock_source;          // ClockSource
  std::uint32_t service_name_len;
  char service_name[kMaxServiceNameBytes + 1];
  std::uint8_t default_overflow;  // Overflow
  std::uint8_t reserved0[3];
  std::uint32_t sample_keep_one_in;  // sampled strategy keeps 1 in N low-priority events
  std::uint64_t slots_offset;        // ring 0's slots; ring i's follow at i * ring_capacity * 32
  std::uint8_t reserved3[48];
  // line 4: mutable state.
  alignas(kCacheLine) std::atomic<std::uint32_t> state;  // SegmentState; release by the owner
  std::atomic<std::uint32_t> series_count;  // release after the entry it counts is published
  std::atomic<std::uint32_t> strings_used;  // producer bookkeeping; readers bound by strings_size
  std::uint32_t reserved1;
  std::atomic<std::uint64_t> folded_no_ring;  // threads without a ring (any thread: fetch_add)
  std::uint8_t reserved2[40];
  // line 5: events refused before reaching a ring, by DropReason (any thread: fetch_add).
  alignas(kCacheLine) std::atomic<std::uint64_t> dropped[kDropReasonCount];
  // lines 6-7: rejected registrations.
  std::atomic<std::uint64_t> series_rejected[16];  // by shm::Errc of the rejection
};
static_assert(sizeof(SegmentHeader) == 8 * kCacheLine);
static_assert(offsetof(SegmentHeader, layout_version) == 8);
static_assert(offsetof(SegmentHeader, owner_pid) == 80);
static_assert(offsetof(SegmentHeader, service_name) == 128);
static_assert(offsetof(SegmentHeader, sample_keep_one_in) == 196);
static_assert(offsetof(SegmentHeader, slots_offset) == 200);
static_assert(offsetof(SegmentHeader, state) == 4 * kCacheLine);
static_assert(offsetof(SegmentHeader, folded_no_ring) == 4 * kCacheLine + 16);
static_assert(offsetof(SegmentHeader, dropped) == 5 * kCacheLine);
static_assert(offsetof(SegmentHeader, series_rejected) == 6 * kCacheLine);
// Each dropped[] array is one cache line: a new reason needs a new line (and a layout version).
static_assert(sizeof(SegmentHeader::dropped) == kCacheLine);

struct alignas(kCacheLine) RingHeader {
  // Producer lines (0-1). `tail` is read by the consumer; the rest only by readers of statistics.
  std::atomic<std::uint64_t> tail;    // next position to write; release after the slot is written
  std::uint64_t cached_head;          // producer's last view of head; stale is safe (too low)
  std::atomic<std::uint64_t> pushed;  // every push attempt on this ring (relaxed, single writer)
  std::uint64_t rng_state;            // xorshift state for the sampled strategy
  std::uint8_t pad0[2 * kCacheLine - 32];
  // Consumer lines (2-3).
  std::atomic<std::uint64_t> head;  // next position to read; see ring.h for who may move it
  std::uint8_t pad1[2 * kCacheLine - 8];
  // Line 4: ownership.
  std::atomic<std::uint32_t> state;  // RingState
  std::uint32_t reserved0;
  std::atomic<std::uint64_t> owner_tid;
  std::atomic<std::uint64_t> high_water;  // largest fill seen by producer or consumer (fetch-max)
  std::atomic<std::uint64_t> claims;      // how many times a thread claimed this ring
  std::atomic<std::uint64_t> folded;      // values folded (producer, only on the overflow path)
  std::uint8_t pad2[kCacheLine - 40];
  // Line 5: drop accounting (producer, only on the overflow path).
  std::atomic<std::uint64_t> dropped[kDropReasonCount];
};
static_assert(sizeof(RingHeader) == 6 * kCacheLine);
static_assert(offsetof(RingHeader, head) == 2 * kCacheLine);
static_assert(offsetof(RingHeader, state) == 4 * kCacheLine);
static_assert(offsetof(RingHeader, folded) == 4 * kCacheLine + 32);
static_assert(offsetof(RingHeader, dropped) == 5 * kCacheLine);
static_assert(sizeof(RingHeader::dropped) == kCacheLine);

// Only lock-free atomics work across processes.
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

// Geometry derived from options; both the creator and the validator compute it the same way.
struct Geometry {
  std::uint32_t ring_count;
  std::uint32_t ring_capacity;
  std::uint32_t series_capacity;
  std::uint32_t strings_size;

  std::uint64_t series_offset() const noexcept { return sizeof(SegmentHeader); }
  std::uint64_t strings_offset() const noexcept {
    return series_offset() + std::uint64_t{series_capacity} * sizeof(SeriesEntry);
  }
  std::uint64_t rings_offset() const noexcept {
    // strings_size is rounded so rings start on a cache line.
    return strings_offset() + ((std::uint64_t{strings_size} + kCacheLine - 1) & ~(kCacheLine - 1));
  }
  // Distance between consecutive ring headers.
  std::uint64_t ring_stride() const noexcept { return sizeof(RingHeader); }
  std::uint64_t slots_offset() const noexcept {
    const std::uint64_t end = rings_offset() + std::uint64_t{ring_count} * ring_stride();
    return (end + kSlotsAlignment - 1) & ~(kSlotsAlignment - 1);
  }
  std::uint64_t slots_bytes() const noexcept {  // one ring's
    return std::uint64_t{ring_capacity} * sizeof(Event);
  }
  std::uint64_t total_size() const noexcept {
    return slots_offset() + std::uint64_t{ring_count} * slots_bytes();
  }
};

}  // namespace shmstats::shm
