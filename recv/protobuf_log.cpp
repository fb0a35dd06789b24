#include "recv/protobuf_log.h"

#include <fmt/format.h>
#include <google/protobuf/stubs/logging.h>

#include <atomic>
#include <mutex>
#include <string>

#include "common/rate_limited_log.h"

namespace shmstats::recv {
namespace {

constexpr std::size_t kMaxMessageBytes = 200;

std::atomic<std::uint64_t> g_messages{0};
common::RateLimiter g_limiter{1, kProtobufLogInterval};
std::mutex g_mutex;
std::FILE* g_out = stderr;  // guarded by g_mutex

const char* level_name(google::protobuf::LogLevel level) {
  switch (level) {
    case google::protobuf::LOGLEVEL_INFO:
      return "INFO";
    case google::protobuf::LOGLEVEL_WARNING:
      return "WARNING";
    case google::protobuf::LOGLEVEL_ERROR:
      return "ERROR";
    case google::protobuf::LOGLEVEL_FATAL:
      return "FATAL";
  }
  return "LOG";
}

// protobuf's message with control bytes replaced and cut to a bounded length.
std::string printable(const std::string& message) {
  std::string out = message.substr(0, kMaxMessageBytes);
  for (auto& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (message.size() > kMaxMessageBytes) out += "...";
  return out;
}

void limited_log_handler(google::protobuf::LogLevel level, const char* /*filename*/, int /*line*/,
                         const std::string& message) {
  g_messages.fetch_add(1, std::memory_order_relaxed);
  // A FATAL message is always written (protobuf aborts after it) and is not counted as admitted
  // or held back.
  const common::RateLimiter::Decision decision = level == google::protobuf::LOGLEVEL_FATAL
                                                     ? common::RateLimiter::Decision{true, 0}
                                                     : g_limiter.admit();
  if (!decision.write) return;
  std::string line =
      fmt::format("shmstats-recv: protobuf {}: {}", level_name(level), printable(message));
  if (decision.suppressed_before > 0) {
    line += fmt::format(" ({} more protobuf messages since the last one written)",
                        decision.suppressed_before);
  }
  line += '\n';
  std::lock_guard lock(g_mutex);
  std::fwrite(line.data(), 1, line.size(), g_out);
  std::fflush(g_out);
}

}  // namespace

void install_protobuf_log_limit(std::chrono::nanoseconds interval, std::FILE* out) {
  g_limiter.set_window(std::chrono::duration_cast<common::RateLimiter::Clock::duration>(interval));
  {
    std::lock_guard lock(g_mutex);
    g_out = out;
  }
  google::protobuf::SetLogHandler(limited_log_handler);
}

std::uint64_t protobuf_log_messages() noexcept {
  return g_messages.load(std::memory_order_relaxed);
}

std::uint64_t protobuf_log_suppressed() noexcept { return g_limiter.suppressed_total(); }

}  // namespace shmstats::recv
