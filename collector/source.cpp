#include "collector/source.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

namespace shmstats::collector {

namespace {
constexpr std::size_t kScratchEvents = 4096;
// The kernel's fault-around window (fault_around_bytes, 64 KiB by default): a read fault maps
// the cached pages of the aligned window around the faulting page. See release_drained.
constexpr std::uintptr_t kFaultAroundBytes = 64 * 1024;

// The immutable header fields by name, for a quarantine reason that says which one changed.
struct HeaderField {
  const char* name;
  std::size_t offset;
  std::size_t size;
};
#define SHMSTATS_HEADER_FIELD(f) \
  HeaderField { #f, offsetof(shm::SegmentHeader, f), sizeof(shm::SegmentHeader::f) }
const HeaderField kHeaderFields[] = {
    SHMSTATS_HEADER_FIELD(magic),
    SHMSTATS_HEADER_FIELD(layout_version),
    SHMSTATS_HEADER_FIELD(header_size),
    SHMSTATS_HEADER_FIELD(total_size),
    SHMSTATS_HEADER_FIELD(series_offset),
    SHMSTATS_HEADER_FIELD(series_capacity),
    SHMSTATS_HEADER_FIELD(series_entry_size),
    SHMSTATS_HEADER_FIELD(strings_offset),
    SHMSTATS_HEADER_FIELD(strings_size),
    SHMSTATS_HEADER_FIELD(ring_count),
    SHMSTATS_HEADER_FIELD(rings_offset),
    SHMSTATS_HEADER_FIELD(ring_capacity),
    SHMSTATS_HEADER_FIELD(ring_header_size),
    SHMSTATS_HEADER_FIELD(ring_stride),
    SHMSTATS_HEADER_FIELD(slots_offset),
    SHMSTATS_HEADER_FIELD(owner_pid),
    SHMSTATS_HEADER_FIELD(owner_uid),
    SHMSTATS_HEADER_FIELD(owner_start_time),
    SHMSTATS_HEADER_FIELD(created_realtime_ns),
    SHMSTATS_HEADER_FIELD(created_monotonic_ns),
    SHMSTATS_HEADER_FIELD(created_ticks),
    SHMSTATS_HEADER_FIELD(clock_source),
    SHMSTATS_HEADER_FIELD(service_name_len),
    SHMSTATS_HEADER_FIELD(service_name),
    SHMSTATS_HEADER_FIELD(default_overflow),
    SHMSTATS_HEADER_FIELD(reserved0),
    SHMSTATS_HEADER_FIELD(sample_keep_one_in),
};
#undef SHMSTATS_HEADER_FIELD

// A field of at most 8 bytes as a number (little-endian), for the reason text.
std::uint64_t field_value(const unsigned char* bytes, std::size_t size) {
  std::uint64_t v = 0;
  std::memcpy(&v, bytes, std::min(size, sizeof(v)));
  return v;
}

// The bytes of the immutable header part, copied out of shared memory that another process may
// be writing (the copy may then mix old and new bytes; any difference is a change either way).
void copy_identity(const shm::SegmentHeader& h, unsigned char* out, std::size_t size) {
  std::memcpy(out, static_cast<const void*>(&h), size);
}
}  // namespace

const char* to_string(QuarantineReason reason) noexcept {
  switch (reason) {
    case QuarantineReason::kForeignOwner:
      return "foreign_owner";
    case QuarantineReason::kUnsafeMode:
      return "unsafe_mode";
    case QuarantineReason::kInvalid:
      return "invalid";
    case QuarantineReason::kNeverReady:
      return "never_ready";
    case QuarantineReason::kCorruptRing:
      return "corrupt_ring";
    case QuarantineReason::kHeaderChanged:
      return "header_changed";
    case QuarantineReason::kCorruptState:
      return "corrupt_state";
    case QuarantineReason::kTruncated:
      return "truncated";
    case QuarantineReason::kCount:
      break;
  }
  return "unknown";
}

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

namespace {

// The attach policy for a file with this owner and mode: nullopt if allowed, else why not.
std::optional<std::pair<QuarantineReason, std::string>> policy_refusal(const std::string& name,
                                                                       const AttachPolicy& policy,
                                                                       std::uint32_t uid,
                                                                       std::uint32_t mode) {
  if (!S_ISREG(mode)) {
    return std::pair{QuarantineReason::kUnsafeMode,
                     fmt::format("{} is not a regular file (a link or special file)", name)};
  }
  const bool uid_ok = policy.allowed_uids.empty()
                          ? uid == ::getuid()
                          : std::find(policy.allowed_uids.begin(), policy.allowed_uids.end(),
                                      uid) != policy.allowed_uids.end();
  if (!uid_ok) {
    return std::pair{
        QuarantineReason::kForeignOwner,
        fmt::format("{} is owned by uid {}, which is not allowed (allowed: {})", name, uid,
                    policy.allowed_uids.empty()
                        ? fmt::format("{}, the collector's own", ::getuid())
                        : fmt::format("{}", fmt::join(policy.allowed_uids, ",")))};
  }
  if ((mode & S_IWOTH) != 0 || ((mode & S_IWGRP) != 0 && !policy.allow_group_writable)) {
    return std::pair{
        QuarantineReason::kUnsafeMode,
        fmt::format("{} has mode {:04o}: group- or world-writable segments are refused{}", name,
                    mode & 07777,
                    (mode & S_IWOTH) != 0 ? "" : " (--allow-group-writable accepts group)")};
  }
  return std::nullopt;
}

}  // namespace

shm::Result<std::unique_ptr<Source>> Source::open(const std::string& name,
                                                  const AttachPolicy& policy,
                                                  QuarantineReason* refusal) {
  auto refuse = [&](QuarantineReason reason, shm::Error error) {
    if (refusal != nullptr) *refusal = reason;
    return error;
  };
  // Check the file before mapping it: only allowed owners, and no group/world write unless
  // configured, so another user cannot feed this collector a crafted segment.
  struct stat st {};
  const std::string path = std::string(shm::kShmDirectory) + "/" + name;
  if (::lstat(path.c_str(), &st) != 0) {
    return refuse(QuarantineReason::kInvalid,
                  shm::Error{shm::Errc::kNotFound, fmt::format("segment {} vanished", name)});
  }
  if (auto no = policy_refusal(name, policy, st.st_uid, st.st_mode)) {
    return refuse(no->first, shm::Error{shm::Errc::kInvalidSegment, std::move(no->second)});
  }
  auto seg = shm::Segment::attach(name, shm::Segment::Access::kReadWrite);
  if (!seg) {
    return refuse(seg.error().code == shm::Errc::kNotReady ? QuarantineReason::kNeverReady
                                                           : QuarantineReason::kInvalid,
                  seg.error());
  }
  // Again for the file that was mapped: the name may have led elsewhere by the time it was opened.
  const shm::FileIdentity& file = seg.value().file();
  if (auto no = policy_refusal(name, policy, file.uid, file.mode)) {
    return refuse(no->first, shm::Error{shm::Errc::kInvalidSegment, std::move(no->second)});
  }
  return std::unique_ptr<Source>(new Source(std::move(seg).value()));
}

Source::Source(shm::Segment segment) : segment_(std::move(segment)) {
  service_ = segment_.service();
  const shm::SegmentHeader& h = segment_.header();
  copy_identity(h, identity_.data(), identity_.size());
  // The fields used from here on come from the copy, so a later rewrite cannot steer them.
  std::int32_t pid = 0;
  std::uint32_t clock = 0;
  std::memcpy(&pid, identity_.data() + offsetof(shm::SegmentHeader, owner_pid), sizeof(pid));
  std::memcpy(&owner_start_time_, identity_.data() + offsetof(shm::SegmentHeader, owner_start_time),
              sizeof(owner_start_time_));
  std::memcpy(&clock, identity_.data() + offsetof(shm::SegmentHeader, clock_source), sizeof(clock));
  owner_pid_ = pid;
  clock_source_ = static_cast<shm::ClockSource>(clock);
  last_series_count_ = h.series_count.load(std::memory_order_acquire);
  for (std::uint32_t r = 0; r < segment_.geometry().ring_count; ++r) {
    readers_.push_back(segment_.ring_reader(r));
  }
  ring_quarantined_.assign(readers_.size(), false);
  released_.resize(readers_.size());
  for (std::uint32_t r = 0; r < readers_.size(); ++r) {
    released_[r] = window_start(r, segment_.ring_header(r).head.load(std::memory_order_relaxed));
  }
}

// Called once per housekeeping interval (50 ms), not after each drain: a busy ring comes round
// to its pages again soon, and releasing them on every drain would cost a system call and page
// faults per 64 KiB drained (+2.5 to 3.5 ns per event in drain_bench, when it did). Per interval,
// the cost is a few system calls and faults per ring whatever the rate, and a slow ring gives back
// the pages before its head's window at most 50 ms after its head left them.
std::uint64_t Source::release_drained_pages() {
  if (quarantine_ || truncated_now()) return 0;
  for (std::uint32_t r = 0; r < readers_.size(); ++r) {
    if (!ring_quarantined_[r]) release_drained(r);
  }
  return std::exchange(released_bytes_, 0);
}

// The position where the 64 KiB fault-around window that holds ring position `head` starts (or
// where the ring's slots start, if that is later): the release stops there.
std::uint64_t Source::window_start(std::uint32_t ring, std::uint64_t head) const noexcept {
  const std::uint64_t capacity = segment_.geometry().ring_capacity;
  const auto slots = reinterpret_cast<std::uintptr_t>(segment_.ring_slots(ring));
  const std::uintptr_t head_at = slots + (head & (capacity - 1)) * sizeof(shm::Event);
  const std::uintptr_t window = std::max(head_at & ~(kFaultAroundBytes - 1), slots);
  return head - (head_at - window) / sizeof(shm::Event);
}

// The slot pages the consumer has passed are unmapped from the collector (MADV_DONTNEED). The
// mapping is shared, so this drops only the collector's page-table entries: the data stays in
// the segment and the producer's mapping is untouched. Without it the collector's RSS grows by
// every slot page an event ever passed through, up to ring_capacity * 32 B per ring used
// (256 KiB per ring by default, 16 MiB for 64 single-threaded producers), and stays there.
// A read fault maps the cached pages of the aligned 64 KiB window around the faulting page in
// one go (fault-around), so a page released inside the window of the head would come back at
// the next fault there, which on a ring's first lap is each new page the producer fills. The
// release therefore stops where the head's window starts: a ring in use keeps that window
// mapped, and what was drained since the last housekeeping pass. (Slots are page-aligned, not
// window-aligned: a ring's first window may also cover the last pages of the ring before it,
// or the ring headers, and a fault there maps them too, up to one window per ring.) After a
// lap or more in one interval (a busy ring, drop-oldest, or a hostile head) every slot page is
// behind and all are released; the head's window faults back in. `head` is untrusted, but only
// its position within the ring is used, so every range stays inside this ring's slots.
void Source::release_drained(std::uint32_t ring) {
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t capacity = segment_.geometry().ring_capacity;
  const std::uint64_t head = segment_.ring_header(ring).head.load(std::memory_order_relaxed);
  std::uint64_t& from = released_[ring];
  const auto slots = reinterpret_cast<std::uintptr_t>(segment_.ring_slots(ring));
  const std::uintptr_t first = (slots + page - 1) & ~(page - 1);
  const std::uintptr_t last = (slots + capacity * sizeof(shm::Event)) & ~(page - 1);
  const auto at = [&](std::uint64_t position) {
    return slots + (position & (capacity - 1)) * sizeof(shm::Event);
  };
  const auto release = [&](std::uintptr_t begin, std::uintptr_t end) {
    begin = std::max(begin & ~(page - 1), first);
    end = std::min(end & ~(page - 1), last);
    if (begin >= end) return;
    if (::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED) == 0) {
      released_bytes_ += end - begin;
    }
  };
  const std::uint64_t stop = window_start(ring, head);
  // `from` is always a window start at or before the head, so 0 <= stop - from < capacity here;
  // 0: the head is still in the window the last release stopped at.
  const std::uint64_t passed = stop - from;
  if (head - from >= capacity) {
    release(first, last);
  } else if (passed == 0 || passed >= capacity) {
    return;
  } else if (at(from) < at(stop)) {
    release(at(from), at(stop));
  } else {  // wrapped: the end of the slots, then their start up to the stop
    release(at(from), last);
    release(first, at(stop));
  }
  from = stop;
}

void Source::set_quarantine(QuarantineReason reason, std::string message) {
  if (!quarantine_) quarantine_ = Quarantine{reason, std::move(message)};
}

// A page past the end of the file was touched (the fault handler put a zero page there).
bool Source::truncated_now() {
  if (quarantine_) return true;
  const std::uint64_t faults = segment_.truncation_faults();
  if (faults == 0) return false;
  set_quarantine(
      QuarantineReason::kTruncated,
      fmt::format("the file was truncated under the mapping: a read at offset {} of {} "
                  "mapped bytes was past its end (SIGBUS; {} zero pages mapped)",
                  segment_.first_truncation_fault_offset(), segment_.mapped_size(), faults));
  return true;
}

const Quarantine* Source::check() {
  if (quarantine_ || truncated_now()) return quarantine();
  const std::int64_t size = segment_.current_file_size();
  if (size >= 0 && static_cast<std::uint64_t>(size) < segment_.mapped_size()) {
    set_quarantine(QuarantineReason::kTruncated,
                   fmt::format("the file was truncated under the mapping: it is {} bytes, {} "
                               "were mapped",
                               size, segment_.mapped_size()));
    return quarantine();
  }
  const shm::SegmentHeader& h = segment_.header();
  std::array<unsigned char, sizeof(identity_)> now{};
  copy_identity(h, now.data(), now.size());
  if (now != identity_) {
    std::string which = "reserved bytes";
    for (const HeaderField& f : kHeaderFields) {
      if (std::memcmp(now.data() + f.offset, identity_.data() + f.offset, f.size) == 0) continue;
      which = f.size <= sizeof(std::uint64_t)
                  ? fmt::format("{} (was {}, now {})", f.name,
                                field_value(identity_.data() + f.offset, f.size),
                                field_value(now.data() + f.offset, f.size))
                  : std::string(f.name);
      break;
    }
    set_quarantine(QuarantineReason::kHeaderChanged,
                   fmt::format("the header changed since attach: {}", which));
    return quarantine();
  }
  // acquire: pairs with the owner's release stores of state and series_count.
  const std::uint32_t state = h.state.load(std::memory_order_acquire);
  if (state < static_cast<std::uint32_t>(shm::SegmentState::kActive) ||
      state > static_cast<std::uint32_t>(shm::SegmentState::kClosed)) {
    set_quarantine(QuarantineReason::kCorruptState, fmt::format("unknown segment state {}", state));
    return quarantine();
  }
  const std::uint32_t series = h.series_count.load(std::memory_order_acquire);
  const std::uint32_t capacity = segment_.geometry().series_capacity;
  if (series > capacity || series < last_series_count_) {
    set_quarantine(QuarantineReason::kCorruptState,
                   fmt::format("series count is {} (was {}; capacity {}): ids are dense and never "
                               "reused",
                               series, last_series_count_, capacity));
    return quarantine();
  }
  last_series_count_ = series;
  const std::uint32_t strings = h.strings_used.load(std::memory_order_relaxed);
  if (strings > segment_.geometry().strings_size) {
    set_quarantine(QuarantineReason::kCorruptState,
                   fmt::format("string pool use is {} bytes of {}", strings,
                               segment_.geometry().strings_size));
    return quarantine();
  }
  return nullptr;
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
  const shm::ClockSource source = clock_source_;
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
  return shm::owner_status(owner_pid_, owner_start_time_) == shm::OwnerStatus::kDead;
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
  s.pid = owner_pid_;
  s.owner_alive = shm::owner_status(owner_pid_, owner_start_time_) == shm::OwnerStatus::kAlive;
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
