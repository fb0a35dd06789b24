#include "collector/exporters/registry.h"

namespace shmstats::collector {

const std::vector<OptionSpec>& common_output_options() {
  // Empty defaults: filled from the global keys when an output is configured (config.cpp).
  static const std::vector<OptionSpec> options = {
      {.key = kCommonNameKey,
       .kind = OptionKind::kName,
       .help = "instance name, the exporter label on /metrics (default: the type, then -2, -3...)",
       .max = 64},
      {.key = kCommonQueueKey,
       .kind = OptionKind::kUint,
       .help = "batches this output may queue before it drops (default: exporter_queue)",
       .min = 1,
       .max = 100000},
      {.key = kCommonBreakerFailuresKey,
       .kind = OptionKind::kUint,
       .help = "consecutive failures that open its breaker (default: breaker_failures)",
       .min = 1,
       .max = 1000},
      {.key = kCommonBreakerOpenKey,
       .kind = OptionKind::kDuration,
       .help = "how long its breaker stays open (default: breaker_open)",
       .min = 1,
       .max = 3'600'000},
  };
  return options;
}

const std::vector<const ExporterType*>& exporter_types() {
  static const std::vector<const ExporterType*> types = {
#define SHMSTATS_OUTPUT(type) &outputs::type(),
#include "collector/exporters/outputs.inc"
#undef SHMSTATS_OUTPUT
  };
  return types;
}

const ExporterType* find_exporter_type(std::string_view type) {
  for (const ExporterType* t : exporter_types()) {
    if (t->type == type) return t;
  }
  return nullptr;
}

const OptionSpec* find_output_option(const ExporterType& type, std::string_view key) {
  for (const auto& o : type.options) {
    if (o.key == key) return &o;
  }
  for (const auto& o : common_output_options()) {
    if (o.key == key) return &o;
  }
  return nullptr;
}

}  // namespace shmstats::collector
