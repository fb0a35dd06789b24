#include "tools/loadgen/daemon.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>

namespace shmstats::tools::loadgen {
namespace {

using Clock = std::chrono::steady_clock;
using Stream = common::Process::Stream;

}  // namespace

shm::Result<std::unique_ptr<Daemon>> Daemon::start(const std::string& what,
                                                   const std::vector<std::string>& argv,
                                                   const std::string& log_path) {
  common::SpawnOptions options;
  options.argv = argv;
  options.out = common::Redirect::pipe();
  options.err = common::Redirect::file(log_path);
  auto process = common::Process::spawn(options);
  if (!process) {
    return shm::Error{shm::Errc::kSystem, fmt::format("the {}: {}", what, process.error().message)};
  }
  return std::unique_ptr<Daemon>(new Daemon(what, std::move(process).value(), log_path));
}

Daemon::~Daemon() {
  if (!process_.exit_status()) {
    (void)process_.signal(SIGKILL);
    (void)process_.wait_for(kDaemonStopTimeout);
  }
}

shm::Result<std::uint16_t> Daemon::port_of(const std::string& kind) {
  const std::string want = "listening " + kind + " ";
  const auto deadline = Clock::now() + kDaemonStartTimeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const auto line =
        process_.read_line(Stream::kOut, std::max(left, std::chrono::milliseconds(0)));
    if (!line) break;
    if (line->rfind(want, 0) != 0) continue;
    const auto colon = line->rfind(':');
    unsigned port = 0;
    const char* end = line->data() + line->size();
    if (colon != std::string::npos &&
        std::from_chars(line->data() + colon + 1, end, port).ptr == end && port <= 65535) {
      return static_cast<std::uint16_t>(port);
    }
  }
  return shm::Error{shm::Errc::kSystem,
                    fmt::format("the {} announced no {} port within {} s (see {})", what_, kind,
                                kDaemonStartTimeout.count(), log_path_)};
}

int Daemon::stop(std::chrono::seconds timeout) {
  if (const auto& status = process_.exit_status()) return status->code();
  (void)process_.signal(SIGTERM);
  const auto status = process_.wait_for(timeout);
  return status ? status->code() : -1;
}

std::string find_binary(const std::string& given, const std::string& exe, const char* name,
                        const char* build_dir) {
  if (!given.empty()) return given;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink(exe, ec);
  const auto dir = (ec ? std::filesystem::path(exe) : self).parent_path();
  // Installed side by side, or the build tree (build/<preset>/tools/loadgen/shmstats-loadgen).
  for (const auto& candidate : {dir / name, dir / ".." / ".." / build_dir / name}) {
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.lexically_normal().string();
  }
  return (dir / name).string();
}

}  // namespace shmstats::tools::loadgen
