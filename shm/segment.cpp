#include "shm/segment.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "shm/clock.h"
#include "shm/mapping_guard.h"
#include "shm/series.h"

namespace shmstats::shm {
namespace bip = boost::interprocess;

// A /dev/shm mapping, or (for Segment::view) memory the caller owns: then `region` is empty.
struct Segment::Mapping {
  bip::mapped_region region;
  void* view_base = nullptr;
  std::size_t view_size = 0;
  FileIdentity file;
  // Declared after `region`, so it is destroyed (unregistered) before the region is unmapped.
  GuardedMapping guard;

  void* address() const noexcept { return view_base != nullptr ? view_base : region.get_address(); }
  std::size_t size() const noexcept { return view_base != nullptr ? view_size : region.get_size(); }
};

namespace {

bool is_power_of_two(std::uint64_t v) noexcept { return v != 0 && (v & (v - 1)) == 0; }

// One load of a plain field of shared memory that another process may be writing: relaxed, so
// the compiler neither tears it nor loads it again later.
template <class T>
T read_once(T& field) noexcept {
  return std::atomic_ref<T>(field).load(std::memory_order_relaxed);
}

std::string program_name() {
  std::ifstream comm("/proc/self/comm");
  std::string name;
  std::getline(comm, name);
  return name.empty() ? std::string("unknown") : name;
}

Error system_error(std::string_view what, std::string_view name, int err) {
  return Error{
      err == ENOSPC ? Errc::kNoSpace : Errc::kSystem,
      fmt::format("{} shared-memory segment \"{}\" failed: {}", what, name, std::strerror(err))};
}

}  // namespace

std::uint64_t RingStats::dropped_total() const noexcept {
  std::uint64_t sum = 0;
  for (const auto d : dropped) sum += d;
  return sum;
}

Result<Geometry> check_options(const SegmentOptions& o) {
  auto bad = [](std::string_view what, std::uint64_t value, std::string_view rule) {
    return Error{Errc::kInvalidOptions, fmt::format("{} is {}; {}", what, value, rule)};
  };
  if (o.ring_count < 1 || o.ring_count > kMaxRings) {
    return bad("ring count", o.ring_count, fmt::format("it must be 1 to {}", kMaxRings));
  }
  if (!is_power_of_two(o.ring_capacity) || o.ring_capacity < 2 ||
      o.ring_capacity > kMaxRingCapacity) {
    return bad("ring capacity", o.ring_capacity,
               fmt::format("it must be a power of two from 2 to {}", kMaxRingCapacity));
  }
  if (o.series_capacity < 1 || o.series_capacity > kMaxSeriesCapacity) {
    return bad("series capacity", o.series_capacity,
               fmt::format("it must be 1 to {}", kMaxSeriesCapacity));
  }
  if (o.strings_size < kMaxSeriesTextBytes || o.strings_size > kMaxStringsBytes) {
    return bad("string pool size", o.strings_size,
               fmt::format("it must be {} to {} bytes", kMaxSeriesTextBytes, kMaxStringsBytes));
  }
  if (static_cast<std::uint8_t>(o.default_overflow) > kMaxOverflow) {
    return bad("overflow strategy", static_cast<std::uint8_t>(o.default_overflow),
               "it is not a known strategy");
  }
  if (o.sample_keep_one_in < 1 || o.sample_keep_one_in > 1'000'000) {
    return bad("sample keep-one-in", o.sample_keep_one_in, "it must be 1 to 1000000");
  }
  if (o.mode != 0600 && o.mode != 0660 && o.mode != 0640) {
    return Error{Errc::kInvalidOptions,
                 fmt::format("segment mode is {:04o}; it must be 0600, 0640 or 0660 (never "
                             "world-accessible)",
                             o.mode)};
  }
  if (o.prefix.empty() || o.prefix.size() > 64 ||
      o.prefix.find_first_not_of(
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
          std::string::npos) {
    return Error{Errc::kInvalidOptions,
                 fmt::format("segment prefix \"{}\" must be 1 to 64 characters of [A-Za-z0-9_-]",
                             escape_for_message(o.prefix))};
  }
  if (o.service.size() > kMaxServiceNameBytes) {
    return Error{
        Errc::kInvalidOptions,
        fmt::format("service name \"{}\" is {} bytes; the limit is {}",
                    escape_for_message(o.service), o.service.size(), kMaxServiceNameBytes)};
  }
  return Geometry{o.ring_count, o.ring_capacity, o.series_capacity, o.strings_size};
}

std::string make_segment_name(std::string_view prefix, pid_t pid, std::uint64_t start_time,
                              std::uint32_t n) {
  return fmt::format("{}.{}.{}.{}", prefix, pid, start_time, n);
}

std::uint64_t process_start_time(pid_t pid) noexcept {
  try {
    std::ifstream in(fmt::format("/proc/{}/stat", pid));
    std::string line;
    if (!std::getline(in, line)) return 0;
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream rest(line.substr(close + 1));
    std::string field;
    for (int i = 3; i <= 22; ++i) {
      if (!(rest >> field)) return 0;
    }
    return std::stoull(field);
  } catch (const std::exception&) {
    return 0;
  }
}

OwnerStatus owner_status(pid_t pid, std::uint64_t start_time) noexcept {
  if (pid <= 0) return OwnerStatus::kDead;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return OwnerStatus::kDead;
  const std::uint64_t now_start = process_start_time(pid);
  // A pid that exists but started at another time was reused by a new process.
  if (now_start == 0 || now_start != start_time) return OwnerStatus::kDead;
  return OwnerStatus::kAlive;
}

std::vector<std::string> list_segments(std::string_view prefix) {
  std::vector<std::string> names;
  const std::string dir(kShmDirectory);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  const std::string want = std::string(prefix) + ".";
  while (const dirent* e = ::readdir(d)) {
    const std::string_view n(e->d_name);
    if (n.size() > want.size() && n.substr(0, want.size()) == want) names.emplace_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

Result<void> unlink_segment(std::string_view name) {
  const std::string n(name);
  if (!bip::shared_memory_object::remove(n.c_str())) {
    return Error{Errc::kNotFound, fmt::format("no shared-memory segment \"{}\" to remove", n)};
  }
  return success();
}

Result<Segment> Segment::create(const SegmentOptions& options, std::uint32_t sequence) {
  auto geometry = check_options(options);
  if (!geometry) return geometry.error();
  const Geometry& g = geometry.value();
  const pid_t pid = ::getpid();
  const std::uint64_t start_time = process_start_time(pid);
  const std::string name = make_segment_name(options.prefix, pid, start_time, sequence);
  const std::uint64_t total = g.total_size();

  auto mapping = std::make_unique<Mapping>();
  try {
    // create_only is O_CREAT|O_EXCL: an existing object of that name is never reused. glibc's
    // shm_open adds O_NOFOLLOW, so a planted symlink is not followed.
    bip::shared_memory_object object(bip::create_only, name.c_str(), bip::read_write,
                                     bip::permissions(static_cast<int>(options.mode)));
    const int fd = object.get_mapping_handle().handle;
    // The mode passed to shm_open is filtered by the umask; set it exactly.
    if (::fchmod(fd, static_cast<mode_t>(options.mode)) != 0) {
      const int err = errno;
      bip::shared_memory_object::remove(name.c_str());
      return system_error("setting the mode of", name, err);
    }
    // Reserve every page now, so a full /dev/shm fails here with ENOSPC rather than with a
    // SIGBUS on the hot path when a page is first touched.
    if (const int err = ::posix_fallocate(fd, 0, static_cast<off_t>(total)); err != 0) {
      bip::shared_memory_object::remove(name.c_str());
      return Error{err == ENOSPC ? Errc::kNoSpace : Errc::kSystem,
                   fmt::format("reserving {} bytes for shared-memory segment \"{}\" in {} failed: "
                               "{}",
                               total, name, kShmDirectory, std::strerror(err))};
    }
    mapping->region = bip::mapped_region(object, bip::read_write, 0, total);
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::already_exists_error) {
      return Error{Errc::kExists, fmt::format("shared-memory segment \"{}\" exists already", name)};
    }
    bip::shared_memory_object::remove(name.c_str());
    return system_error("creating", name, e.get_native_error());
  }

  auto* base = static_cast<unsigned char*>(mapping->region.get_address());
  // The pages are fresh from fallocate and read as zero; only non-zero fields are written.
  auto* h = new (base) SegmentHeader;  // NOLINT: placement on zeroed shared memory
  h->layout_version = kLayoutVersion;
  h->header_size = sizeof(SegmentHeader);
  h->total_size = total;
  h->series_offset = g.series_offset();
  h->series_capacity = g.series_capacity;
  h->series_entry_size = sizeof(SeriesEntry);
  h->strings_offset = g.strings_offset();
  h->strings_size = g.strings_size;
  h->ring_count = g.ring_count;
  h->rings_offset = g.rings_offset();
  h->ring_capacity = g.ring_capacity;
  h->ring_header_size = sizeof(RingHeader);
  h->ring_stride = g.ring_stride();
  h->slots_offset = g.slots_offset();
  h->owner_pid = pid;
  h->owner_uid = ::getuid();
  h->owner_start_time = start_time;
  h->created_realtime_ns = clock_ns(CLOCK_REALTIME);
  h->created_monotonic_ns = clock_ns(CLOCK_MONOTONIC);
  h->created_ticks = now_ticks();
  h->clock_source = static_cast<std::uint32_t>(kEventClock);
  const std::string service = options.service.empty() ? program_name() : options.service;
  const std::size_t service_len = std::min(service.size(), kMaxServiceNameBytes);
  std::memcpy(h->service_name, service.data(), service_len);
  h->service_name_len = static_cast<std::uint32_t>(service_len);
  h->default_overflow = static_cast<std::uint8_t>(options.default_overflow);
  h->sample_keep_one_in = options.sample_keep_one_in;
  h->state.store(static_cast<std::uint32_t>(SegmentState::kActive), std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < g.ring_count; ++i) {
    auto* ring = new (base + g.rings_offset() + i * g.ring_stride()) RingHeader;  // NOLINT
    // A distinct, non-zero xorshift seed per ring.
    ring->rng_state =
        (std::uint64_t{0x9E3779B97F4A7C15ULL} * (i + 1)) ^ static_cast<std::uint64_t>(pid);
    if (ring->rng_state == 0) ring->rng_state = 1;
  }
  // release: publishes every field above; pairs with the acquire load in validate_segment.
  h->magic.store(kMagic, std::memory_order_release);
  return Segment(std::move(mapping), name, Access::kReadWrite, g);
}

Result<Segment> Segment::attach(std::string_view name, Access access) {
  const std::string n(name);
  auto mapping = std::make_unique<Mapping>();
  try {
    const auto mode = access == Access::kReadWrite ? bip::read_write : bip::read_only;
    bip::shared_memory_object object(bip::open_only, n.c_str(), mode);
    bip::offset_t size = 0;
    // A creator sizes the object right after creating it: empty or short may mean "not yet".
    if (!object.get_size(size) || size <= 0) {
      return Error{Errc::kNotReady, fmt::format("shared-memory segment \"{}\" is empty", n)};
    }
    if (static_cast<std::uint64_t>(size) < sizeof(SegmentHeader)) {
      return Error{Errc::kNotReady,
                   fmt::format("shared-memory segment \"{}\" is {} bytes, smaller than a header "
                               "({} bytes)",
                               n, size, sizeof(SegmentHeader))};
    }
    // The identity of the file actually mapped (not of whatever the name leads to later).
    struct stat st {};
    if (::fstat(object.get_mapping_handle().handle, &st) != 0) {
      return system_error("inspecting", n, errno);
    }
    mapping->file =
        FileIdentity{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                     st.st_uid, st.st_mode, static_cast<std::uint64_t>(st.st_size)};
    mapping->region = bip::mapped_region(object, mode);
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::not_found_error) {
      return Error{Errc::kNotFound, fmt::format("no shared-memory segment \"{}\"", n)};
    }
    return system_error("opening", n, e.get_native_error());
  }
  // Guarded before the first read, so a file truncated from now on cannot kill the reader.
  auto guard = GuardedMapping::guard(mapping->region.get_address(), mapping->region.get_size());
  if (!guard) {
    return Error{guard.error().code, fmt::format("segment \"{}\": {}", n, guard.error().message)};
  }
  mapping->guard = std::move(guard).value();
  auto geometry = validate_segment(mapping->region.get_address(), mapping->region.get_size());
  if (!geometry) {
    return Error{geometry.error().code,
                 fmt::format("segment \"{}\": {}", n, geometry.error().message)};
  }
  return Segment(std::move(mapping), n, access, geometry.value());
}

Result<Segment> Segment::view(void* base, std::size_t size) {
  if (base == nullptr || reinterpret_cast<std::uintptr_t>(base) % alignof(SegmentHeader) != 0) {
    return Error{
        Errc::kInvalidOptions,
        fmt::format("a segment view needs memory aligned to {} bytes", alignof(SegmentHeader))};
  }
  auto geometry = validate_segment(base, size);
  if (!geometry) return geometry.error();
  auto mapping = std::make_unique<Mapping>();
  mapping->view_base = base;
  mapping->view_size = size;
  return Segment(std::move(mapping), std::string(), Access::kReadWrite, geometry.value());
}

Result<Geometry> validate_segment(const void* base, std::size_t size) {
  if (size < sizeof(SegmentHeader)) {
    return Error{Errc::kInvalidSegment,
                 fmt::format("{} bytes is smaller than a segment header ({} bytes)", size,
                             sizeof(SegmentHeader))};
  }
  const auto* h = static_cast<const SegmentHeader*>(base);
  // acquire: pairs with the creator's release store of magic; the header is complete after it.
  const std::uint64_t magic = h->magic.load(std::memory_order_acquire);
  if (magic == 0) {
    return Error{Errc::kNotReady, "the segment is still being created (magic not set)"};
  }
  if (magic != kMagic) {
    return Error{
        Errc::kInvalidSegment,
        fmt::format("not a shmstats segment (magic 0x{:016x}, expected 0x{:016x})", magic, kMagic)};
  }
  if (h->layout_version != kLayoutVersion) {
    return Error{Errc::kVersionMismatch,
                 fmt::format("segment layout version is {}; this build reads version {}",
                             h->layout_version, kLayoutVersion)};
  }
  auto invalid = [](std::string_view what, std::uint64_t value, std::uint64_t expected) {
    return Error{Errc::kInvalidSegment,
                 fmt::format("{} is {}, expected {}", what, value, expected)};
  };
  if (h->header_size != sizeof(SegmentHeader)) {
    return invalid("header size", h->header_size, sizeof(SegmentHeader));
  }
  if (h->series_entry_size != sizeof(SeriesEntry)) {
    return invalid("series entry size", h->series_entry_size, sizeof(SeriesEntry));
  }
  if (h->ring_header_size != sizeof(RingHeader)) {
    return invalid("ring header size", h->ring_header_size, sizeof(RingHeader));
  }
  SegmentOptions o;
  o.ring_count = h->ring_count;
  o.ring_capacity = h->ring_capacity;
  o.series_capacity = h->series_capacity;
  o.strings_size = h->strings_size;
  o.default_overflow = static_cast<Overflow>(h->default_overflow);
  o.sample_keep_one_in = h->sample_keep_one_in;
  auto g = check_options(o);
  if (!g) return Error{Errc::kInvalidSegment, "segment geometry: " + g.error().message};
  const Geometry& geo = g.value();
  if (h->series_offset != geo.series_offset()) {
    return invalid("series offset", h->series_offset, geo.series_offset());
  }
  if (h->strings_offset != geo.strings_offset()) {
    return invalid("string pool offset", h->strings_offset, geo.strings_offset());
  }
  if (h->rings_offset != geo.rings_offset()) {
    return invalid("rings offset", h->rings_offset, geo.rings_offset());
  }
  if (h->ring_stride != geo.ring_stride()) {
    return invalid("ring stride", h->ring_stride, geo.ring_stride());
  }
  if (h->slots_offset != geo.slots_offset()) {
    return invalid("slots offset", h->slots_offset, geo.slots_offset());
  }
  if (h->total_size != geo.total_size()) {
    return invalid("total size", h->total_size, geo.total_size());
  }
  if (geo.total_size() > size) {
    return Error{
        Errc::kInvalidSegment,
        fmt::format("segment claims {} bytes but only {} are mapped", geo.total_size(), size)};
  }
  if (h->service_name_len > kMaxServiceNameBytes) {
    return invalid("service name length", h->service_name_len, kMaxServiceNameBytes);
  }
  if (h->clock_source != static_cast<std::uint32_t>(ClockSource::kTsc) &&
      h->clock_source != static_cast<std::uint32_t>(ClockSource::kMonotonicNs)) {
    return Error{Errc::kInvalidSegment, fmt::format("unknown clock source {}", h->clock_source)};
  }
  return geo;
}

Segment::Segment(std::unique_ptr<Mapping> mapping, std::string name, Access access,
                 Geometry geometry)
    : mapping_(std::move(mapping)), name_(std::move(name)), access_(access), geometry_(geometry) {}
Segment::Segment(Segment&&) noexcept = default;
Segment& Segment::operator=(Segment&&) noexcept = default;
Segment::~Segment() = default;

std::size_t Segment::mapped_size() const noexcept { return mapping_->size(); }

const FileIdentity& Segment::file() const noexcept { return mapping_->file; }

std::int64_t Segment::current_file_size() const noexcept {
  if (name_.empty() || mapping_->file.inode == 0) return -1;
  const std::string path = std::string(kShmDirectory) + "/" + name_;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 ||
      static_cast<std::uint64_t>(st.st_ino) != mapping_->file.inode ||
      static_cast<std::uint64_t>(st.st_dev) != mapping_->file.device) {
    return -1;
  }
  return static_cast<std::int64_t>(st.st_size);
}

std::uint64_t Segment::truncation_faults() const noexcept { return mapping_->guard.faults(); }

std::uint64_t Segment::first_truncation_fault_offset() const noexcept {
  return mapping_->guard.first_fault_offset();
}

SegmentHeader& Segment::header() const noexcept {
  return *static_cast<SegmentHeader*>(mapping_->address());
}

RingHeader& Segment::ring_header(std::uint32_t index) const noexcept {
  auto* base = static_cast<unsigned char*>(mapping_->address());
  return *reinterpret_cast<RingHeader*>(base + geometry_.rings_offset() +
                                        std::uint64_t{index} * geometry_.ring_stride());
}

Event* Segment::ring_slots(std::uint32_t index) const noexcept {
  auto* base = static_cast<unsigned char*>(mapping_->address());
  return reinterpret_cast<Event*>(base + geometry_.slots_offset() +
                                  std::uint64_t{index} * geometry_.slots_bytes());
}

RingWriter Segment::ring_writer(std::uint32_t index) const noexcept {
  return RingWriter(&ring_header(index), ring_slots(index), geometry_.ring_capacity);
}

RingReader Segment::ring_reader(std::uint32_t index) const noexcept {
  return RingReader(&ring_header(index), ring_slots(index), geometry_.ring_capacity);
}

SeriesEntry& Segment::series_entry(std::uint32_t id) const noexcept {
  auto* base = static_cast<unsigned char*>(mapping_->address());
  return *reinterpret_cast<SeriesEntry*>(base + geometry_.series_offset() +
                                         std::uint64_t{id} * sizeof(SeriesEntry));
}

char* Segment::strings() const noexcept {
  auto* base = static_cast<char*>(mapping_->address());
  return base + geometry_.strings_offset();
}

SegmentState Segment::state() const noexcept {
  return static_cast<SegmentState>(header().state.load(std::memory_order_acquire));
}

std::string Segment::service() const {
  const auto& h = header();
  const std::size_t len = std::min<std::size_t>(h.service_name_len, kMaxServiceNameBytes);
  return std::string(h.service_name, len);
}

std::uint32_t Segment::series_count() const noexcept {
  // acquire: pairs with the producer's release store after publishing the entry.
  return std::min(header().series_count.load(std::memory_order_acquire), geometry_.series_capacity);
}

Result<SeriesInfo> Segment::read_series(std::uint32_t id) const {
  if (id >= series_count()) {
    return Error{
        Errc::kInvalidSegment,
        fmt::format("series id {} is not below the published count {}", id, series_count())};
  }
  SeriesEntry& e = series_entry(id);
  // acquire: pairs with the producer's release store of state after filling the entry.
  if (e.state.load(std::memory_order_acquire) != kSeriesPublished) {
    return Error{Errc::kInvalidSegment, fmt::format("series {} is not published", id)};
  }
  // Each field is loaded once and the text copied before it is checked: a hostile process may
  // rewrite the entry while we read it, and a value checked in one load but used from another
  // (an offset, a length) would read outside the string pool.
  const std::uint32_t entry_id = read_once(e.id);
  const std::uint32_t text_offset = read_once(e.text_offset);
  const std::uint16_t text_len = read_once(e.text_len);
  const std::uint8_t name_len = read_once(e.name_len);
  const std::uint8_t kind = read_once(e.kind);
  const std::uint8_t tag_count = read_once(e.tag_count);
  const std::uint8_t overflow = read_once(e.overflow);
  if (entry_id != id) {
    return Error{Errc::kInvalidSegment,
                 fmt::format("series entry {} says it is id {}", id, entry_id)};
  }
  if (kind < 1 || kind > kMaxKind || overflow > kMaxOverflow) {
    return Error{Errc::kInvalidSegment,
                 fmt::format("series {} has kind {} and overflow {}", id, kind, overflow)};
  }
  if (std::uint64_t{text_offset} + text_len > geometry_.strings_size) {
    return Error{Errc::kInvalidSegment,
                 fmt::format("series {} text [{}, +{}) runs past the string pool ({} bytes)", id,
                             text_offset, text_len, geometry_.strings_size)};
  }
  std::string text(text_len, '\0');
  std::memcpy(text.data(), strings() + text_offset, text_len);
  auto decoded = decode_series_text(text, name_len, tag_count);
  if (!decoded) {
    return Error{decoded.error().code, fmt::format("series {}: {}", id, decoded.error().message)};
  }
  SeriesInfo info;
  info.id = id;
  info.kind = static_cast<Kind>(kind);
  info.overflow = static_cast<Overflow>(overflow);
  info.name = std::string(decoded.value().name);
  for (std::size_t i = 0; i < decoded.value().tag_count; ++i) {
    info.tags.emplace_back(decoded.value().tags[i].key, decoded.value().tags[i].value);
  }
  return info;
}

RingStats Segment::ring_stats(std::uint32_t index) const noexcept {
  const RingHeader& r = ring_header(index);
  RingStats s;
  s.state = static_cast<RingState>(r.state.load(std::memory_order_acquire));
  s.owner_tid = r.owner_tid.load(std::memory_order_relaxed);
  // Tail first, then head (see RingReader::poll) so an honest ring never shows tail < head.
  s.tail = r.tail.load(std::memory_order_acquire);
  s.head = r.head.load(std::memory_order_acquire);
  s.pushed = r.pushed.load(std::memory_order_relaxed);
  s.high_water = r.high_water.load(std::memory_order_relaxed);
  s.claims = r.claims.load(std::memory_order_relaxed);
  s.folded = r.folded.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < kDropReasonCount; ++i) {
    s.dropped[i] = r.dropped[i].load(std::memory_order_relaxed);
  }
  return s;
}

SegmentCounters Segment::counters() const noexcept {
  const SegmentHeader& h = header();
  SegmentCounters c;
  for (std::size_t i = 0; i < kDropReasonCount; ++i) {
    c.dropped[i] = h.dropped[i].load(std::memory_order_relaxed);
  }
  c.folded_no_ring = h.folded_no_ring.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < c.series_rejected.size(); ++i) {
    c.series_rejected[i] = h.series_rejected[i].load(std::memory_order_relaxed);
  }
  return c;
}

}  // namespace shmstats::shm
