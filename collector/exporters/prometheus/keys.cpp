#include "collector/exporters/prometheus/keys.h"

#include <fmt/format.h>

#include <string>

namespace shmstats::collector {
namespace {

std::string bounds_text(const aggregate::Bounds& bounds) {
  std::string text;
  for (const double b : bounds) text += (text.empty() ? "" : ",") + fmt::format("{}", b);
  return text;
}

const char* text_of(bool b) { return b ? "true" : "false"; }

}  // namespace

std::vector<OptionSpec> aggregation_keys() {
  const aggregate::StageOptions stage;
  const ViewOptions view;
  return {
      {.key = "expiry",
       .kind = OptionKind::kDuration,
       .default_value = duration_text(stage.expiry),
       .help = "a series not updated for this long is forgotten",
       .min = 1000,
       .max = 7 * 86'400'000ULL},
      {.key = "max_series",
       .kind = OptionKind::kUint,
       .default_value = std::to_string(stage.max_series),
       .help = "series held at most; events of further series are refused and counted",
       .min = 1,
       .max = 10'000'000},
      {.key = "max_set_members",
       .kind = OptionKind::kUint,
       .default_value = std::to_string(stage.max_set_members),
       .help = "distinct members a set holds per interval",
       .min = 1,
       .max = 10'000'000},
      {.key = "default_buckets",
       .kind = OptionKind::kText,
       .default_value = bounds_text(stage.default_bounds),
       .help = "bucket upper bounds of histograms and timings (timings in seconds)",
       .max = 4096,
       .check = [](const std::string& v) -> shm::Result<void> {
         auto b = aggregate::parse_bounds(v);
         if (!b) return b.error();
         return shm::success();
       }},
      {.key = "buckets",
       .kind = OptionKind::kText,
       .help = "per-name bounds, PATTERN=b1,b2;... (glob *, first match wins)",
       .max = 65536,
       .check = [](const std::string& v) -> shm::Result<void> {
         auto r = aggregate::parse_bucket_rules(v);
         if (!r) return r.error();
         return shm::success();
       }},
      {.key = "service_label",
       .kind = OptionKind::kBool,
       .default_value = text_of(view.service_label),
       .help = "add a service label (a tag named service wins)"},
      {.key = "host_label",
       .kind = OptionKind::kBool,
       .default_value = text_of(view.host_label),
       .help = "add a host label (a tag named host wins)"},
  };
}

shm::Result<void> apply_aggregation_keys(const OptionValues& v, aggregate::StageOptions& stage,
                                         ViewOptions& view) {
  stage.expiry = v.duration("expiry");
  stage.max_series = v.uint("max_series");
  stage.max_set_members = v.uint("max_set_members");
  auto bounds = aggregate::parse_bounds(v.text("default_buckets"));
  if (!bounds) return bounds.error();
  stage.default_bounds = std::move(bounds).value();
  auto rules = aggregate::parse_bucket_rules(v.text("buckets"));
  if (!rules) return rules.error();
  stage.rules = std::move(rules).value();
  view.service_label = v.boolean("service_label");
  view.host_label = v.boolean("host_label");
  return shm::success();
}

}  // namespace shmstats::collector
