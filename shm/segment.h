// Segment naming, creation (producer), attachment and validation (collector, shm-dump, tests), and
// read-back of series and counters. No threads, no sockets, no logging.
//
// Concurrency: a Segment is a mapping; its accessors return pointers into shared memory whose
// atomics follow the rules in layout.h and ring.h. Segment objects themselves are not shared
// between threads without external synchronisation.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shm/layout.h"
#include "shm/result.h"
#include "shm/ring.h"

namespace shmstats::shm {

inline constexpr std::string_view kDefaultPrefix = "shmstats";
inline constexpr std::string_view kShmDirectory = "/dev/shm";

struct SegmentOptions {
  std::string service;  // empty: the program name
  std::uint32_t ring_count = 16;
  std::uint32_t ring_capacity = 8192;
  std::uint32_t series_capacity = 4096;
  std::uint32_t strings_size = 256 * 1024;
  Overflow default_overflow = Overflow::kDefault;
  std::uint32_t sample_keep_one_in = 10;
  std::uint32_t mode = 0600;  // 0600 or 0660 (group readers, e.g. a collector in the same group)
  std::string prefix{kDefaultPrefix};
};

Result<Geometry> check_options(const SegmentOptions& options);

// "<prefix>.<pid>.<start_time>.<n>": n counts the segments this process created.
std::string make_segment_name(std::string_view prefix, pid_t pid, std::uint64_t start_time,
                              std::uint32_t n);

// The start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22), or 0 if unknown.
std::uint64_t process_start_time(pid_t pid) noexcept;

enum class OwnerStatus { kAlive, kDead };
// Dead if no process has that pid, or one does but started at another time (pid reuse).
OwnerStatus owner_status(pid_t pid, std::uint64_t start_time) noexcept;

// Names (without '/') of the objects in the shared-memory directory that start with "<prefix>.".
std::vector<std::string> list_segments(std::string_view prefix);

Result<void> unlink_segment(std::string_view name);

struct RingStats {
  RingState state = RingState::kFree;
  std::uint64_t owner_tid = 0;
  std::uint64_t head = 0;
  std::uint64_t tail = 0;
  std::uint64_t pushed = 0;
  std::uint64_t high_water = 0;
  std::uint64_t claims = 0;
  std::uint64_t folded = 0;
  std::array<std::uint64_t, kDropReasonCount> dropped{};
  std::uint64_t fill() const noexcept {
    return static_cast<std::int64_t>(tail - head) < 0 ? 0 : tail - head;
  }
  std::uint64_t dropped_total() const noexcept;
};

struct SegmentCounters {
  std::array<std::uint64_t, kDropReasonCount> dropped{};  // threads without a ring
  std::uint64_t folded_no_ring = 0;
  std::array<std::uint64_t, 16> series_rejected{};  // indexed by Errc
};

// The file a Segment::attach mapped, as fstat saw it through the descriptor it mapped.
struct FileIdentity {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint32_t uid = 0;
  std::uint32_t mode = 0;  // st_mode
  std::uint64_t size_bytes = 0;
};

struct SeriesInfo {
  std::uint32_t id = 0;
  Kind kind = Kind::kCounter;
  Overflow overflow = Overflow::kDefault;
  std::string name;
  std::vector<std::pair<std::string, std::string>> tags;  // sorted by key
};

// A mapped segment whose header passed validation. Created by the producer (create), by a
// reader (attach) or over memory the caller owns (view); either way the geometry accessors below
// are safe to use.
class Segment {
 public:
  enum class Access { kReadOnly, kReadWrite };

  static Result<Segment> create(const SegmentOptions& options, std::uint32_t sequence = 0);
  static Result<Segment> attach(std::string_view name, Access access);
  // A read-write Segment over `size` bytes at `base` that the caller owns, aligned to
  // kCacheLine and alive as long as the Segment: a copy of a segment (tests) or a fuzzer's
  // buffer. Validated exactly like attach; name() is empty.
  static Result<Segment> view(void* base, std::size_t size);

  Segment(Segment&&) noexcept;
  Segment& operator=(Segment&&) noexcept;
  ~Segment();

  const std::string& name() const noexcept { return name_; }
  std::size_t mapped_size() const noexcept;
  bool writable() const noexcept { return access_ == Access::kReadWrite; }
  // attach only: the mapped file when it was opened (zero for create and view).
  const FileIdentity& file() const noexcept;
  // attach only: the size of the file now, if the name still leads to the file that was mapped
  // (same device and inode); -1 if it does not or cannot be told. A size below mapped_size()
  // means the file was truncated under the mapping.
  std::int64_t current_file_size() const noexcept;
  // attach only: pages of the mapping that were past the end of the file when touched, replaced
  // by zero pages (shm/mapping_guard.h; needs install_mapping_fault_handler()). Non-zero means
  // the file was truncated and what was read from those pages is zeros, not the segment.
  std::uint64_t truncation_faults() const noexcept;
  std::uint64_t first_truncation_fault_offset() const noexcept;

  SegmentHeader& header() const noexcept;
  const Geometry& geometry() const noexcept { return geometry_; }
  RingHeader& ring_header(std::uint32_t index) const noexcept;
  Event* ring_slots(std::uint32_t index) const noexcept;
  RingWriter ring_writer(std::uint32_t index) const noexcept;
  RingReader ring_reader(std::uint32_t index) const noexcept;  // needs kReadWrite
  SeriesEntry& series_entry(std::uint32_t id) const noexcept;
  char* strings() const noexcept;

  SegmentState state() const noexcept;
  std::string service() const;
  // Published series, clamped to the table's capacity (the count is untrusted).
  std::uint32_t series_count() const noexcept;
  Result<SeriesInfo> read_series(std::uint32_t id) const;
  RingStats ring_stats(std::uint32_t index) const noexcept;
  SegmentCounters counters() const noexcept;

 private:
  struct Mapping;
  Segment(std::unique_ptr<Mapping> mapping, std::string name, Access access, Geometry geometry);

  std::unique_ptr<Mapping> mapping_;
  std::string name_;
  Access access_ = Access::kReadOnly;
  Geometry geometry_{};
};

// Validates an untrusted header against the size of its mapping. The only place that decides
// whether segment geometry can be trusted; also the entry point of the segment fuzzer.
Result<Geometry> validate_segment(const void* base, std::size_t size);

}  // namespace shmstats::shm
