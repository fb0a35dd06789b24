#include "tools/loadgen/segment_watch.h"

#include <algorithm>

namespace shmstats::tools::loadgen {

SegmentView SegmentWatch::look() {
  SegmentView view;
  const auto names = shm::list_segments(prefix_);
  for (const auto& name : names) {
    Entry& e = entries_[name];
    if (!e.segment) {
      auto attached = shm::Segment::attach(name, shm::Segment::Access::kReadOnly);
      if (!attached) continue;  // still being created, or already gone
      e.segment.emplace(std::move(attached).value());
    }
    const shm::Segment& seg = *e.segment;
    SegmentTotals t;
    const double capacity = seg.geometry().ring_capacity;
    for (std::uint32_t r = 0; r < seg.geometry().ring_count; ++r) {
      const shm::RingStats rs = seg.ring_stats(r);
      t.pushed += rs.pushed;
      t.folded += rs.folded;
      for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) t.dropped[i] += rs.dropped[i];
      view.fill_max = std::max(view.fill_max, static_cast<double>(rs.fill()) / capacity);
      view.high_water_max =
          std::max(view.high_water_max, static_cast<double>(rs.high_water) / capacity);
    }
    const shm::SegmentCounters c = seg.counters();
    t.folded += c.folded_no_ring;
    for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) t.dropped[i] += c.dropped[i];
    e.last = t;
    ++view.attached;
  }
  for (auto& [name, e] : entries_) {
    // A reclaimed segment keeps its last counts; its mapping goes.
    if (e.segment && std::find(names.begin(), names.end(), name) == names.end()) {
      e.segment.reset();
    }
    view.totals.pushed += e.last.pushed;
    view.totals.folded += e.last.folded;
    for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) {
      view.totals.dropped[i] += e.last.dropped[i];
    }
  }
  return view;
}

}  // namespace shmstats::tools::loadgen
