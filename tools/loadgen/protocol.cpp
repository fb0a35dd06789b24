#include "tools/loadgen/protocol.h"

#include <signal.h>

#include <atomic>
#include <cstdio>

namespace shmstats::tools::loadgen {
namespace {

// A lock-free atomic store is async-signal-safe.
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void on_stop_signal(int /*sig*/) { g_stop.store(true, std::memory_order_relaxed); }

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  // A second signal takes the default action, so a stuck run can still be interrupted.
  sa.sa_flags = static_cast<int>(SA_RESETHAND);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

std::string one_line(std::string text) {
  for (auto& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

// Writes all of `text` to stdout and flushes; only one thread of a process writes there.
void emit(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

bool stop_requested() noexcept { return g_stop.load(std::memory_order_relaxed); }

void request_stop() noexcept { g_stop.store(true, std::memory_order_relaxed); }

}  // namespace shmstats::tools::loadgen
