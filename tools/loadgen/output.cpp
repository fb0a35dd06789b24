#include "tools/loadgen/output.h"

#include <fmt/format.h>

#include <fstream>

#include "common/process.h"

namespace shmstats::tools::loadgen {
namespace {

using ojson = nlohmann::ordered_json;

// The columns of <name>.tsv, in order, as sample keys.
constexpr const char* kTsvColumns[] = {
    "t_s",          "offered_eps",       "delivered_eps",    "dropped_eps",
    "folded_eps",   "latency_p50_ms",    "latency_p99_ms",   "ring_fill_max",
    "datagrams_ps", "collector_cpu_pct", "collector_rss_mb", "producer_cpu_pct"};

}  // namespace

std::string tsv_of(const ojson& samples) {
  std::string out = "#";
  for (const char* c : kTsvColumns) out += fmt::format(" {}", c);
  out += '\n';
  for (const auto& s : samples) {
    std::string row;
    for (const char* c : kTsvColumns) {
      const ojson& v = s.at(c);
      row += row.empty() ? "" : "\t";
      // gnuplot skips "NaN" points: an interval without events has no latency.
      row += v.is_number() ? fmt::format("{:.6g}", v.get<double>()) : "NaN";
    }
    out += row + '\n';
  }
  return out;
}

std::string gnuplot_script(const std::string& name, const std::string& title) {
  return fmt::format(
      R"(# Plot of {0}.tsv: gnuplot {0}.gp writes {0}.png (columns: see the header of {0}.tsv).
set terminal pngcairo size 1100,1000 font ",10"
set output "{0}.png"
set datafile separator "\t"
set datafile missing "NaN"
set multiplot layout 3,1 title "{1}"
set grid
set key outside right top
set xlabel "seconds"
set ylabel "events/s"
set format y "%.1s%c"
plot "{0}.tsv" using 1:2 with lines lw 2 title "offered", \
     "" using 1:3 with lines lw 2 title "delivered", \
     "" using 1:4 with lines lw 2 title "dropped", \
     "" using 1:5 with lines lw 1 title "folded"
set ylabel "latency, ms"
set format y "%g"
set logscale y
plot "{0}.tsv" using 1:6 with linespoints pt 7 ps 0.5 title "p50", \
     "" using 1:7 with linespoints pt 7 ps 0.5 title "p99"
unset logscale y
set ylabel "percent"
set yrange [0:*]
plot "{0}.tsv" using 1:($8*100) with lines lw 2 title "max ring fill", \
     "" using 1:10 with lines lw 2 title "collector CPU", \
     "" using 1:12 with lines lw 1 title "producers CPU"
unset multiplot
)",
      name, title);
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  return static_cast<bool>(out);
}

std::string plot(const std::string& dir, const std::string& script) {
  common::SpawnOptions options;
  options.argv = {"gnuplot", script};
  options.search_path = true;
  options.working_dir = dir;
  options.out = common::Redirect::file("/dev/null");
  auto gnuplot = common::Process::spawn(options);
  if (!gnuplot) {
    return gnuplot.error().code == shm::Errc::kNotFound ? "gnuplot is not installed"
                                                        : "gnuplot failed";
  }
  if (!gnuplot.value().wait().success()) return "gnuplot failed";
  return "";
}

}  // namespace shmstats::tools::loadgen
