// What the drain loop hands to exporters: resolved points and folded aggregates of one flush,
// plus ownership of the series definitions they point to (a segment may be reclaimed while an
// exporter still holds the batch).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "proto/datagram.h"

namespace shmstats::collector {

struct Batch {
  std::vector<proto::Point> points;          // each Point::series points into `series`
  std::vector<proto::Aggregate> aggregates;  // likewise
  std::vector<std::shared_ptr<const proto::SeriesDef>> series;  // keeps the definitions alive
  std::uint64_t created_monotonic_ns = 0;                       // when the drain loop sealed it
  std::size_t size() const noexcept { return points.size() + aggregates.size(); }
};

using BatchPtr = std::shared_ptr<const Batch>;

}  // namespace shmstats::collector
