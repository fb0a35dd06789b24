// Producer internals shared by client.cpp (cold path) and push.cpp (hot path).
//
// Concurrency
//   ClientState fields above `registry_mutex` are written when the Client is created (or, in a
//   forked child, re-created on the child's first push, while it has a single thread) and only
//   read afterwards. Registration takes registry_mutex. The hot path reads the state and the
//   calling thread's ThreadRing, never a lock.
//
// A disabled client (Client::create_or_disabled could not make a segment, or a forked child could
// not make its own) has no segment: `disabled` is set, `creation_error` says why, no thread ever
// binds to it, and every push ends in push_unbound, which counts it in `local_dropped` (relaxed
// fetch_add: no lock, no system call) and returns false.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>

#include "shm/layout.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "shm/series.h"
#include "shmstats/shmstats.h"

namespace shmstats::detail {

struct ClientState {
  // Identity of this incarnation: unique in the process, renewed in a forked child so that
  // thread-local ring bindings made for the parent's segment no longer match.
  std::uint64_t uid = 0;
  pid_t owner_pid = 0;
  shm::SegmentOptions options;
  std::unique_ptr<shm::Segment> segment;
  shm::SegmentHeader* header = nullptr;
  std::uint32_t ring_count = 0;
  std::uint32_t ring_capacity = 0;
  std::uint64_t priority_limit = 0;    // normal events may fill the ring up to here
  std::uint64_t sample_threshold = 0;  // sampling starts above this fill
  std::uint32_t keep_one_in = 1;
  float sample_rate = 1.0F;
  bool stamp_events = true;  // Timestamps::kProducer; else events carry ts 0 (collector stamps)
  std::array<std::uint8_t, shm::kMaxKind + 1> overflow_for_kind{};  // resolved kDefault
  std::uint32_t series_capacity = 0;  // registration limits, also kept by a disabled client
  std::uint32_t strings_size = 0;
  LogSink log;  // Options::log; empty: stderr

  // Set (release) once, after creation_error is written; never cleared. Read relaxed by the
  // push path, acquire by Client::creation_error.
  std::atomic<bool> disabled{false};
  Error creation_error{ErrorCode::kSystem, {}};
  // Drops counted in the process because there is no segment to count them in (kDisabled).
  std::array<std::atomic<std::uint64_t>, shm::kDropReasonCount> local_dropped{};

  struct Registered {
    std::uint32_t id = 0;
    shm::Kind kind = shm::Kind::kCounter;
  };
  std::mutex registry_mutex;                        // registration, fork re-creation
  std::unordered_map<std::string, Registered> ids;  // canonical text -> series
  std::atomic<std::uint32_t> series_registered{0};  // ids.size(), for stats() without the lock
  std::uint32_t strings_used = 0;
  std::uint32_t segments_created = 0;
};

// The calling thread's binding to a client's ring. Trivially destructible so the hot path's
// thread_local access needs no initialisation guard; a separate object retires rings at exit.
struct ThreadRing {
  std::uint64_t uid = 0;  // ClientState::uid this binding is for; 0 = none
  ClientState* state = nullptr;
  shm::RingWriter writer;  // invalid: no ring was free (values fold, see push_without_ring)
  std::uint32_t ring_index = 0;
  std::uint32_t retry_countdown = 0;  // pushes without a ring until the next claim attempt
};

inline constexpr std::size_t kThreadBindings = 4;  // clients a thread can push to without rebinding

// Registers (or finds) a series. Cold path; any thread.
Result<std::uint32_t> register_series(ClientState& st, shm::Kind kind, std::string_view name,
                                      std::span<const shm::TagView> tags);

// Re-creates the segment in a forked child (single-threaded at that point). On failure the
// client is disabled (one log line) and false is returned.
bool recreate_after_fork(ClientState& st) noexcept;

// Disables `st` for `error`: stores it, writes the one log line, and sets `disabled`. Cold.
void disable(ClientState& st, Error error) noexcept;

// Live-client registry: thread exit and fork consult it, never the hot path.
void register_live(ClientState* st);
void unregister_live(ClientState* st);
// Marks `ring` retired if the client `uid` is still alive, atomically with respect to ~Client
// (which unregisters under the same lock before unmapping), so a late thread exit never writes
// into an unmapped segment.
void retire_if_live(std::uint64_t uid, shm::RingHeader* ring) noexcept;
std::uint64_t next_uid() noexcept;

// Counts a drop in the segment (any thread), or in the process if the client has no segment.
void count_drop(ClientState& st, shm::DropReason reason) noexcept;

// Retires the rings bound by the calling thread for `st` (used by ~Client on its own thread).
void release_thread_bindings(const ClientState* st) noexcept;

}  // namespace shmstats::detail
