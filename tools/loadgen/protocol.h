// The lines a worker writes to its stdout pipe and the parent reads:
//   progress <events pushed so far>      about every 250 ms, for the parent's progress line
//   result <WorkerReport as JSON>        once, after its threads have joined
//   error <message>                      instead of a result, then it exits 1
// and the stop flag both sides share: set by SIGINT/SIGTERM (and, in a worker, by the parent's
// death), it makes a worker stop pushing and report what it pushed, and a parent forward the stop.
#pragma once

#include <string>
#include <string_view>

namespace shmstats::tools::loadgen {

inline constexpr std::string_view kProgressPrefix = "progress ";
inline constexpr std::string_view kResultPrefix = "result ";
inline constexpr std::string_view kErrorPrefix = "error ";

// `text` with line breaks turned into spaces and trailing spaces removed: one protocol or stderr
// line.
std::string one_line(std::string text);

// Writes all of `text` to stdout and flushes; only one thread of a process writes there.
void emit(const std::string& text);

// SIGINT and SIGTERM set the stop flag (a second one takes the default action, so a stuck run can
// still be interrupted); SIGPIPE is ignored.
void install_stop_handlers();
bool stop_requested() noexcept;
void request_stop() noexcept;

}  // namespace shmstats::tools::loadgen
