// The prometheus output's keys and factory (collector/exporters/registry.h).
#include "collector/exporters/prometheus/keys.h"
#include "collector/exporters/prometheus/prometheus.h"
#include "collector/exporters/registry.h"

namespace shmstats::collector::outputs {

const ExporterType& prometheus() {
  static const ExporterType type = [] {
    const PrometheusOptions defaults;
    ExporterType t{
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
                 .default_value = duration_text(defaults.interval),
                 .help = "interval of sets' distinct counts and of expiry checks",
                 .min = 100,
                 .max = 3'600'000},
            },
        .create = [](const OptionValues& v,
                     const ExporterContext& context) -> shm::Result<std::unique_ptr<Exporter>> {
          PrometheusOptions o;
          o.name = context.instance_name;
          o.view.host = context.host;
          o.listen = v.text("listen");
          o.interval = v.duration("interval");
          if (auto r = apply_aggregation_keys(v, o.stage, o.view); !r) return r.error();
          auto e = PrometheusExporter::create(std::move(o));
          if (!e) return e.error();
          return std::unique_ptr<Exporter>(std::move(e).value());
        }};
    for (auto& key : aggregation_keys()) t.options.push_back(std::move(key));
    return t;
  }();
  return type;
}

}  // namespace shmstats::collector::outputs
