#include "collector/source_check.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>

namespace shmstats::collector {

namespace {

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

shm::Result<shm::Segment> attach_checked(const std::string& name, const AttachPolicy& policy,
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
  return seg;
}

std::optional<Quarantine> truncation_fault(const shm::Segment& segment) {
  const std::uint64_t faults = segment.truncation_faults();
  if (faults == 0) return std::nullopt;
  return Quarantine{
      QuarantineReason::kTruncated,
      fmt::format("the file was truncated under the mapping: a read at offset {} of {} "
                  "mapped bytes was past its end (SIGBUS; {} zero pages mapped)",
                  segment.first_truncation_fault_offset(), segment.mapped_size(), faults)};
}

IntegrityCheck::IntegrityCheck(const shm::Segment& segment) {
  const shm::SegmentHeader& h = segment.header();
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
}

std::optional<Quarantine> IntegrityCheck::check(const shm::Segment& segment) {
  const std::int64_t size = segment.current_file_size();
  if (size >= 0 && static_cast<std::uint64_t>(size) < segment.mapped_size()) {
    return Quarantine{QuarantineReason::kTruncated,
                      fmt::format("the file was truncated under the mapping: it is {} bytes, {} "
                                  "were mapped",
                                  size, segment.mapped_size())};
  }
  const shm::SegmentHeader& h = segment.header();
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
    return Quarantine{QuarantineReason::kHeaderChanged,
                      fmt::format("the header changed since attach: {}", which)};
  }
  // acquire: pairs with the owner's release stores of state and series_count.
  const std::uint32_t state = h.state.load(std::memory_order_acquire);
  if (state < static_cast<std::uint32_t>(shm::SegmentState::kActive) ||
      state > static_cast<std::uint32_t>(shm::SegmentState::kClosed)) {
    return Quarantine{QuarantineReason::kCorruptState,
                      fmt::format("unknown segment state {}", state)};
  }
  const std::uint32_t series = h.series_count.load(std::memory_order_acquire);
  const std::uint32_t capacity = segment.geometry().series_capacity;
  if (series > capacity || series < last_series_count_) {
    return Quarantine{
        QuarantineReason::kCorruptState,
        fmt::format("series count is {} (was {}; capacity {}): ids are dense and never reused",
                    series, last_series_count_, capacity)};
  }
  last_series_count_ = series;
  const std::uint32_t strings = h.strings_used.load(std::memory_order_relaxed);
  if (strings > segment.geometry().strings_size) {
    return Quarantine{
        QuarantineReason::kCorruptState,
        fmt::format("string pool use is {} bytes of {}", strings, segment.geometry().strings_size)};
  }
  return std::nullopt;
}

}  // namespace shmstats::collector
