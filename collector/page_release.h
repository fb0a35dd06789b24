// Gives back to the kernel the slot pages of a segment's rings that the collector's read
// position has left behind, so the collector's RSS does not keep every slot page an event ever
// passed through (see SlotPageRelease::release in page_release.cpp).
//
// Concurrency: a SlotPageRelease belongs to the drain thread, like the Source that holds it. It
// reads each ring's head relaxed: the head is written by the drain thread itself, or (drop-oldest)
// by the producer, and only its position within the ring is used, so a hostile or stale head
// releases the wrong pages of this ring at worst, never memory outside its slots.
#pragma once

#include <cstdint>
#include <vector>

#include "shm/segment.h"

namespace shmstats::collector {

class SlotPageRelease {
 public:
  // Starts each ring's release at the fault-around window its head is in at attach.
  explicit SlotPageRelease(const shm::Segment& segment);

  // Gives back the slot pages ring `ring` of `segment` (the one given at construction) has
  // drained since the last call, up to the start of the 64 KiB window its head is in. Returns the
  // bytes given back.
  std::uint64_t release(const shm::Segment& segment, std::uint32_t ring);

 private:
  // Per ring: the position up to which the slot pages behind the consumer were given back.
  std::vector<std::uint64_t> released_;
};

}  // namespace shmstats::collector
