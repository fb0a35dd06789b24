// The configuration keys of the aggregation stage and of the Prometheus view, shared by every
// output built on them (prometheus, remote_write): declared once, with their defaults taken from
// aggregate::StageOptions and ViewOptions.
#pragma once

#include <vector>

#include "collector/aggregate/stage.h"
#include "collector/exporters/prometheus/view.h"
#include "collector/options.h"
#include "shm/result.h"

namespace shmstats::collector {

// expiry, max_series, max_set_members, default_buckets, buckets, service_label, host_label.
std::vector<OptionSpec> aggregation_keys();
// Fills `stage` and `view` (not view.host) from the values of those keys.
shm::Result<void> apply_aggregation_keys(const OptionValues& values, aggregate::StageOptions& stage,
                                         ViewOptions& view);

}  // namespace shmstats::collector
