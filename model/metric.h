// The metric model: what the drain loop hands to outputs, what the wire codec encodes and
// decodes, and what the receiver writes. No protobuf, sockets or threads here: every output, the
// codec (proto/), the receiver and the tests speak these types.
//
//   SeriesDef   one series: service, name, sorted tags, kind (registered once in a segment)
//   Point       one event of a series: kind, value, sample rate, time, and where it came from
//   Aggregate   values a producer folded while its ring was full: count, sum, min, max, last
//   Batch       points and aggregates of one flush, owning the definitions they point to
//
// Origin: each point and aggregate says where in which segment it was read, so a consumer can
// acknowledge exactly what it handed on (the commit of ring positions, issue #14) and a receiver
// can drop what it already has. An origin with source 0 is "unknown" (decoded from the wire,
// made by a test).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "shm/layout.h"

namespace shmstats::model {

using Kind = shm::Kind;

struct SeriesDef {
  std::string service;
  std::string name;
  std::vector<std::pair<std::string, std::string>> tags;  // sorted by key
  Kind kind = Kind::kCounter;
};

// Where an item was read. `source` is the collector's id of the segment it was attached as
// (unique for the collector's lifetime, never 0); `ring` the ring index in that segment (kFoldRing
// for a folded aggregate); `position` the 64-bit ring index of the slot (for an aggregate, the
// number of the fold exchange it came from).
struct Origin {
  static constexpr std::uint32_t kFoldRing = 0xFFFFFFFFU;
  std::uint64_t source = 0;
  std::uint32_t ring = 0;
  std::uint64_t position = 0;
  bool known() const noexcept { return source != 0; }
};

struct Point {
  const SeriesDef* series = nullptr;
  Kind kind = Kind::kCounter;  // the event's kind (a gauge series also takes deltas)
  double value = 0;
  float sample_rate = 1.0F;
  std::int64_t time_unix_ns = 0;
  Origin origin;
};

struct Aggregate {
  const SeriesDef* series = nullptr;
  std::uint64_t count = 0;
  double sum = 0;
  double min = 0;
  double max = 0;
  double last = 0;
  std::int64_t time_unix_ns = 0;
  Origin origin;
};

// Points and aggregates of one flush, plus ownership of the series definitions they point to (a
// segment may be reclaimed while an output still holds the batch).
struct Batch {
  std::vector<Point> points;                             // each Point::series points into `series`
  std::vector<Aggregate> aggregates;                     // likewise
  std::vector<std::shared_ptr<const SeriesDef>> series;  // keeps the definitions alive
  std::uint64_t id = 0;                                  // the drain loop's sequence, from 1
  std::uint64_t created_monotonic_ns = 0;                // when the drain loop sealed it
  std::size_t size() const noexcept { return points.size() + aggregates.size(); }
};

using BatchPtr = std::shared_ptr<const Batch>;

}  // namespace shmstats::model
