// Builds collector Batches for exporter tests. Header-only; test code.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/metric.h"

namespace shmstats::testing {

class BatchBuilder {
 public:
  using Tags = std::vector<std::pair<std::string, std::string>>;

  // A series owned by the batch. `tags` must be sorted by key, as the collector delivers them.
  const model::SeriesDef* series(std::string name, shm::Kind kind, Tags tags = {},
                                 std::string service = {}) {
    auto def = std::make_shared<model::SeriesDef>();
    def->name = std::move(name);
    def->kind = kind;
    def->tags = std::move(tags);
    def->service = std::move(service);
    batch_.series.push_back(def);
    return def.get();
  }

  BatchBuilder& point(const model::SeriesDef* s, double value, float sample_rate = 1.0F) {
    return point(s, s->kind, value, sample_rate);
  }
  BatchBuilder& point(const model::SeriesDef* s, shm::Kind kind, double value,
                      float sample_rate = 1.0F) {
    batch_.points.push_back(model::Point{s, kind, value, sample_rate, next_time_ns_++});
    return *this;
  }
  BatchBuilder& aggregate(const model::SeriesDef* s, std::uint64_t count, double sum, double min,
                          double max, double last) {
    batch_.aggregates.push_back(model::Aggregate{s, count, sum, min, max, last, next_time_ns_++});
    return *this;
  }

  const model::Batch& batch() const { return batch_; }

 private:
  model::Batch batch_;
  std::int64_t next_time_ns_ = 1'700'000'000'000'000'000;
};

}  // namespace shmstats::testing
