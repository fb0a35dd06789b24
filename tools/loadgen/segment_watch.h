// The producers' segments of a scenario, mapped read-only and read directly: pushes, folds and
// drops by reason (kept after a segment is reclaimed), and how full the rings are now.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "shm/segment.h"
#include "tools/loadgen/report.h"

namespace shmstats::tools::loadgen {

struct SegmentTotals {
  std::uint64_t pushed = 0;
  std::uint64_t folded = 0;
  DropCounts dropped{};
};

struct SegmentView {
  std::size_t attached = 0;
  double fill_max = 0;        // largest waiting/capacity over the rings, now
  double high_water_max = 0;  // largest high-water mark/capacity over the rings
  SegmentTotals totals;       // summed over every segment ever seen
};

class SegmentWatch {
 public:
  explicit SegmentWatch(std::string prefix) : prefix_(std::move(prefix)) {}

  SegmentView look();

 private:
  struct Entry {
    std::optional<shm::Segment> segment;
    SegmentTotals last;
  };
  std::string prefix_;
  std::map<std::string, Entry> entries_;
};

}  // namespace shmstats::tools::loadgen
