// shm-dump's library: reads shmstats segments read-only and describes them as one JSON document,
// which the text renderer then formats for a terminal, so both outputs always show the same data.
//
// Nothing here writes to a segment: segments are attached with Segment::Access::kReadOnly and only
// loaded from. A snapshot of a live segment is racy by nature (each counter is read once, with no
// lock): counters of one ring may be a few events apart, but no single counter is torn.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "shm/segment.h"

namespace shmstats::tools {

// Readable name of an index of SegmentCounters::series_rejected (a shm::Errc), e.g.
// "invalid_name"; indices without an Errc are "errc_<n>".
std::string errc_name(std::size_t index);

// Names of the segments to show: `only` if it is set, else every "<prefix>.*" in /dev/shm.
std::vector<std::string> segment_names(std::string_view prefix, std::string_view only = {});

// One validated segment as a JSON object (see snapshot_json for the fields). `now_realtime_ns` is
// CLOCK_REALTIME, for the age.
nlohmann::json segment_json(const shm::Segment& segment, bool with_series,
                            std::uint64_t now_realtime_ns);

// Attaches each named segment read-only and describes it:
//   {"tool":"shm-dump", "segments":[{name, pid, alive, service, age_s, state, layout_version,
//    size_bytes, ring_count, ring_capacity, rings_in_use, series_count, pushed, folded,
//    dropped:{reason:n}, rings:[...], segment_counters:{...}, series:[...] (with_series)}],
//    "invalid":[{name, error}]}
// A segment that cannot be opened or validated goes to "invalid" with the reason; a series that
// cannot be read is listed with its error. Neither is an exception.
nlohmann::json snapshot_json(const std::vector<std::string>& names, bool with_series);

// Formats a snapshot_json() document for a terminal: per segment a header line, a totals line and a
// table of the rings in use (plus the series, if the snapshot has them); then the invalid segments.
std::string render_text(const nlohmann::json& snapshot);

}  // namespace shmstats::tools
