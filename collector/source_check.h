// Whether the collector may trust a producer segment: the attach policy (who may own it, with
// which mode), checked before and after mapping, and the integrity check of an attached segment
// (its immutable header, state, series count, string pool use and file size), whose failures
// quarantine it.
//
// Concurrency: an IntegrityCheck belongs to the drain thread, like the Source that holds it. The
// segment it reads is shared with a producer that may be hostile: every value read is checked.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shm/layout.h"
#include "shm/result.h"
#include "shm/segment.h"

namespace shmstats::collector {

// Why a segment was quarantined: refused at attach, or detached because it turned corrupt. Each
// reason has its own counter (shmstats_collector_segments_quarantined_by_reason_total).
enum class QuarantineReason {
  kForeignOwner,   // owned by a uid the policy does not allow
  kUnsafeMode,     // group- or world-writable, or not a regular file
  kInvalid,        // failed validation at attach (magic, layout version, geometry, size)
  kNeverReady,     // still without a published header after the grace period
  kCorruptRing,    // a ring's indices broke the ring invariant
  kHeaderChanged,  // an immutable header field (identity, geometry) changed since attach
  kCorruptState,   // state, series count or string pool use out of range, or going backwards
  kTruncated,      // the file shrank under the mapping
  kCount,
};
inline constexpr std::size_t kQuarantineReasonCount =
    static_cast<std::size_t>(QuarantineReason::kCount);
const char* to_string(QuarantineReason reason) noexcept;

struct Quarantine {
  QuarantineReason reason = QuarantineReason::kInvalid;
  std::string message;  // names the field or ring, and the values seen
};

// Who may own a segment the collector attaches to.
struct AttachPolicy {
  std::vector<uid_t> allowed_uids;    // empty: only the collector's own uid
  bool allow_group_writable = false;  // refuse 0660-style segments unless set
};

// Attaches segment `name` read-write if the policy allows its owner and mode, checked on the
// name before mapping and again on the file mapped. On an error, `refusal` (if given) receives
// the quarantine reason it stands for (kNeverReady for a header not yet published).
shm::Result<shm::Segment> attach_checked(const std::string& name, const AttachPolicy& policy,
                                         QuarantineReason* refusal = nullptr);

// Why the segment must be detached because a read touched a page past the end of its file (the
// fault handler put a zero page there); nullopt if none did.
std::optional<Quarantine> truncation_fault(const shm::Segment& segment);

// The immutable part of a segment's header (identity and geometry, up to `state`) as it was at
// attach, and the checks of the segment against it.
class IntegrityCheck {
 public:
  explicit IntegrityCheck(const shm::Segment& segment);

  // The owner and clock recorded at attach: a later rewrite of the header does not change them.
  pid_t owner_pid() const noexcept { return owner_pid_; }
  std::uint64_t owner_start_time() const noexcept { return owner_start_time_; }
  shm::ClockSource clock_source() const noexcept { return clock_source_; }

  // Why `segment` (the one given at construction) must be detached: a file that shrank under
  // the mapping, an immutable header field that changed, a state, series count or string pool
  // use out of range or going backwards. nullopt while it checks out.
  std::optional<Quarantine> check(const shm::Segment& segment);

 private:
  std::array<unsigned char, offsetof(shm::SegmentHeader, state)> identity_{};
  pid_t owner_pid_ = 0;
  std::uint64_t owner_start_time_ = 0;
  shm::ClockSource clock_source_ = shm::ClockSource::kTsc;
  std::uint32_t last_series_count_ = 0;
};

}  // namespace shmstats::collector
