#include "collector/page_release.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>

#include "shm/layout.h"

namespace shmstats::collector {

namespace {
// The kernel's fault-around window (fault_around_bytes, 64 KiB by default): a read fault maps
// the cached pages of the aligned window around the faulting page. See SlotPageRelease::release.
constexpr std::uintptr_t kFaultAroundBytes = 64 * 1024;

// The position where the 64 KiB fault-around window that holds ring position `head` starts (or
// where the ring's slots start, if that is later): the release stops there.
std::uint64_t window_start(const shm::Segment& segment, std::uint32_t ring,
                           std::uint64_t head) noexcept {
  const std::uint64_t capacity = segment.geometry().ring_capacity;
  const auto slots = reinterpret_cast<std::uintptr_t>(segment.ring_slots(ring));
  const std::uintptr_t head_at = slots + (head & (capacity - 1)) * sizeof(shm::Event);
  const std::uintptr_t window = std::max(head_at & ~(kFaultAroundBytes - 1), slots);
  return head - (head_at - window) / sizeof(shm::Event);
}
}  // namespace

SlotPageRelease::SlotPageRelease(const shm::Segment& segment) {
  released_.resize(segment.geometry().ring_count);
  for (std::uint32_t r = 0; r < released_.size(); ++r) {
    released_[r] =
        window_start(segment, r, segment.ring_header(r).head.load(std::memory_order_relaxed));
  }
}

// The slot pages the consumer has passed are unmapped from the collector (MADV_DONTNEED). The
// mapping is shared, so this drops only the collector's page-table entries: the data stays in
// the segment and the producer's mapping is untouched. Without it the collector's RSS grows by
// every slot page an event ever passed through, up to ring_capacity * 32 B per ring used
// (256 KiB per ring by default, 16 MiB for 64 single-threaded producers), and stays there.
// A read fault maps the cached pages of the aligned 64 KiB window around the faulting page in
// one go (fault-around), so a page released inside the window of the head would come back at
// the next fault there, which on a ring's first lap is each new page the producer fills. The
// release therefore stops where the head's window starts: a ring in use keeps that window
// mapped, and what was drained since the last housekeeping pass. (Slots are page-aligned, not
// window-aligned: a ring's first window may also cover the last pages of the ring before it,
// or the ring headers, and a fault there maps them too, up to one window per ring.) After a
// lap or more in one interval (a busy ring, drop-oldest, or a hostile head) every slot page is
// behind and all are released; the head's window faults back in. `head` is untrusted, but only
// its position within the ring is used, so every range stays inside this ring's slots.
std::uint64_t SlotPageRelease::release(const shm::Segment& segment, std::uint32_t ring) {
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t capacity = segment.geometry().ring_capacity;
  const std::uint64_t head = segment.ring_header(ring).head.load(std::memory_order_relaxed);
  std::uint64_t& from = released_[ring];
  const auto slots = reinterpret_cast<std::uintptr_t>(segment.ring_slots(ring));
  const std::uintptr_t first = (slots + page - 1) & ~(page - 1);
  const std::uintptr_t last = (slots + capacity * sizeof(shm::Event)) & ~(page - 1);
  const auto at = [&](std::uint64_t position) {
    return slots + (position & (capacity - 1)) * sizeof(shm::Event);
  };
  std::uint64_t released_bytes = 0;
  const auto release_range = [&](std::uintptr_t begin, std::uintptr_t end) {
    begin = std::max(begin & ~(page - 1), first);
    end = std::min(end & ~(page - 1), last);
    if (begin >= end) return;
    if (::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED) == 0) {
      released_bytes += end - begin;
    }
  };
  const std::uint64_t stop = window_start(segment, ring, head);
  // `from` is always a window start at or before the head, so 0 <= stop - from < capacity here;
  // 0: the head is still in the window the last release stopped at.
  const std::uint64_t passed = stop - from;
  if (head - from >= capacity) {
    release_range(first, last);
  } else if (passed == 0 || passed >= capacity) {
    return 0;
  } else if (at(from) < at(stop)) {
    release_range(at(from), at(stop));
  } else {  // wrapped: the end of the slots, then their start up to the stop
    release_range(at(from), last);
    release_range(first, at(stop));
  }
  from = stop;
  return released_bytes;
}

}  // namespace shmstats::collector
