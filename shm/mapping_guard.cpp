#include "shm/mapping_guard.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace shmstats::shm {
namespace {

enum SlotState : std::uint32_t { kFree = 0, kBusy = 1, kActive = 2 };

struct Slot {
  // kFree -> kBusy (claimed by guard(), or being released) -> kActive (the handler may use it).
  std::atomic<std::uint32_t> state{kFree};
  std::atomic<std::uintptr_t> begin{0};
  std::atomic<std::uintptr_t> end{0};
  std::atomic<std::uint64_t> faults{0};
  std::atomic<std::uint64_t> first_fault_offset{0};
};

// Zero-initialised static storage: no constructor runs after the handler could need it.
std::array<Slot, kMaxGuardedMappings> g_slots;
std::atomic<std::uint64_t> g_faults_total{0};
std::atomic<bool> g_installed{false};
std::uintptr_t g_page_size = 4096;  // written once by the install, before the handler exists
struct sigaction g_previous {};     // the same
std::mutex g_install_mutex;

static_assert(std::atomic<std::uintptr_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

// Restores the disposition SIGBUS had before the install, for a fault that is not ours. Returning
// then re-executes the access, which faults again and meets that disposition; a SIGBUS sent with
// kill() (si_code <= 0) is not re-raised by the access, so it is sent again, to act once the
// handler returns (SIGBUS is blocked until then).
void pass_on(const siginfo_t* info) noexcept {
  ::sigaction(SIGBUS, &g_previous, nullptr);
  if (info == nullptr || info->si_code <= 0) ::raise(SIGBUS);
}

// Why a system call in a signal handler is acceptable here: mmap is not on POSIX's list of
// async-signal-safe functions because a libc may keep bookkeeping around it, but on Linux it is
// one system call with no user-space state, and we make it as a raw syscall (no libc wrapper, no
// sanitizer interceptor). It replaces exactly the one page that faulted, inside a range this
// process mapped and registered, so it cannot disturb any other mapping; the range stays mapped
// (and registered) until its GuardedMapping is destroyed and the region unmapped, which happens
// on the thread that reads it, never while that thread is inside a read. errno is saved and
// restored, the slots are lock-free atomics, and nothing allocates or locks.
void on_sigbus(int /*sig*/, siginfo_t* info, void* /*context*/) {
  const int saved_errno = errno;
  const auto addr = info != nullptr ? reinterpret_cast<std::uintptr_t>(info->si_addr) : 0;
  // si_code > 0: raised by the kernel for an access (BUS_ADRERR: past the end of the file).
  if (info != nullptr && info->si_code > 0) {
    for (Slot& slot : g_slots) {
      // acquire: pairs with the release store of kActive in guard(); begin and end are set.
      if (slot.state.load(std::memory_order_acquire) != kActive) continue;
      const std::uintptr_t begin = slot.begin.load(std::memory_order_relaxed);
      if (addr < begin || addr >= slot.end.load(std::memory_order_relaxed)) continue;
      const std::uintptr_t page = addr & ~(g_page_size - 1);
      const long mapped = ::syscall(SYS_mmap, page, g_page_size, PROT_READ | PROT_WRITE,
                                    MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (mapped == -1) break;
      if (slot.faults.fetch_add(1, std::memory_order_relaxed) == 0) {
        slot.first_fault_offset.store(addr - begin, std::memory_order_relaxed);
      }
      g_faults_total.fetch_add(1, std::memory_order_relaxed);
      errno = saved_errno;
      return;
    }
  }
  pass_on(info);
  errno = saved_errno;
}

}  // namespace

Result<void> install_mapping_fault_handler() {
  std::lock_guard lock(g_install_mutex);
  if (g_installed.load(std::memory_order_relaxed)) return success();
  const long page = ::sysconf(_SC_PAGESIZE);
  if (page > 0) g_page_size = static_cast<std::uintptr_t>(page);
  struct sigaction action {};
  action.sa_sigaction = on_sigbus;
  action.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&action.sa_mask);
  if (::sigaction(SIGBUS, &action, &g_previous) != 0) {
    return Error{Errc::kSystem,
                 fmt::format("installing the SIGBUS handler failed: {}", std::strerror(errno))};
  }
  g_installed.store(true, std::memory_order_relaxed);
  return success();
}

bool mapping_fault_handler_installed() noexcept {
  return g_installed.load(std::memory_order_relaxed);
}

std::uint64_t mapping_faults_total() noexcept {
  return g_faults_total.load(std::memory_order_relaxed);
}

Result<GuardedMapping> GuardedMapping::guard(const void* base, std::size_t size) {
  const auto begin = reinterpret_cast<std::uintptr_t>(base);
  for (std::size_t i = 0; i < g_slots.size(); ++i) {
    Slot& slot = g_slots[i];
    std::uint32_t expected = kFree;
    if (!slot.state.compare_exchange_strong(expected, kBusy, std::memory_order_acquire,
                                            std::memory_order_relaxed)) {
      continue;
    }
    slot.begin.store(begin, std::memory_order_relaxed);
    slot.end.store(begin + size, std::memory_order_relaxed);
    slot.faults.store(0, std::memory_order_relaxed);
    slot.first_fault_offset.store(0, std::memory_order_relaxed);
    // release: the range is complete before the handler can match it; pairs with its acquire.
    slot.state.store(kActive, std::memory_order_release);
    return GuardedMapping(static_cast<int>(i));
  }
  return Error{Errc::kSystem, fmt::format("{} segments are mapped already, the most this process "
                                          "guards against truncation",
                                          kMaxGuardedMappings)};
}

GuardedMapping::GuardedMapping(GuardedMapping&& other) noexcept : slot_(other.slot_) {
  other.slot_ = -1;
}

GuardedMapping& GuardedMapping::operator=(GuardedMapping&& other) noexcept {
  if (this != &other) {
    release();
    slot_ = other.slot_;
    other.slot_ = -1;
  }
  return *this;
}

GuardedMapping::~GuardedMapping() { release(); }

void GuardedMapping::release() noexcept {
  if (slot_ < 0) return;
  Slot& slot = g_slots[static_cast<std::size_t>(slot_)];
  // The handler skips a slot that is not kActive; the range is cleared only after that.
  slot.state.store(kBusy, std::memory_order_relaxed);
  slot.begin.store(0, std::memory_order_relaxed);
  slot.end.store(0, std::memory_order_relaxed);
  // release: the slot is clean before guard() can claim it again; pairs with its acquire CAS.
  slot.state.store(kFree, std::memory_order_release);
  slot_ = -1;
}

std::uint64_t GuardedMapping::faults() const noexcept {
  if (slot_ < 0) return 0;
  return g_slots[static_cast<std::size_t>(slot_)].faults.load(std::memory_order_relaxed);
}

std::uint64_t GuardedMapping::first_fault_offset() const noexcept {
  if (slot_ < 0) return 0;
  return g_slots[static_cast<std::size_t>(slot_)].first_fault_offset.load(
      std::memory_order_relaxed);
}

}  // namespace shmstats::shm
