// Finds producer segments: inotify on the shared-memory directory for prompt attach, plus a full
// rescan every `rescan_interval` in case an event was missed (or inotify is unavailable).
// Drain thread only.
#pragma once

#include <chrono>
#include <string>
#include <unordered_set>
#include <vector>

namespace shmstats::collector {

class Discovery {
 public:
  Discovery(std::string prefix, std::chrono::milliseconds rescan_interval);
  ~Discovery();
  Discovery(const Discovery&) = delete;
  Discovery& operator=(const Discovery&) = delete;

  // Names with the prefix that are not in `known`, if inotify saw something or a rescan is due.
  // Never blocks.
  std::vector<std::string> poll(const std::unordered_set<std::string>& known);
  bool inotify_active() const noexcept { return fd_ >= 0; }

 private:
  bool drain_inotify();
  std::string prefix_;
  std::chrono::milliseconds rescan_interval_;
  std::chrono::steady_clock::time_point last_scan_{};
  int fd_ = -1;
};

}  // namespace shmstats::collector
