// The aggregation stage seen through the Prometheus data model: what the scrape page (prometheus
// output) writes and what remote-write sends, so both hold the same series under the same names.
//
// Each visible family has one name (names.h), one type and its series, each with its labels as
// they go out: tags mapped, `service` and `host` added (each switchable; a tag of the same name
// wins), values valid UTF-8 (other bytes are U+FFFD), sorted by name. Families are sorted by name
// and series by labels, so two views of one state are the same.
//
// Where mapping makes series meet, one rule decides, the same every time, and the others are left
// out and counted by reason:
//   kind_conflict   one family name from series of different types: the type of the lowest
//                   kind (counter, gauge, gauge delta, histogram, timing, set) keeps the name
//   reserved_name   a family named <histogram>_bucket, _sum or _count beside that histogram
//   duplicate       two series with the same mapped name and labels (as written): the one whose
//                   original service, name and tags sort first stays
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "collector/aggregate/stage.h"
#include "common/prometheus_text.h"

namespace shmstats::collector {

enum class HiddenReason : int { kKindConflict = 0, kReservedName = 1, kDuplicate = 2, kCount = 3 };
inline constexpr std::size_t kHiddenReasonCount = static_cast<std::size_t>(HiddenReason::kCount);
const char* to_string(HiddenReason reason) noexcept;

struct ViewOptions {
  bool service_label = true;
  bool host_label = true;
  std::string host;  // the host label's value
};

struct ViewSeries {
  const aggregate::SeriesState* state = nullptr;
  std::vector<std::pair<std::string, std::string>> labels;  // sorted by name, UTF-8
};

struct ViewFamily {
  std::string name;
  common::prometheus::MetricType type = common::prometheus::MetricType::kGauge;
  std::string help;  // "shmstats <kind> <name as pushed>"
  std::vector<ViewSeries> series;
};

// `hidden` receives, per reason, the series left out.
std::vector<ViewFamily> build_view(const aggregate::Stage& stage, const ViewOptions& options,
                                   std::uint64_t (&hidden)[kHiddenReasonCount]);

}  // namespace shmstats::collector
