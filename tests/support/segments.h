// Small readings of live segments that several end-to-end tests take.
#pragma once

#include <cstdint>

#include "shm/segment.h"

namespace shmstats::testing {

// Events the collector took from `segment` so far: the sum of its rings' heads.
inline std::uint64_t drained_from(const shm::Segment& segment) {
  std::uint64_t heads = 0;
  for (std::uint32_t r = 0; r < segment.geometry().ring_count; ++r) {
    heads += segment.ring_stats(r).head;
  }
  return heads;
}

}  // namespace shmstats::testing
