// The prometheus output's keys and factory (collector/exporters/registry.h).
#include <fmt/format.h>

#include "collector/aggregate/stage.h"
#include "collector/exporters/prometheus/prometheus.h"
#include "collector/exporters/registry.h"

namespace shmstats::collector::outputs {
namespace {

std::string bounds_text(const aggregate::Bounds& bounds) {
  std::string text;
  for (const double b : bounds) text += (text.empty() ? "" : ",") + fmt::format("{}", b);
  return text;
}

std::string ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; }

// The defaults are those of the options the factory fills, written once there.
const PrometheusOptions kDefaults{};

}  // namespace

const ExporterType& prometheus() {
  static const ExporterType type{
      .type = "prometheus",
      .summary = "a Prometheus scrape endpoint of aggregated series",
      .short_key = "listen",
      .options =
          {
              {.key = "listen",
               .kind = OptionKind::kListen,
               .help = "HOST:PORT the scrape endpoint (GET /metrics) listens on",
               .required = true},
              {.key = "interval",
               .kind = OptionKind::kDuration,
               .default_value = ms(kDefaults.interval),
               .help = "interval of sets' distinct counts and of expiry checks",
               .min = 100,
               .max = 3'600'000},
              {.key = "expiry",
               .kind = OptionKind::kDuration,
               .default_value = ms(kDefaults.stage.expiry),
               .help = "a series not updated for this long leaves the page",
               .min = 1000,
               .max = 7 * 86'400'000ULL},
              {.key = "max_series",
               .kind = OptionKind::kUint,
               .default_value = std::to_string(kDefaults.stage.max_series),
               .help = "series held at most; events of further series are refused and counted",
               .min = 1,
               .max = 10'000'000},
              {.key = "max_set_members",
               .kind = OptionKind::kUint,
               .default_value = std::to_string(kDefaults.stage.max_set_members),
               .help = "distinct members a set holds per interval",
               .min = 1,
               .max = 10'000'000},
              {.key = "default_buckets",
               .kind = OptionKind::kText,
               .default_value = bounds_text(kDefaults.stage.default_bounds),
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
               .default_value = kDefaults.view.service_label ? "true" : "false",
               .help = "add a service label (a tag named service wins)"},
              {.key = "host_label",
               .kind = OptionKind::kBool,
               .default_value = kDefaults.view.host_label ? "true" : "false",
               .help = "add a host label (a tag named host wins)"},
          },
      .create = [](const OptionValues& v,
                   const ExporterContext& context) -> shm::Result<std::unique_ptr<Exporter>> {
        PrometheusOptions o;
        o.name = context.instance_name;
        o.view.host = context.host;
        o.listen = v.text("listen");
        o.interval = v.duration("interval");
        o.stage.expiry = v.duration("expiry");
        o.stage.max_series = v.uint("max_series");
        o.stage.max_set_members = v.uint("max_set_members");
        auto bounds = aggregate::parse_bounds(v.text("default_buckets"));
        if (!bounds) return bounds.error();
        o.stage.default_bounds = std::move(bounds).value();
        auto rules = aggregate::parse_bucket_rules(v.text("buckets"));
        if (!rules) return rules.error();
        o.stage.rules = std::move(rules).value();
        o.view.service_label = v.boolean("service_label");
        o.view.host_label = v.boolean("host_label");
        auto e = PrometheusExporter::create(std::move(o));
        if (!e) return e.error();
        return std::unique_ptr<Exporter>(std::move(e).value());
      }};
  return type;
}

}  // namespace shmstats::collector::outputs
