// DeliveryTracker: which batches every output is done with.
//
// The drain loop calls expect(id, outputs) before it offers batch `id` to that many runners; each
// runner reports once per batch through CompletionSink::batch_done (sent, merged or dropped, any
// way). A batch is complete when every output reported it. completed_through() is the highest id
// such that every batch up to it is complete: what issue #14 commits ring positions on (the
// points of those batches carry their model::Origin). Batches complete out of order (one output is
// slower than another); the watermark waits for the oldest.
//
// Concurrency: expect from the drain thread; batch_done from runner threads (and the drain thread
// for a batch refused by a full queue); the readers from any thread. One mutex; the critical
// sections are a map lookup.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "collector/exporter.h"

namespace shmstats::collector {

class DeliveryTracker final : public CompletionSink {
 public:
  void expect(std::uint64_t batch_id, std::size_t outputs);
  void batch_done(const std::string& exporter, const Batch& batch,
                  const BatchOutcome& outcome) noexcept override;

  // Every batch with an id up to this one is complete (0: none yet).
  std::uint64_t completed_through() const;
  // Batches handed to outputs that not every output has finished.
  std::uint64_t in_flight() const;
  std::uint64_t completed_total() const;
  // Waits until every batch expected so far is complete, or the deadline passes.
  bool wait_idle(std::chrono::steady_clock::time_point deadline) const;

 private:
  void advance_locked();

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::map<std::uint64_t, std::size_t> remaining_;  // batch id -> outputs still working on it
  std::uint64_t highest_expected_ = 0;
  std::uint64_t completed_through_ = 0;
  std::uint64_t completed_total_ = 0;
};

}  // namespace shmstats::collector
