// Readiness and stopping notices for systemd's Type=notify services, written by hand (no
// libsystemd): one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for
// the abstract namespace). Outside systemd the variable is unset and nothing is sent.
#pragma once

#include <string>
#include <string_view>

namespace shmstats::common {

enum class NotifyResult {
  kSent,
  kNoSocket,  // NOTIFY_SOCKET unset or empty: not started by systemd (or by a test standing in)
  kFailed,    // the socket could not be reached; `error` says why
};

// Sends `state` ("READY=1", "STOPPING=1", ...) to systemd. Any thread; a few system calls.
NotifyResult notify_systemd(std::string_view state, std::string* error = nullptr);

}  // namespace shmstats::common
