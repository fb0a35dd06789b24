#include "tools/loadgen/series.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <optional>

namespace shmstats::tools::loadgen {

std::vector<SeriesSpec> make_series(const Config& config) {
  static constexpr std::array<shm::Kind, kShards> kCycle = {
      shm::Kind::kCounter, shm::Kind::kTiming, shm::Kind::kHistogram, shm::Kind::kGauge};
  std::optional<shm::Kind> only;
  for (const auto kind : kCycle) {
    if (config.kinds == shm::to_string(kind)) only = kind;
  }
  std::vector<SeriesSpec> specs;
  specs.reserve(static_cast<std::size_t>(std::max(config.series, 0)));
  for (int k = 0; k < config.series; ++k) {
    SeriesSpec spec;
    spec.name = fmt::format("loadgen.s{}", k);
    spec.shard = std::to_string(k % kShards);
    spec.kind = only ? *only : kCycle[static_cast<std::size_t>(k % kShards)];
    specs.push_back(std::move(spec));
  }
  return specs;
}

std::uint64_t value_tenths(shm::Kind kind, std::uint64_t round) noexcept {
  switch (kind) {
    case shm::Kind::kCounter:
      return (round % 100 + 1) * 10;
    case shm::Kind::kTiming:
    case shm::Kind::kHistogram:
      return round % 1000;
    case shm::Kind::kGauge:
      return (round % 500) * 10;
    case shm::Kind::kGaugeDelta:
    case shm::Kind::kSet:
      break;
  }
  return 10;
}

SeriesTally& SeriesTally::operator+=(const SeriesTally& other) noexcept {
  pushed += other.pushed;
  accepted += other.accepted;
  refused += other.refused;
  pushed_sum_tenths += other.pushed_sum_tenths;
  accepted_sum_tenths += other.accepted_sum_tenths;
  return *this;
}

}  // namespace shmstats::tools::loadgen
