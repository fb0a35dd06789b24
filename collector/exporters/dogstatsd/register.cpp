// The dogstatsd output's keys and factory (collector/exporters/registry.h).
#include <fmt/format.h>

#include "collector/exporters/dogstatsd/dogstatsd.h"
#include "collector/exporters/registry.h"

namespace shmstats::collector::outputs {
namespace {

// The defaults are those of the options the factory fills, written once there.
const DogStatsdOptions kDefaults{};

const char* text_of(bool b) { return b ? "true" : "false"; }

}  // namespace

const ExporterType& dogstatsd() {
  static const ExporterType type{
      .type = "dogstatsd",
      .summary = "DogStatsD lines for the Datadog agent and StatsD servers",
      .short_key = "destination",
      .options =
          {
              {.key = "destination",
               .kind = OptionKind::kDestination,
               .help = "HOST:PORT, [IPV6]:PORT or unix:///path of the agent",
               .required = true},
              {.key = "max_bytes",
               .kind = OptionKind::kUint,
               .default_value = std::to_string(kDefaults.max_payload_bytes),
               .help = "datagram payload limit in bytes",
               .min = kDogStatsdMinPayloadBytes,
               .max = kDogStatsdMaxDatagramBytes},
              {.key = "multi_value",
               .kind = OptionKind::kBool,
               .default_value = text_of(kDefaults.multi_value),
               .help = "pack name:1:2:3 multi-value lines (the peer must accept them)"},
              {.key = "service_tag",
               .kind = OptionKind::kBool,
               .default_value = text_of(kDefaults.add_service_tag),
               .help = "add a service:<name> tag to every line"},
          },
      .create = [](const OptionValues& v,
                   const ExporterContext& context) -> shm::Result<std::unique_ptr<Exporter>> {
        DogStatsdOptions o;
        o.name = context.instance_name;
        o.destination = v.text("destination");
        o.max_payload_bytes = v.uint("max_bytes");
        o.multi_value = v.boolean("multi_value");
        o.add_service_tag = v.boolean("service_tag");
        o.breaker_failures = static_cast<std::uint32_t>(v.uint(kCommonBreakerFailuresKey));
        o.breaker_open = v.duration(kCommonBreakerOpenKey);
        auto e = DogStatsdExporter::create(std::move(o));
        if (!e) return e.error();
        return std::unique_ptr<Exporter>(std::move(e).value());
      }};
  return type;
}

}  // namespace shmstats::collector::outputs
