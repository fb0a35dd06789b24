// The series loadgen pushes to and the values it pushes, both fixed by the configuration so that
// any count or sum can be checked exactly afterwards, and the per-series tallies of what was
// pushed, accepted and refused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shm/layout.h"
#include "tools/loadgen/arguments.h"

namespace shmstats::tools::loadgen {

struct SeriesSpec {
  std::string name;   // "loadgen.s<k>"
  std::string shard;  // tag shard:<k % 4>
  shm::Kind kind = shm::Kind::kCounter;
};

// The K series: kinds cycle counter, timing, histogram, gauge by k % 4 unless `kinds` names one.
std::vector<SeriesSpec> make_series(const Config& config);

// The value of a thread's round-th push to a series of `kind`, in tenths (value = tenths / 10):
// counters (round % 100) + 1, timings and histograms (round % 1000) / 10, gauges round % 500.
std::uint64_t value_tenths(shm::Kind kind, std::uint64_t round) noexcept;

// Per series, summed over threads (and, once merged, over processes).
struct SeriesTally {
  std::uint64_t pushed = 0;    // push calls made
  std::uint64_t accepted = 0;  // returned true: entered a ring or was folded
  std::uint64_t refused = 0;   // returned false: dropped (counted by reason in the segment)
  std::uint64_t pushed_sum_tenths = 0;
  std::uint64_t accepted_sum_tenths = 0;

  SeriesTally& operator+=(const SeriesTally& other) noexcept;
  bool operator==(const SeriesTally&) const = default;
};

}  // namespace shmstats::tools::loadgen
