#include "recv/writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace shmstats::recv {
namespace {

// A chunk is written with as few system calls as the kernel allows; the writer also joins chunks
// into buffers of about this size.
constexpr std::size_t kWriteBytes = 256U << 10;
// The receive thread wakes the writer early once this much is waiting.
constexpr std::size_t kWakeBytes = 64U << 10;
constexpr mode_t kFileMode = 0644;

}  // namespace

LineWriter::LineWriter(WriterOptions options)
    : options_(std::move(options)), thread_([this] { run(); }) {}

LineWriter::~LineWriter() { close(); }

bool LineWriter::try_push(std::string&& text, std::size_t lines) {
  bool wake = false;
  {
    const std::lock_guard lock(mutex_);
    if (closing_ || queued_lines_ + lines > options_.queue_capacity_lines ||
        queued_bytes_ + text.size() > kMaxQueueBytes) {
      queue_full_lines_.fetch_add(lines, std::memory_order_relaxed);
      return false;
    }
    queued_lines_ += lines;
    queued_bytes_ += text.size();
    wake = queued_bytes_ >= kWakeBytes;
    queue_.push_back(Chunk{std::move(text), lines});
    queue_depth_lines_.store(queued_lines_, std::memory_order_relaxed);
  }
  if (wake) wake_.notify_one();
  return true;
}

void LineWriter::close() {
  {
    const std::lock_guard lock(mutex_);
    closing_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0 && own_fd_) ::close(fd_);
  fd_ = -1;
}

WriterStats LineWriter::stats() const {
  WriterStats s;
  s.lines_written = lines_written_.load(std::memory_order_relaxed);
  s.write_errors = write_errors_.load(std::memory_order_relaxed);
  s.failed_lines = failed_lines_.load(std::memory_order_relaxed);
  s.queue_full_lines = queue_full_lines_.load(std::memory_order_relaxed);
  s.queue_depth_lines = queue_depth_lines_.load(std::memory_order_relaxed);
  return s;
}

void LineWriter::run() {
  std::vector<Chunk> batch;
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait_for(lock, options_.flush_interval,
                   [this] { return closing_ || queued_bytes_ >= kWakeBytes; });
    const bool last = closing_;
    batch.swap(queue_);
    queued_lines_ = 0;
    queued_bytes_ = 0;
    // The batch taken is no longer waiting; its lines are counted as written or failed below.
    queue_depth_lines_.store(0, std::memory_order_relaxed);
    lock.unlock();
    if (!batch.empty()) write_batch(batch);
    batch.clear();
    lock.lock();
    // Once closing_ is set try_push() refuses, so the queue taken above was the last one.
    if (last) break;
  }
}

bool LineWriter::ensure_open() {
  if (fd_ >= 0) return true;
  if (options_.path == "-") {
    fd_ = STDOUT_FILENO;
    own_fd_ = false;
    return true;
  }
  const int fd =
      ::open(options_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, kFileMode);
  if (fd < 0) {
    report_error("open", errno);
    return false;
  }
  fd_ = fd;
  own_fd_ = true;
  return true;
}

void LineWriter::write_batch(std::vector<Chunk>& batch) {
  std::size_t next = 0;
  std::string buffer;
  while (next < batch.size()) {
    // Join chunks into one buffer of about kWriteBytes; a bigger chunk goes alone.
    buffer.clear();
    std::size_t lines = 0;
    if (torn_line_) buffer += '\n';
    while (next < batch.size() &&
           (lines == 0 || buffer.size() + batch[next].text.size() <= kWriteBytes)) {
      buffer += batch[next].text;
      lines += batch[next].lines;
      ++next;
    }
    std::string_view rest(buffer);
    if (!ensure_open()) {
      failed_lines_.fetch_add(lines, std::memory_order_relaxed);
      continue;
    }
    while (!rest.empty()) {
      const ssize_t n = ::write(fd_, rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int err = n < 0 ? errno : EIO;
        report_error("write", err);
        // Lines not yet complete in the file are lost; a partial one is ended before the next.
        const auto written = buffer.size() - rest.size();
        const auto whole_lines_written = static_cast<std::size_t>(
            std::count(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(written),
                       '\n') -
            (torn_line_ && written > 0 ? 1 : 0));
        lines_written_.fetch_add(whole_lines_written, std::memory_order_relaxed);
        failed_lines_.fetch_add(lines - whole_lines_written, std::memory_order_relaxed);
        if (written > 0) torn_line_ = buffer[written - 1] != '\n';
        if (own_fd_) {
          // Reopen on the next batch: the file may have been replaced or the disk freed.
          ::close(fd_);
          fd_ = -1;
        }
        break;
      }
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
    if (rest.empty()) {
      torn_line_ = false;
      lines_written_.fetch_add(lines, std::memory_order_relaxed);
    }
  }
}

void LineWriter::report_error(const char* what, int err) {
  write_errors_.fetch_add(1, std::memory_order_relaxed);
  const common::RateLimiter::Decision decision = error_log_.admit();
  if (!decision.write) return;
  std::string line =
      fmt::format("shmstats-recv: {} {}: {}", what, options_.path == "-" ? "stdout" : options_.path,
                  std::strerror(err));
  if (decision.suppressed_before > 0) {
    line += fmt::format(" ({} more errors since the last report)", decision.suppressed_before);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace shmstats::recv
