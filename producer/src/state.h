// Producer internals shared by client.cpp (cold path) and push.cpp (hot path).
//
// Concurrency
//   ClientState fields above `registry_mutex` are written when the Client is created (or, in a
//   forked child, re-created on the child's first push, while it has a single thread) and only
//   read afterwards. Registration takes registry_mutex. The hot path reads the state and the
//   calling thread's ThreadRing, never a lock.
#pragma once

#include <sys/types.h>

#include <array>
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
  std::array<std::uint8_t, shm::kMaxKind + 1> overflow_for_kind{};  // resolved kDefault

  std::mutex registry_mutex;                           // registration, fork re-creation
  std::unordered_map<std::string, std::uint32_t> ids;  // canonical text -> series id
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

// Re-creates the segment in a forked child (single-threaded at that point). False on failure.
bool recreate_after_fork(ClientState& st) noexcept;

// Live-client registry: thread exit and fork consult it, never the hot path.
void register_live(ClientState* st);
void unregister_live(ClientState* st);
// Marks `ring` retired if the client `uid` is still alive, atomically with respect to ~Client
// (which unregisters under the same lock before unmapping), so a late thread exit never writes
// into an unmapped segment.
void retire_if_live(std::uint64_t uid, shm::RingHeader* ring) noexcept;
std::uint64_t next_uid() noexcept;

void count_drop(shm::SegmentHeader* header, shm::DropReason reason) noexcept;

// Retires the rings bound by the calling thread for `st` (used by ~Client on its own thread).
void release_thread_bindings(const ClientState* st) noexcept;

}  // namespace shmstats::detail
