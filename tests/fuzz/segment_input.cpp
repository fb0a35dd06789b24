// The segment fuzzer: an untrusted segment goes through validate_segment and, when its geometry
// passes, through everything a reader does with it (collector source, shm-dump): the header's
// identity and counters, every published series, every ring's statistics, and draining every ring
// with RingReader::poll, converting each event's timestamp as the collector does.
#include <algorithm>
#include <array>
#include <cstring>
#include <new>
#include <span>

#include "shm/clock.h"
#include "shm/segment.h"
#include "shm/series.h"
#include "tests/fuzz/fuzz_inputs.h"

namespace shmstats::fuzz {
namespace {

// Exactly `size` bytes aligned like a mapping, so that ASan reports a read past the end of the
// segment; a copy, because readers write too (head, high_water).
class SegmentBuffer {
 public:
  SegmentBuffer(const std::uint8_t* data, std::size_t size)
      : bytes_(static_cast<std::uint8_t*>(::operator new(size, kAlign))) {
    if (size > 0) std::memcpy(bytes_, data, size);
  }
  SegmentBuffer(const SegmentBuffer&) = delete;
  SegmentBuffer& operator=(const SegmentBuffer&) = delete;
  ~SegmentBuffer() { ::operator delete(bytes_, kAlign); }
  void* data() const noexcept { return bytes_; }

 private:
  static constexpr std::align_val_t kAlign{shm::kCacheLine};
  std::uint8_t* bytes_;
};

// Small on purpose: draining a ring then takes several polls.
constexpr std::size_t kPollBatch = 3;

void read_series_table(const shm::Segment& segment) {
  const std::uint32_t count = segment.series_count();
  require(count <= segment.geometry().series_capacity, "series_count is clamped to the capacity");
  for (std::uint32_t id = 0; id < count; ++id) {
    auto info = segment.read_series(id);
    if (!info) continue;
    const shm::SeriesInfo& s = info.value();
    require(s.id == id, "read_series returns the id asked for");
    require(!s.name.empty() && s.name.size() <= shm::kMaxNameBytes, "series name length");
    require(s.tags.size() <= shm::kMaxTags, "series tag count");
  }
  require(!segment.read_series(count), "no series past the published count");
}

void drain_ring(const shm::Segment& segment, std::uint32_t ring,
                const shm::TickConverter& converter) {
  const shm::RingStats stats = segment.ring_stats(ring);
  (void)stats.dropped_total();
  require(static_cast<std::int64_t>(stats.fill()) >= 0, "ring fill is never negative");
  shm::RingReader reader = segment.ring_reader(ring);
  (void)reader.size_estimate();
  const auto source = static_cast<shm::ClockSource>(segment.header().clock_source);
  const std::uint32_t series_count = segment.series_count();
  std::array<shm::Event, kPollBatch> out{};
  // An honest ring holds at most `capacity` events: draining it ends within this many polls.
  const std::uint64_t max_polls = segment.geometry().ring_capacity / kPollBatch + 2;
  for (std::uint64_t poll = 0;; ++poll) {
    require(poll < max_polls, "draining a ring ends");
    const shm::PollResult got = reader.poll(out);
    require(got.count <= out.size(), "poll copies at most out.size() events");
    if (got.corrupt || got.count == 0) break;
    for (std::size_t i = 0; i < got.count; ++i) {
      const shm::Event& ev = out[i];
      if (source == shm::ClockSource::kTsc) (void)converter.to_monotonic_ns(ev.ts);
      if (ev.series_id < series_count) (void)segment.read_series(ev.series_id);
    }
  }
}

}  // namespace

int segment_input(const std::uint8_t* data, std::size_t size) {
  SegmentBuffer buffer(data, size);
  auto geometry = shm::validate_segment(buffer.data(), size);
  if (!geometry) return 0;
  require(geometry.value().total_size() <= size, "a validated segment fits in its mapping");
  auto viewed = shm::Segment::view(buffer.data(), size);
  require(static_cast<bool>(viewed), "a view accepts what validate_segment accepts");
  const shm::Segment& segment = viewed.value();
  require(segment.service().size() <= shm::kMaxServiceNameBytes, "service name length");
  (void)segment.state();
  (void)segment.counters();
  read_series_table(segment);
  // Calibrated once: a 2 ms busy-wait per input would dominate the run.
  static const shm::TickConverter converter = shm::TickConverter::calibrate();
  for (std::uint32_t r = 0; r < segment.geometry().ring_count; ++r) {
    drain_ring(segment, r, converter);
  }
  return 0;
}

}  // namespace shmstats::fuzz
