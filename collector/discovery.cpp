#include "collector/discovery.h"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "shm/segment.h"

namespace shmstats::collector {

Discovery::Discovery(std::string prefix, std::chrono::milliseconds rescan_interval)
    : prefix_(std::move(prefix)), rescan_interval_(rescan_interval) {
  fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ >= 0) {
    const std::string dir(shm::kShmDirectory);
    if (::inotify_add_watch(fd_, dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
      spdlog::warn("inotify on {} failed ({}); relying on the rescan every {} ms", dir,
                   std::strerror(errno), rescan_interval_.count());
      ::close(fd_);
      fd_ = -1;
    }
  } else {
    spdlog::warn("inotify unavailable ({}); relying on the rescan every {} ms",
                 std::strerror(errno), rescan_interval_.count());
  }
}

Discovery::~Discovery() {
  if (fd_ >= 0) ::close(fd_);
}

bool Discovery::drain_inotify() {
  if (fd_ < 0) return false;
  bool relevant = false;
  alignas(inotify_event) std::array<char, 8192> buf{};
  for (;;) {
    const ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf.data() + off);
      if (ev->mask & IN_Q_OVERFLOW) relevant = true;
      if (ev->len > 0 && std::string_view(ev->name).rfind(prefix_ + ".", 0) == 0) relevant = true;
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  }
  return relevant;
}

std::vector<std::string> Discovery::poll(const std::unordered_set<std::string>& known) {
  const auto now = std::chrono::steady_clock::now();
  const bool seen = drain_inotify();
  if (!seen && now - last_scan_ < rescan_interval_) return {};
  last_scan_ = now;
  std::vector<std::string> fresh;
  for (auto& name : shm::list_segments(prefix_)) {
    if (known.count(name) == 0) fresh.push_back(std::move(name));
  }
  return fresh;
}

}  // namespace shmstats::collector
