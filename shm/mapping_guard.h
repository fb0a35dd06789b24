// Surviving a segment file that shrinks under its readers.
//
// Whoever can write a segment's file (its owner, by bug or by malice) can ftruncate it after a
// reader mapped it; the reader's next access to a page past the new end of the file raises
// SIGBUS, whose default action kills the reader. The collector and shm-dump must not die of a
// producer's segment, so they install a SIGBUS handler once (install_mapping_fault_handler), and
// every Segment::attach registers its mapping here (GuardedMapping). A SIGBUS at an address inside
// a registered mapping maps a private zero page over the faulting page and returns: the access is
// retried and reads zeros (a write lands in the private page), and the mapping is marked
// faulted() for its owner to quarantine at its next check. A SIGBUS anywhere else gets the
// disposition that was in place before the install (default: the process dies with a core; under
// ASan: its report), so a real bug is not hidden.
//
// Concurrency: GuardedMapping may be made and destroyed on any thread; the handler runs on the
// faulting thread. The registry is a fixed array of slots claimed with CAS: the handler takes no
// lock, allocates nothing and touches only lock-free atomics. A mapping must stay mapped while it
// is registered (GuardedMapping is destroyed before the munmap).
#pragma once

#include <cstddef>
#include <cstdint>

#include "shm/result.h"

namespace shmstats::shm {

// Mappings guarded at once; an attach beyond this fails (a collector with 4096 segments attached
// is far beyond any host we run).
inline constexpr std::size_t kMaxGuardedMappings = 4096;

// Installs the process-wide SIGBUS handler (sigaction, SA_SIGINFO). Idempotent; cold path.
Result<void> install_mapping_fault_handler();
bool mapping_fault_handler_installed() noexcept;

// Pages the handler replaced with zero pages since the process started, over every mapping.
std::uint64_t mapping_faults_total() noexcept;

// One registered range [base, base + size). Move-only; unregisters on destruction.
class GuardedMapping {
 public:
  GuardedMapping() = default;
  // Registers the range; error kSystem (naming the limit) when every slot is taken.
  static Result<GuardedMapping> guard(const void* base, std::size_t size);
  GuardedMapping(GuardedMapping&& other) noexcept;
  GuardedMapping& operator=(GuardedMapping&& other) noexcept;
  GuardedMapping(const GuardedMapping&) = delete;
  GuardedMapping& operator=(const GuardedMapping&) = delete;
  ~GuardedMapping();

  bool guarding() const noexcept { return slot_ >= 0; }
  // Pages of this range the handler replaced (0 while the file kept its size).
  std::uint64_t faults() const noexcept;
  // Offset from base of the first fault, if any (for the quarantine reason).
  std::uint64_t first_fault_offset() const noexcept;

 private:
  explicit GuardedMapping(int slot) : slot_(slot) {}
  void release() noexcept;
  int slot_ = -1;
};

}  // namespace shmstats::shm
