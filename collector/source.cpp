#include "collector/source.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <limits>
#include <utility>

namespace shmstats::collector {

namespace {
constexpr std::size_t kScratchEvents = 4096;
}  // namespace

ClockMap ClockMap::calibrate() {
  ClockMap m;
  m.tsc = shm::TickConverter::calibrate();
  const auto mono = static_cast<std::int64_t>(shm::clock_ns(CLOCK_MONOTONIC));
  const auto unix_now = static_cast<std::int64_t>(shm::clock_ns(CLOCK_REALTIME));
  m.monotonic_to_unix_ns = unix_now - mono;
  return m;
}

std::int64_t ClockMap::to_unix_ns(std::uint64_t ticks, shm::ClockSource source) const noexcept {
  const std::uint64_t mono = source == shm::ClockSource::kTsc ? tsc.to_monotonic_ns(ticks) : ticks;
  // Ticks are untrusted (a hostile ts of 2^63 or more): saturate instead of overflowing.
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  const auto mono_ns = static_cast<std::int64_t>(std::min<std::uint64_t>(mono, kMax));
  std::int64_t unix_ns = 0;
  if (__builtin_add_overflow(mono_ns, monotonic_to_unix_ns, &unix_ns)) {
    return monotonic_to_unix_ns > 0 ? kMax : std::numeric_limits<std::int64_t>::min();
  }
  return unix_ns;
}

std::int64_t ClockMap::now_unix_ns() const noexcept {
  return static_cast<std::int64_t>(shm::clock_ns(CLOCK_REALTIME));
}

shm::Result<std::unique_ptr<Source>> Source::open(const std::string& name,
                                                  const AttachPolicy& policy,
                                                  QuarantineReason* refusal) {
  auto seg = attach_checked(name, policy, refusal);
  if (!seg) return seg.error();
  return std::unique_ptr<Source>(new Source(std::move(seg).value()));
}

Source::Source(shm::Segment segment)
    : segment_(std::move(segment)), integrity_(segment_), pages_(segment_) {
  service_ = segment_.service();
  for (std::uint32_t r = 0; r < segment_.geometry().ring_count; ++r) {
    readers_.push_back(segment_.ring_reader(r));
  }
  ring_quarantined_.assign(readers_.size(), false);
}

// Called once per housekeeping interval (50 ms), not after each drain: a busy ring comes round
// to its pages again soon, and releasing them on every drain would cost a system call and page
// faults per 64 KiB drained (+2.5 to 3.5 ns per event in drain_bench, when it did). Per interval,
// the cost is a few system calls and faults per ring whatever the rate, and a slow ring gives back
// the pages before its head's window at most 50 ms after its head left them.
std::uint64_t Source::release_drained_pages() {
  if (quarantine_ || truncated_now()) return 0;
  std::uint64_t released_bytes = 0;
  for (std::uint32_t r = 0; r < readers_.size(); ++r) {
    if (!ring_quarantined_[r]) released_bytes += pages_.release(segment_, r);
  }
  return released_bytes;
}

void Source::set_quarantine(QuarantineReason reason, std::string message) {
  if (!quarantine_) quarantine_ = Quarantine{reason, std::move(message)};
}

// True once quarantined, for a read past the end of the file now too (see truncation_fault).
bool Source::truncated_now() {
  if (quarantine_) return true;
  auto fault = truncation_fault(segment_);
  if (!fault) return false;
  set_quarantine(fault->reason, std::move(fault->message));
  return true;
}

const Quarantine* Source::check() {
  if (quarantine_ || truncated_now()) return quarantine();
  if (auto found = integrity_.check(segment_)) {
    set_quarantine(found->reason, std::move(found->message));
  }
  return quarantine();
}

const model::SeriesDef* Source::series_for(std::uint32_t id, std::uint64_t batch_id, Batch& batch) {
  if (id >= segment_.geometry().series_capacity) return nullptr;
  if (id >= series_.size())
    series_.resize(std::min<std::size_t>(std::max<std::size_t>(id + 1, series_.size() * 2),
                                         segment_.geometry().series_capacity));
  CachedSeries& c = series_[id];
  if (c.invalid) return nullptr;
  if (!c.def) {
    // Cold: the first event of a series reads and validates its definition once.
    auto info = segment_.read_series(id);
    if (!info) {
      // Not published yet is possible only for a hostile producer (ids are published before
      // use); either way the event is counted invalid. A later event retries.
      return nullptr;
    }
    auto def = std::make_shared<model::SeriesDef>();
    def->service = service_;
    def->name = std::move(info.value().name);
    def->tags = std::move(info.value().tags);
    def->kind = info.value().kind;
    c.def = std::move(def);
  }
  if (c.batch_id != batch_id) {
    c.batch_id = batch_id;
    batch.series.push_back(c.def);
  }
  return c.def.get();
}

DrainResult Source::drain_ring(std::uint32_t ring, std::size_t budget, const ClockMap& clock,
                               std::uint64_t batch_id, Batch& batch) {
  DrainResult result;
  if (ring >= readers_.size() || ring_quarantined_[ring] || truncated_now()) return result;
  shm::RingReader& reader = readers_[ring];
  // One copy buffer per draining thread, shared by every source: 128 KiB per source was 8 MiB of
  // the collector's private memory with 64 segments attached (load scenario "segments").
  thread_local std::vector<shm::Event> scratch(kScratchEvents);
  result.fill_before = reader.size_estimate();
  const shm::ClockSource source = integrity_.clock_source();
  std::int64_t drained_at = 0;
  while (result.events < budget) {
    const std::size_t want = std::min(budget - result.events, scratch.size());
    const shm::PollResult got = reader.poll(std::span(scratch.data(), want));
    if (got.corrupt) {
      ring_quarantined_[ring] = true;
      result.corrupt = true;
      const shm::RingStats seen = segment_.ring_stats(ring);
      set_quarantine(QuarantineReason::kCorruptRing,
                     fmt::format("ring {}: indices break 0 <= tail - head <= capacity (head {}, "
                                 "tail {}, capacity {})",
                                 ring, seen.head, seen.tail, segment_.geometry().ring_capacity));
      break;
    }
    // Events read from zero pages are not the segment's: stop, the segment is quarantined.
    if (truncated_now()) break;
    if (got.count == 0) break;
    for (std::size_t i = 0; i < got.count; ++i) {
      const shm::Event& ev = scratch[i];
      const model::SeriesDef* def = series_for(ev.series_id, batch_id, batch);
      const bool kind_ok =
          def != nullptr && (ev.kind == static_cast<std::uint8_t>(def->kind) ||
                             (def->kind == shm::Kind::kGauge &&
                              ev.kind == static_cast<std::uint8_t>(shm::Kind::kGaugeDelta)));
      const bool rate_ok = ev.sample_rate > 0.0F && ev.sample_rate <= 1.0F;
      // The producer library refuses NaN and infinities (invalid_value), so one in a ring was
      // written by something else (a hostile process); no exporter's format could carry it.
      const bool value_ok = std::isfinite(ev.value);
      if (!kind_ok || !rate_ok || !value_ok) {
        ++invalid_events_;
        continue;
      }
      // ts 0: the producer does not stamp its events (Timestamps::kCollector); they get the
      // time they were drained, read once per drain.
      if (ev.ts == 0 && drained_at == 0) drained_at = clock.now_unix_ns();
      const std::int64_t time = ev.ts == 0 ? drained_at : clock.to_unix_ns(ev.ts, source);
      batch.points.push_back(model::Point{def, static_cast<shm::Kind>(ev.kind), ev.value,
                                          ev.sample_rate, time,
                                          model::Origin{origin_id_, ring, got.first + i}});
    }
    result.events += got.count;
    drained_ += got.count;
    if (got.count < want) break;
  }
  return result;
}

std::size_t Source::take_folds(std::int64_t now_unix_ns, std::uint64_t batch_id, Batch& batch) {
  if (truncated_now()) return 0;
  const std::uint32_t count = segment_.series_count();
  std::size_t taken = 0;
  ++fold_exchanges_;
  constexpr double kInf = std::numeric_limits<double>::infinity();
  for (std::uint32_t id = 0; id < count; ++id) {
    shm::SeriesEntry& e = segment_.series_entry(id);
    if (e.fold_count.load(std::memory_order_relaxed) == 0) continue;
    // Each accumulator is exchanged on its own: a value folded between two exchanges lands in
    // this report or the next, never in both and never in neither, so totals stay exact.
    const std::uint64_t n = e.fold_count.exchange(0, std::memory_order_acq_rel);
    const double sum = std::bit_cast<double>(
        e.fold_sum_bits.exchange(std::bit_cast<std::uint64_t>(0.0), std::memory_order_acq_rel));
    const double min = std::bit_cast<double>(
        e.fold_min_bits.exchange(std::bit_cast<std::uint64_t>(kInf), std::memory_order_acq_rel));
    const double max = std::bit_cast<double>(
        e.fold_max_bits.exchange(std::bit_cast<std::uint64_t>(-kInf), std::memory_order_acq_rel));
    const double last = std::bit_cast<double>(e.fold_last_bits.load(std::memory_order_relaxed));
    const model::SeriesDef* def = series_for(id, batch_id, batch);
    if (def == nullptr) {
      invalid_events_ += n;
      continue;
    }
    batch.aggregates.push_back(
        model::Aggregate{def, n, sum, min, max, last, now_unix_ns,
                         model::Origin{origin_id_, model::Origin::kFoldRing, fold_exchanges_}});
    folded_taken_ += n;
    ++taken;
  }
  return taken;
}

bool Source::producer_finished() const noexcept {
  if (segment_.state() == shm::SegmentState::kClosed) return true;
  return shm::owner_status(integrity_.owner_pid(), integrity_.owner_start_time()) ==
         shm::OwnerStatus::kDead;
}

std::uint64_t Source::waiting() const noexcept {
  std::uint64_t n = 0;
  for (std::size_t r = 0; r < readers_.size(); ++r) {
    if (!ring_quarantined_[r]) n += readers_[r].size_estimate();
  }
  return n;
}

SourceStats Source::stats() const {
  SourceStats s;
  s.name = segment_.name();
  s.service = service_;
  s.pid = integrity_.owner_pid();
  s.owner_alive = shm::owner_status(integrity_.owner_pid(), integrity_.owner_start_time()) ==
                  shm::OwnerStatus::kAlive;
  s.state = segment_.state();
  s.ring_capacity = segment_.geometry().ring_capacity;
  s.series = segment_.series_count();
  s.counters = segment_.counters();
  s.drained = drained_;
  s.invalid_events = invalid_events_;
  s.folded_taken = folded_taken_;
  // Unsigned, so hostile counters wrap instead of overflowing; an honest balance is small and
  // reads back as the signed difference.
  std::uint64_t balance = 0;
  for (std::uint32_t r = 0; r < segment_.geometry().ring_count; ++r) {
    RingSnapshot rs;
    rs.index = r;
    rs.stats = segment_.ring_stats(r);
    rs.quarantined = ring_quarantined_[r];
    s.pushed += rs.stats.pushed;
    s.folded += rs.stats.folded;
    s.dropped += rs.stats.dropped_total();
    s.waiting += rs.stats.fill();
    if (rs.stats.claims > 0) s.rings.push_back(rs);
    // The counters of a ring being pushed to cannot be read as one snapshot; the ledger is
    // checked on rings that were quiet across two reads (the others are in flight).
    const shm::RingStats again = segment_.ring_stats(r);
    if (again.pushed == rs.stats.pushed && again.tail == rs.stats.tail) {
      const std::uint64_t oldest =
          again.dropped[static_cast<std::size_t>(shm::DropReason::kOldestOverwritten)];
      const std::uint64_t drained_ever = again.head - oldest;
      balance +=
          again.pushed - (drained_ever + again.folded + again.dropped_total() + again.fill());
    }
  }
  s.unaccounted = static_cast<std::int64_t>(balance);
  return s;
}

}  // namespace shmstats::collector
