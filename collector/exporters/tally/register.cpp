// The tally output's keys and factory (collector/exporters/registry.h).
#include "collector/exporters/registry.h"
#include "collector/exporters/tally/tally.h"

namespace shmstats::collector::outputs {
namespace {

// The defaults are those of the options the factory fills, written once there.
const TallyOptions kDefaults{};

}  // namespace

const ExporterType& tally() {
  static const ExporterType type{
      .type = "tally",
      .summary = "exact per-series totals in a JSON file, for checks",
      .short_key = "path",
      .options =
          {
              {.key = "path",
               .kind = OptionKind::kText,
               .help = "file the totals are written to (replaced on every flush)",
               .max = 4096,
               .required = true},
              {.key = "flush_interval",
               .kind = OptionKind::kDuration,
               .default_value = std::to_string(kDefaults.flush_interval.count()),
               .help = "how often the file is written, in ms or with a unit",
               .min = 10,
               .max = 3'600'000},
              {.key = "max_series",
               .kind = OptionKind::kUint,
               .default_value = std::to_string(kDefaults.max_series),
               .help = "series held at most; events of further series are dropped",
               .min = 1,
               .max = 10'000'000},
          },
      .create = [](const OptionValues& v,
                   const ExporterContext& context) -> shm::Result<std::unique_ptr<Exporter>> {
        TallyOptions o;
        o.name = context.instance_name;
        o.path = v.text("path");
        o.flush_interval = v.duration("flush_interval");
        o.max_series = v.uint("max_series");
        auto e = TallyExporter::create(std::move(o));
        if (!e) return e.error();
        return std::unique_ptr<Exporter>(std::move(e).value());
      }};
  return type;
}

}  // namespace shmstats::collector::outputs
