// The tally output: exact per-series totals written to a JSON file on every flush. It exists to
// check a pipeline end to end (tests, and an operator comparing the collector's view with a
// producer's counts) and to show the output seam in its smallest whole form: its own keys, a
// buffering state flushed on its own deadline, counters of its own on /metrics, and events
// reported merged rather than sent.
//
// File (replaced atomically: written to PATH.tmp, then renamed):
//   {"flushes": n, "series": [{"service": s, "name": n, "tags": {k: v}, "kind": "counter",
//     "points": count, "sum": s, "folded_count": c, "folded_sum": fs}, ...]}
// sorted by service, name, tags, kind. Totals only grow while the collector runs.
//
// Concurrency: an Exporter; its runner's thread calls send and flush. describe_metrics reads
// atomics.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "collector/exporter.h"
#include "shm/result.h"

namespace shmstats::collector {

struct TallyOptions {
  std::string name = "tally";
  std::string path;
  std::chrono::milliseconds flush_interval{1000};
  std::size_t max_series = 100000;  // beyond it, events of new series are dropped (series_cap)
};

class TallyExporter final : public Exporter {
 public:
  static shm::Result<std::unique_ptr<TallyExporter>> create(TallyOptions options);

  const std::string& name() const override { return options_.name; }
  SendResult send(const Batch& batch) override;
  SendResult flush() override;
  std::chrono::milliseconds flush_interval() const override { return options_.flush_interval; }
  void describe_metrics(std::vector<ExporterSample>& out) const override;

 private:
  explicit TallyExporter(TallyOptions options) : options_(std::move(options)) {}
  using Key =
      std::tuple<std::string, std::string, std::vector<std::pair<std::string, std::string>>, int>;
  struct Totals {
    std::uint64_t points = 0;
    double sum = 0;
    std::uint64_t folded_count = 0;
    double folded_sum = 0;
  };
  Totals* totals_for(const model::SeriesDef& def);

  TallyOptions options_;
  std::map<Key, Totals> totals_;
  std::uint64_t flushes_ = 0;
  std::atomic<std::uint64_t> series_{0};
  std::atomic<std::uint64_t> writes_ok_{0};
  std::atomic<std::uint64_t> writes_failed_{0};
  std::atomic<std::uint64_t> dropped_series_cap_{0};
};

}  // namespace shmstats::collector
