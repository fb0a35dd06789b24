// How shmstats series become Prometheus names and labels (the table is in README, "prometheus").
//
// Metric names ([a-zA-Z_:][a-zA-Z0-9_:]*, snake_case for promtool's lint):
//   - '.', '-' and every other byte outside [A-Za-z0-9_] become '_'; runs of '_' become one, and
//     '_' at either end is dropped;
//   - camelCase becomes snake_case ("cacheHits" -> "cache_hits", "HTTPErrors" -> "http_errors");
//   - a leading digit gets the prefix "n_" ("5xx" -> "n_5xx"); an empty result is "unnamed";
//   - counters end in "_total" (added unless already there; "total" alone becomes "total_total");
//   - timings are seconds: a trailing unit word (ms, msec, millis, milliseconds, s, sec, secs,
//     seconds) is dropped and "_seconds" added ("db.query.ms" -> "db_query_seconds");
//   - sets are gauges of the distinct members of the last interval, named as given.
// Label names ([a-zA-Z_][a-zA-Z0-9_]*, not starting "__"): the same character and case mapping;
// a leading digit or a leading "__" gets the prefix "tag_"; "le" and "quantile" (reserved by
// histograms and summaries) become "tag_le" and "tag_quantile". Two keys of one series that map to
// the same name keep their order of original keys: the first takes the name, the next "_2", "_3".
#pragma once

#include <string>
#include <string_view>

#include "model/metric.h"

namespace shmstats::collector::prometheus {

// snake_case with only [a-z0-9_], no '_' at either end, no "__" (may be empty).
std::string snake_case(std::string_view text);
// The family name of series `name` of `kind`.
std::string metric_name(std::string_view name, model::Kind kind);
// A tag key as a label name (before the per-series collision rule).
std::string label_name(std::string_view key);

}  // namespace shmstats::collector::prometheus
