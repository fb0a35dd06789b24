// The asynchronous JSON Lines writer of shmstats-recv: the receive thread hands it whole lines and
// never waits for the disk; a writer thread appends them to the file (O_APPEND) or stdout.
//
// Concurrency: try_push() may be called from one or more threads (the receive thread); it only
// takes a mutex held for a queue splice, never for I/O. close() and the destructor belong to the
// owner. stats() may be called from any thread (the HTTP thread) and is a racy snapshot.
//
// Guarantees:
// - Lines reach the file at most flush_interval after try_push() accepted them (plus the write
//   itself); close() writes everything accepted before it returns.
// - When more than queue_capacity_lines lines (or kMaxQueueBytes) are waiting, try_push() drops
//   the new chunk and counts its lines as queue_full_lines.
// - A failed open or write is counted (write_errors), its lines are dropped (failed_lines) and a
//   line goes to stderr at most once per kLogInterval; the writer keeps going and reopens the file
//   on the next batch. A chunk is written whole or the writer ends the torn line with '\n' before
//   the next one, so one failure never glues two records together.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/rate_limited_log.h"

namespace shmstats::recv {

struct WriterOptions {
  std::string path = "-";  // a file to append to (created 0644 if missing), or "-" for stdout
  std::size_t queue_capacity_lines = 65536;
  std::chrono::milliseconds flush_interval{50};
};

struct WriterStats {
  std::uint64_t lines_written = 0;
  std::uint64_t write_errors = 0;      // failed open() or write() calls
  std::uint64_t failed_lines = 0;      // lines lost to those errors
  std::uint64_t queue_full_lines = 0;  // lines try_push() dropped because the queue was full
  std::uint64_t queue_depth_lines = 0;
};

class LineWriter {
 public:
  static constexpr std::size_t kMaxQueueBytes = 64U << 20;
  static constexpr std::chrono::seconds kLogInterval{5};

  explicit LineWriter(WriterOptions options);  // starts the writer thread; opens lazily
  LineWriter(const LineWriter&) = delete;
  LineWriter& operator=(const LineWriter&) = delete;
  ~LineWriter();

  // Queues `text`, which holds `lines` complete lines. Never blocks on I/O. False: dropped
  // (queue full, or closed), and counted.
  bool try_push(std::string&& text, std::size_t lines);

  // Writes everything queued, stops the thread and closes the file. Idempotent.
  void close();

  WriterStats stats() const;

 private:
  struct Chunk {
    std::string text;
    std::size_t lines = 0;
  };

  void run();
  void write_batch(std::vector<Chunk>& batch);
  bool ensure_open();
  void report_error(const char* what, int err);

  const WriterOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Chunk> queue_;  // guarded by mutex_
  std::size_t queued_lines_ = 0;
  std::size_t queued_bytes_ = 0;
  bool closing_ = false;

  // Writer thread only.
  int fd_ = -1;
  bool own_fd_ = false;
  bool torn_line_ = false;  // a failed write left a partial line in the file
  common::RateLimiter error_log_{1, kLogInterval};  // one line per kLogInterval

  std::atomic<std::uint64_t> lines_written_{0};
  std::atomic<std::uint64_t> write_errors_{0};
  std::atomic<std::uint64_t> failed_lines_{0};
  std::atomic<std::uint64_t> queue_full_lines_{0};
  std::atomic<std::uint64_t> queue_depth_lines_{0};

  std::thread thread_;  // last: starts after every member above is built
};

}  // namespace shmstats::recv
