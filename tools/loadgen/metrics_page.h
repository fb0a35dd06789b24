// What a scenario reads from the collector's and the receiver's /metrics pages: the page itself
// (parsed by common/prometheus_text.h) and the histograms in it, as cumulative buckets whose
// differences and quantiles give the latency of an interval.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "common/prometheus_text.h"

namespace shmstats::tools::loadgen {

using MetricsPage = std::vector<common::prometheus::Sample>;

// GET /metrics of a daemon on 127.0.0.1:`port`; an empty page when it does not answer (counted
// by the caller).
MetricsPage scrape(std::uint16_t port);

// A histogram as (upper bound in seconds, cumulative count) pairs, ascending, the last +inf.
using Cumulative = std::vector<std::pair<double, double>>;
Cumulative prom_histogram(const MetricsPage& samples, std::string_view bucket_name);
// Bucket counts of `later` minus `earlier` (same bounds; `earlier` may be empty).
Cumulative histogram_delta(const Cumulative& later, const Cumulative& earlier);
// The q-quantile (0..1) in seconds, interpolated linearly inside its bucket; a quantile that
// falls in the +inf bucket is reported as the last finite bound. nullopt without samples.
std::optional<double> histogram_quantile(const Cumulative& histogram, double q);

}  // namespace shmstats::tools::loadgen
