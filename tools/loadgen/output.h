// A scenario's files: <name>.tsv (one row per sample), <name>.gp (the gnuplot script) and
// <name>.png (drawn by gnuplot when it is installed); <name>.json is written by the runner.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace shmstats::tools::loadgen {

// The samples as tab-separated columns, a "#" header line first; a missing value is "NaN".
std::string tsv_of(const nlohmann::ordered_json& samples);
// The script that draws <name>.png from <name>.tsv under `title`.
std::string gnuplot_script(const std::string& name, const std::string& title);
// Writes `text` to `path` (truncating); false if it could not.
bool write_file(const std::string& path, const std::string& text);
// Runs gnuplot in `dir` on `script` if it is installed. Returns "" or why there is no plot.
std::string plot(const std::string& dir, const std::string& script);

}  // namespace shmstats::tools::loadgen
