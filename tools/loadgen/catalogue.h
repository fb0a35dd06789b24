// The load scenarios by name: the rate, duration, processes, threads and series of each, and
// what it measures. --scenario NAME sets what the command line does not.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace shmstats::tools::loadgen {

struct ScenarioSpec {
  std::string_view name;
  double rate = 0;  // events/s over every thread
  double duration_s = 0;
  int processes = 1;
  int threads = 1;
  int series = 16;
  std::string_view about;
};

const std::vector<ScenarioSpec>& scenarios();
std::vector<std::string> scenario_names();
const ScenarioSpec* find_scenario(std::string_view name);

}  // namespace shmstats::tools::loadgen
