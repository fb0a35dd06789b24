#include "tools/loadgen/parent.h"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>

#include "common/process.h"
#include "tools/loadgen/protocol.h"

namespace shmstats::tools::loadgen {
namespace {

using Clock = std::chrono::steady_clock;
using Stream = common::Process::Stream;

constexpr auto kParentProgressInterval = std::chrono::seconds(1);

struct WorkerProcess {
  int index = 0;
  common::Process process;
  std::uint64_t progress = 0;
  std::optional<WorkerReport> report;
  std::string error;
  common::ExitStatus status;
};

shm::Result<WorkerProcess> spawn_worker(const std::string& exe, const Config& config, int index) {
  common::SpawnOptions options;
  options.program = exe;
  options.argv = {"shmstats-loadgen"};
  const auto args = worker_args(config, index);
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.out = common::Redirect::pipe();
  auto process = common::Process::spawn(options);
  if (!process) {
    return shm::Error{process.error().code,
                      fmt::format("worker {}: {}", index, process.error().message)};
  }
  return WorkerProcess{index, std::move(process).value(), 0, std::nullopt, {}, {}};
}

void handle_line(WorkerProcess& w, std::string_view line) {
  if (line.starts_with(kProgressPrefix)) {
    w.progress =
        std::strtoull(std::string(line.substr(kProgressPrefix.size())).c_str(), nullptr, 10);
  } else if (line.starts_with(kResultPrefix)) {
    auto report = parse_report(line.substr(kResultPrefix.size()));
    if (report) {
      w.report = std::move(report).value();
    } else {
      w.error = report.error().message;
    }
  } else if (line.starts_with(kErrorPrefix)) {
    w.error = std::string(line.substr(kErrorPrefix.size()));
  }
}

// Reads what is available and handles the complete lines; false at end of file (or on a read
// error), when the pipe is closed.
bool read_worker(WorkerProcess& w) {
  const bool open = w.process.read_available(Stream::kOut);
  while (const auto line = w.process.take_line(Stream::kOut)) handle_line(w, *line);
  return open;
}

// The once-a-second progress line on stderr: events pushed so far and the rate since the last line.
struct ProgressLine {
  Clock::time_point start;
  Clock::time_point last_at;
  std::uint64_t last_pushed = 0;

  void print(const WorkerProgress& progress, Clock::time_point now) {
    const double dt = std::chrono::duration<double>(now - last_at).count();
    std::fprintf(stderr, "shmstats-loadgen: %.1f s: pushed %llu, offered %.0f events/s\n",
                 std::chrono::duration<double>(now - start).count(),
                 static_cast<unsigned long long>(progress.pushed),
                 dt > 0 ? static_cast<double>(progress.pushed - last_pushed) / dt : 0.0);
    last_pushed = progress.pushed;
    last_at = now;
  }
};

WorkerProgress progress_of(const std::vector<WorkerProcess>& workers) {
  WorkerProgress p;
  p.all_reported = true;
  for (const auto& w : workers) {
    if (w.process.open(Stream::kOut)) p.pids.push_back(w.process.pid());
    if (!w.report) {
      p.all_reported = false;
      p.pushed += w.progress;
      continue;
    }
    for (const auto& t : w.report->series) p.pushed += t.pushed;
  }
  return p;
}

// Waits for the worker; returns its user + system CPU seconds.
double reap(WorkerProcess& w) {
  w.process.close(Stream::kOut);
  w.status = w.process.wait();
  return w.status.cpu_s;
}

}  // namespace

shm::Result<Summary> run_workers(const Config& config, const std::string& exe,
                                 const std::function<void(const WorkerProgress&)>& on_tick) {
  install_stop_handlers();
  const auto start = Clock::now();
  std::vector<WorkerProcess> workers;
  for (int i = 0; i < config.processes; ++i) {
    auto spawned = spawn_worker(exe, config, i);
    if (!spawned) {
      for (auto& w : workers) {
        (void)w.process.signal(SIGTERM);
        (void)reap(w);
      }
      return spawned.error();
    }
    workers.push_back(std::move(spawned).value());
  }

  auto last_result = start;
  auto next_tick = start + kParentProgressInterval;
  bool forwarded_stop = false;
  for (;;) {
    if (stop_requested() && !forwarded_stop) {
      forwarded_stop = true;
      std::fprintf(stderr, "shmstats-loadgen: stopping early; reporting what was pushed\n");
      for (auto& w : workers) {
        if (w.process.open(Stream::kOut)) (void)w.process.signal(SIGTERM);
      }
    }
    std::vector<pollfd> fds;
    std::vector<WorkerProcess*> polled;
    for (auto& w : workers) {
      if (!w.process.open(Stream::kOut)) continue;
      fds.push_back(pollfd{w.process.fd(Stream::kOut), POLLIN, 0});
      polled.push_back(&w);
    }
    if (fds.empty()) break;
    const auto wait_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - Clock::now());
    const int ready = ::poll(fds.data(), fds.size(),
                             static_cast<int>(std::max<std::int64_t>(wait_ms.count(), 0)));
    if (ready < 0 && errno != EINTR) {
      throw std::runtime_error(fmt::format("poll: {}", std::strerror(errno)));
    }
    for (std::size_t i = 0; ready > 0 && i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      WorkerProcess& w = *polled[i];
      const bool had_report = w.report.has_value();
      (void)read_worker(w);
      if (!had_report && w.report) last_result = Clock::now();
    }
    const auto now = Clock::now();
    if (now >= next_tick) {
      next_tick += kParentProgressInterval;
      if (on_tick) on_tick(progress_of(workers));
    }
  }

  bool failed = false;
  double cpu_s = 0;
  std::vector<WorkerReport> reports;
  for (auto& w : workers) {
    cpu_s += reap(w);
    const bool clean_exit = w.status.success();
    if (clean_exit && w.report && w.error.empty()) {
      reports.push_back(*w.report);
      continue;
    }
    failed = true;
    std::string why = !w.error.empty() ? w.error
                      : !clean_exit    ? w.status.describe()
                                       : "sent no result";
    if (!w.error.empty() && !clean_exit) why += " (" + w.status.describe() + ")";
    std::fprintf(stderr, "shmstats-loadgen: worker %d (pid %d): %s\n", w.index,
                 static_cast<int>(w.process.pid()), one_line(why).c_str());
  }
  if (failed) {
    return shm::Error{shm::Errc::kSystem, "a worker failed (see the lines above)"};
  }
  const double elapsed_s = std::chrono::duration<double>(last_result - start).count();
  auto summary = merge(reports, static_cast<std::size_t>(config.series), elapsed_s);
  if (summary) summary.value().cpu_s = cpu_s;
  return summary;
}

int run_parent(const Config& config, const std::string& exe) {
  const auto start = Clock::now();
  ProgressLine progress{start, start, 0};
  auto summary = run_workers(config, exe, [&progress](const WorkerProgress& p) {
    // Workers that have reported are holding their segments, not pushing: no more lines.
    if (!p.all_reported) progress.print(p, Clock::now());
  });
  if (!summary) {
    std::fprintf(stderr, "shmstats-loadgen: %s\n", summary.error().message.c_str());
    return 1;
  }
  const std::string text = summary_json(config, summary.value()).dump(2) + "\n";
  emit(text);
  if (!config.json_out.empty()) {
    std::ofstream out(config.json_out, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
      std::fprintf(stderr, "shmstats-loadgen: cannot write %s\n", config.json_out.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace shmstats::tools::loadgen
