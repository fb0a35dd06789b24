#include "recv/protobuf_log.h"

#include <fmt/format.h>
#include <google/protobuf/stubs/logging.h>

#include <atomic>
#include <mutex>
#include <string>

namespace shmstats::recv {
namespace {

constexpr std::size_t kMaxMessageBytes = 200;

std::atomic<std::uint64_t> g_messages{0};
std::atomic<std::uint64_t> g_suppressed{0};
std::mutex g_mutex;
// Guarded by g_mutex.
std::FILE* g_out = stderr;
std::chrono::nanoseconds g_interval{kProtobufLogInterval};
std::chrono::steady_clock::time_point g_last_written{};
std::uint64_t g_held_back = 0;

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
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(g_mutex);
  const bool due = g_last_written == std::chrono::steady_clock::time_point{} ||
                   now - g_last_written >= g_interval;
  if (!due && level != google::protobuf::LOGLEVEL_FATAL) {
    ++g_held_back;
    g_suppressed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::string line =
      fmt::format("shmstats-recv: protobuf {}: {}", level_name(level), printable(message));
  if (g_held_back > 0) {
    line += fmt::format(" ({} more protobuf messages since the last one written)", g_held_back);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), g_out);
  std::fflush(g_out);
  g_last_written = now;
  g_held_back = 0;
}

}  // namespace

void install_protobuf_log_limit(std::chrono::nanoseconds interval, std::FILE* out) {
  {
    std::lock_guard lock(g_mutex);
    g_interval = interval;
    g_out = out;
  }
  google::protobuf::SetLogHandler(limited_log_handler);
}

std::uint64_t protobuf_log_messages() noexcept {
  return g_messages.load(std::memory_order_relaxed);
}

std::uint64_t protobuf_log_suppressed() noexcept {
  return g_suppressed.load(std::memory_order_relaxed);
}

}  // namespace shmstats::recv
