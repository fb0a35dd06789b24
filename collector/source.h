// One attached producer segment as the collector sees it: its rings, a cache of its series
// definitions, its fold accumulators and its lifecycle (active, closed, owner dead, quarantined).
// The checks that decide a quarantine are in source_check.h; the release of drained slot pages
// in page_release.h.
//
// Concurrency: a Source belongs to the drain thread. stats() is a copy for telemetry, made by the
// drain thread and handed over under the caller's lock.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "collector/page_release.h"
#include "collector/source_check.h"
#include "model/metric.h"
#include "shm/clock.h"
#include "shm/segment.h"

namespace shmstats::collector {

using model::Batch;

// Converts event ticks to Unix nanoseconds.
struct ClockMap {
  shm::TickConverter tsc;
  std::int64_t monotonic_to_unix_ns = 0;
  static ClockMap calibrate();
  std::int64_t to_unix_ns(std::uint64_t ticks, shm::ClockSource source) const noexcept;
  std::int64_t now_unix_ns() const noexcept;
};

struct RingSnapshot {
  std::uint32_t index = 0;
  shm::RingStats stats;
  bool quarantined = false;
};

struct SourceStats {
  std::string name;
  std::string service;
  pid_t pid = 0;
  bool owner_alive = true;
  shm::SegmentState state = shm::SegmentState::kActive;
  std::uint32_t ring_capacity = 0;
  std::uint32_t series = 0;
  std::vector<RingSnapshot> rings;  // rings ever claimed
  shm::SegmentCounters counters;
  std::uint64_t drained = 0;         // events this collector took from the rings
  std::uint64_t invalid_events = 0;  // events whose series or kind did not check out
  std::uint64_t folded_taken = 0;    // folded values taken as aggregates
  // Ledger (producer side): pushed = drained_ever + folded + dropped + waiting, where
  // drained_ever is head - oldest_overwritten. `unaccounted` is the difference summed over the
  // rings that were quiet while read; non-zero means the segment's counters do not close.
  std::uint64_t pushed = 0;
  std::uint64_t folded = 0;
  std::uint64_t dropped = 0;
  std::uint64_t waiting = 0;
  std::int64_t unaccounted = 0;
};

struct DrainResult {
  std::size_t events = 0;
  std::uint64_t fill_before = 0;  // waiting events when the drain started
  bool corrupt = false;
};

class Source {
 public:
  // Attaches read-write after checking owner and mode; errors say why (and are counted by the
  // caller as quarantined, or retried when kNotReady). On an error, `refusal` (if given) receives
  // the quarantine reason it stands for.
  static shm::Result<std::unique_ptr<Source>> open(const std::string& name,
                                                   const AttachPolicy& policy,
                                                   QuarantineReason* refusal = nullptr);

  const std::string& name() const noexcept { return segment_.name(); }
  std::uint32_t ring_count() const noexcept { return segment_.geometry().ring_count; }
  std::uint32_t ring_capacity() const noexcept { return segment_.geometry().ring_capacity; }

  // Moves up to `budget` events of ring `ring` into `batch`. `batch_id` identifies the batch
  // being filled, so each series definition is attached to it once.
  DrainResult drain_ring(std::uint32_t ring, std::size_t budget, const ClockMap& clock,
                         std::uint64_t batch_id, Batch& batch);
  // Takes every series' fold accumulators (exchange) into batch.aggregates.
  std::size_t take_folds(std::int64_t now_unix_ns, std::uint64_t batch_id, Batch& batch);

  // Why this segment must be detached, once it turned corrupt since attach: a ring whose indices
  // broke the invariant (found by drain_ring), or (checked here, each housekeeping pass) an
  // immutable header field that changed, a state, series count or string pool use out of range
  // or going backwards, or a file that shrank under the mapping. Null while it checks out.
  // Once set it stays set, and drain_ring and take_folds do nothing.
  const Quarantine* check();
  const Quarantine* quarantine() const noexcept { return quarantine_ ? &*quarantine_ : nullptr; }
  // Events taken from the rings whose series, kind, rate or value did not check out.
  std::uint64_t invalid_events() const noexcept { return invalid_events_; }
  // Gives back the slot pages every ring's read position has left behind, up to the start of
  // the 64 KiB window it is in (see SlotPageRelease in page_release.h). Returns the bytes given
  // back; the caller adds them to its counter. The housekeeping pass calls it.
  std::uint64_t release_drained_pages();
  // Where ring `ring`'s slots are in this collector's mapping (for tests of the release).
  const void* ring_slots_address(std::uint32_t ring) const noexcept {
    return segment_.ring_slots(ring);
  }

  // True once the producer is gone (closed, or its process died) — it will push no more. The
  // owner is the one recorded at attach: a later rewrite of the header does not change it.
  bool producer_finished() const noexcept;
  // Waiting events over all non-quarantined rings.
  std::uint64_t waiting() const noexcept;
  SourceStats stats() const;
  // The id every point and aggregate read from this segment carries as its origin's source
  // (model::Origin); given by the drain loop at attach, unique for the collector's lifetime.
  void set_origin_id(std::uint64_t id) noexcept { origin_id_ = id; }
  std::uint64_t origin_id() const noexcept { return origin_id_; }

 private:
  explicit Source(shm::Segment segment);
  const model::SeriesDef* series_for(std::uint32_t id, std::uint64_t batch_id, Batch& batch);
  void set_quarantine(QuarantineReason reason, std::string message);
  bool truncated_now();

  shm::Segment segment_;
  std::string service_;
  // The header as it was at attach (owner, clock) and the checks against it. After segment_.
  IntegrityCheck integrity_;
  std::optional<Quarantine> quarantine_;
  std::vector<shm::RingReader> readers_;
  std::vector<bool> ring_quarantined_;
  SlotPageRelease pages_;  // after segment_
  struct CachedSeries {
    std::shared_ptr<const model::SeriesDef> def;
    std::uint64_t batch_id = 0;  // last batch this definition was attached to
    bool invalid = false;
  };
  std::vector<CachedSeries> series_;
  std::uint64_t drained_ = 0;
  std::uint64_t invalid_events_ = 0;
  std::uint64_t folded_taken_ = 0;
  std::uint64_t origin_id_ = 0;
  std::uint64_t fold_exchanges_ = 0;  // take_folds passes, the position of a fold's origin
};

}  // namespace shmstats::collector
