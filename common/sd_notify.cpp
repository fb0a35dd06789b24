#include "common/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace shmstats::common {

NotifyResult notify_systemd(std::string_view state, std::string* error) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || path[0] == '\0') return NotifyResult::kNoSocket;
  const std::size_t length = std::strlen(path);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (length >= sizeof(address.sun_path)) {
    if (error != nullptr) *error = "NOTIFY_SOCKET is longer than a unix socket path may be";
    return NotifyResult::kFailed;
  }
  std::memcpy(address.sun_path, path, length);
  // "@name": the abstract namespace, whose names start with a NUL byte and are not terminated.
  if (address.sun_path[0] == '@') address.sun_path[0] = '\0';
  const auto address_size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    if (error != nullptr) *error = std::string("socket: ") + std::strerror(errno);
    return NotifyResult::kFailed;
  }
  const ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                                reinterpret_cast<const sockaddr*>(&address), address_size);
  const int saved = errno;
  ::close(fd);
  if (sent < 0 || static_cast<std::size_t>(sent) != state.size()) {
    if (error != nullptr) *error = std::string("sendto NOTIFY_SOCKET: ") + std::strerror(saved);
    return NotifyResult::kFailed;
  }
  return NotifyResult::kSent;
}

}  // namespace shmstats::common
