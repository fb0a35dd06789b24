#include "tools/loadgen/catalogue.h"

namespace shmstats::tools::loadgen {

const std::vector<ScenarioSpec>& scenarios() {
  // Rates are the issue's; processes and threads are chosen for a 2-core machine: several of
  // each, few enough that pacing, not the scheduler, sets the offered rate.
  static const std::vector<ScenarioSpec> kScenarios = {
      {"baseline", 10'000, 30, 2, 2, 16, "10 k events/s for 30 s"},
      {"high", 100'000, 60, 2, 2, 16, "100 k events/s for 60 s"},
      {"stress", 500'000, 30, 4, 2, 16, "500 k events/s for 30 s"},
      {"burst", 1'000'000, 10, 4, 2, 16, "1 M events/s for 10 s"},
      {"segments", 6'400, 20, 64, 1, 16,
       "64 producer processes at 100 events/s each for 20 s (collector memory with 64 segments)"},
  };
  return kScenarios;
}

std::vector<std::string> scenario_names() {
  std::vector<std::string> names;
  for (const auto& s : scenarios()) names.emplace_back(s.name);
  return names;
}

const ScenarioSpec* find_scenario(std::string_view name) {
  for (const auto& s : scenarios()) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

}  // namespace shmstats::tools::loadgen
