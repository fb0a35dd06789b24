#include "tools/loadgen/proc_usage.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

namespace shmstats::tools::loadgen {

std::optional<ProcUsage> read_proc_usage(pid_t pid) {
  ProcUsage usage;
  {
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string line;
    if (!std::getline(stat, line)) return std::nullopt;
    // The command (field 2) may hold spaces: fields are counted after its closing parenthesis.
    const auto close = line.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    double utime = 0;
    double stime = 0;
    for (int i = 3; i <= 15 && (rest >> field); ++i) {
      if (i == 14) utime = std::strtod(field.c_str(), nullptr);
      if (i == 15) stime = std::strtod(field.c_str(), nullptr);
    }
    usage.cpu_s = (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string key;
  double kb = 0;
  std::string unit;
  while (status >> key) {
    if (key == "VmRSS:" || key == "RssAnon:" || key == "RssShmem:") {
      status >> kb >> unit;
      const double mb = kb / 1024.0;
      if (key == "VmRSS:") usage.rss_mb = mb;
      if (key == "RssAnon:") usage.rss_anon_mb = mb;
      if (key == "RssShmem:") usage.rss_shmem_mb = mb;
    }
    status.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return usage;
}

}  // namespace shmstats::tools::loadgen
