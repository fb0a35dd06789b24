#include "tools/loadgen/scenario.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "common/http_client.h"
#include "shm/segment.h"

extern char** environ;

namespace shmstats::tools::loadgen {
namespace {

using Clock = std::chrono::steady_clock;
using ojson = nlohmann::ordered_json;

constexpr auto kStartTimeout = std::chrono::seconds(10);
constexpr auto kSampleInterval = std::chrono::seconds(1);
constexpr auto kSettlePoll = std::chrono::milliseconds(250);
constexpr auto kSettleQuiet = std::chrono::milliseconds(750);  // counts still this long: done
constexpr auto kSettleBound = std::chrono::seconds(30);
constexpr auto kStopTimeout = std::chrono::seconds(15);
constexpr auto kHttpTimeout = std::chrono::seconds(2);

}  // namespace

// ---------------------------------------------------------------------------------------------
// The scenarios

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

// ---------------------------------------------------------------------------------------------
// Prometheus text and histograms

std::vector<PromSample> parse_prometheus(std::string_view page) {
  std::vector<PromSample> out;
  while (!page.empty()) {
    const auto nl = page.find('\n');
    std::string_view line = page.substr(0, nl);
    page = nl == std::string_view::npos ? std::string_view{} : page.substr(nl + 1);
    if (line.empty() || line.front() == '#') continue;
    PromSample s;
    std::string_view rest;
    if (const auto brace = line.find('{'); brace != std::string_view::npos) {
      const auto close = line.rfind('}');
      if (close == std::string_view::npos || close < brace) continue;
      s.name = line.substr(0, brace);
      s.labels = line.substr(brace + 1, close - brace - 1);
      rest = line.substr(close + 1);
    } else {
      const auto space = line.find(' ');
      if (space == std::string_view::npos) continue;
      s.name = line.substr(0, space);
      rest = line.substr(space);
    }
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    rest = rest.substr(0, rest.find(' '));  // a timestamp may follow
    if (rest == "+Inf") {
      s.value = HUGE_VAL;
    } else if (rest == "-Inf") {
      s.value = -HUGE_VAL;
    } else {
      const auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), s.value);
      if (ec != std::errc{} || ptr != rest.data() + rest.size()) continue;
    }
    out.push_back(std::move(s));
  }
  return out;
}

double prom_sum(const std::vector<PromSample>& samples, std::string_view name) {
  double sum = 0;
  for (const auto& s : samples) {
    if (s.name == name) sum += s.value;
  }
  return sum;
}

std::optional<std::string> prom_label(std::string_view labels, std::string_view key) {
  const std::string want = std::string(key) + "=\"";
  for (std::size_t at = 0; (at = labels.find(want, at)) != std::string_view::npos; ++at) {
    if (at != 0 && labels[at - 1] != ',') continue;
    const auto begin = at + want.size();
    const auto end = labels.find('"', begin);
    if (end == std::string_view::npos) return std::nullopt;
    return std::string(labels.substr(begin, end - begin));
  }
  return std::nullopt;
}

Cumulative prom_histogram(const std::vector<PromSample>& samples, std::string_view bucket_name) {
  Cumulative out;
  for (const auto& s : samples) {
    if (s.name != bucket_name) continue;
    const auto le = prom_label(s.labels, "le");
    if (!le) continue;
    double bound = HUGE_VAL;
    if (*le != "+Inf") {
      const auto [ptr, ec] = std::from_chars(le->data(), le->data() + le->size(), bound);
      if (ec != std::errc{}) continue;
    }
    out.emplace_back(bound, s.value);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Cumulative histogram_delta(const Cumulative& later, const Cumulative& earlier) {
  Cumulative out = later;
  if (earlier.size() != later.size()) return out;
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i].second = std::max(0.0, later[i].second - earlier[i].second);
  }
  return out;
}

std::optional<double> histogram_quantile(const Cumulative& histogram, double q) {
  if (histogram.empty()) return std::nullopt;
  const double total = histogram.back().second;
  if (total <= 0) return std::nullopt;
  const double rank = q * total;
  double lower_bound = 0;
  double lower_count = 0;
  double last_finite = 0;
  for (const auto& [bound, count] : histogram) {
    if (std::isfinite(bound)) last_finite = bound;
    if (count >= rank && count > lower_count) {
      if (!std::isfinite(bound)) return last_finite;
      return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count);
    }
    if (std::isfinite(bound)) lower_bound = bound;
    lower_count = count;
  }
  return last_finite;
}

// ---------------------------------------------------------------------------------------------
// /proc

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

namespace {

// ---------------------------------------------------------------------------------------------
// The daemons

// A collector or receiver started by the scenario: stdout on a pipe (for its "listening" lines),
// stderr into a log file in the output directory.
class Daemon {
 public:
  static shm::Result<std::unique_ptr<Daemon>> start(const std::string& what,
                                                    const std::vector<std::string>& argv,
                                                    const std::string& log_path) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      return shm::Error{shm::Errc::kSystem, fmt::format("pipe2: {}", std::strerror(errno))};
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> store = argv;
    std::vector<char*> args;
    for (auto& a : store) args.push_back(a.data());
    args.push_back(nullptr);
    pid_t pid = -1;
    const int rc =
        ::posix_spawn(&pid, store.front().c_str(), &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      return shm::Error{shm::Errc::kSystem, fmt::format("starting the {} ({}): {}", what,
                                                        store.front(), std::strerror(rc))};
    }
    return std::unique_ptr<Daemon>(new Daemon(what, pid, fds[0], log_path));
  }

  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  ~Daemon() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      (void)wait_exit(kStopTimeout);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
  }

  pid_t pid() const noexcept { return pid_; }
  const std::string& what() const noexcept { return what_; }
  const std::string& log_path() const noexcept { return log_path_; }

  // The port of the first stdout line "listening <kind> HOST:PORT", or an error naming the log.
  shm::Result<std::uint16_t> port_of(const std::string& kind) {
    const std::string want = "listening " + kind + " ";
    const auto deadline = Clock::now() + kStartTimeout;
    for (;;) {
      for (std::size_t nl; (nl = buffered_.find('\n')) != std::string::npos;) {
        std::string line = buffered_.substr(0, nl);
        buffered_.erase(0, nl + 1);
        if (line.rfind(want, 0) != 0) continue;
        const auto colon = line.rfind(':');
        unsigned port = 0;
        const char* end = line.data() + line.size();
        if (colon != std::string::npos &&
            std::from_chars(line.data() + colon + 1, end, port).ptr == end && port <= 65535) {
          return static_cast<std::uint16_t>(port);
        }
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      pollfd pfd{out_fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[4096];
      const ssize_t n = ::read(out_fd_, buf, sizeof(buf));
      if (n <= 0) break;
      buffered_.append(buf, static_cast<std::size_t>(n));
    }
    return shm::Error{shm::Errc::kSystem,
                      fmt::format("the {} announced no {} port within {} s (see {})", what_, kind,
                                  kStartTimeout.count(), log_path_)};
  }

  // SIGTERM, then waits; returns the exit status (128 + signal if killed), -1 on timeout.
  int stop(std::chrono::seconds timeout) {
    if (reaped_) return status_;
    ::kill(pid_, SIGTERM);
    return wait_exit(timeout);
  }

  bool running() {
    if (reaped_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      status_ = decode(status);
      return false;
    }
    return true;
  }

 private:
  Daemon(std::string what, pid_t pid, int out_fd, std::string log_path)
      : what_(std::move(what)), pid_(pid), out_fd_(out_fd), log_path_(std::move(log_path)) {}

  static int decode(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
  }

  int wait_exit(std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      int status = 0;
      const pid_t got = ::waitpid(pid_, &status, WNOHANG);
      if (got == pid_) {
        reaped_ = true;
        status_ = decode(status);
        return status_;
      }
      if (got < 0 && errno != EINTR) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

  std::string what_;
  pid_t pid_;
  int out_fd_;
  std::string log_path_;
  std::string buffered_;
  bool reaped_ = false;
  int status_ = -1;
};

// GET /metrics of a daemon; an empty list when it does not answer (counted by the caller).
std::vector<PromSample> scrape(std::uint16_t port) {
  // One bound for the whole exchange: the connect and the read timeouts it replaces, together.
  auto response = common::http_get("127.0.0.1", port, "/metrics", 2 * kHttpTimeout);
  if (!response || response.value().status != 200) return {};
  return parse_prometheus(response.value().body);
}

std::string find_binary(const std::string& given, const std::string& exe, const char* name,
                        const char* build_dir) {
  if (!given.empty()) return given;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink(exe, ec);
  const auto dir = (ec ? std::filesystem::path(exe) : self).parent_path();
  // Installed side by side, or the build tree (build/<preset>/tools/loadgen/shmstats-loadgen).
  for (const auto& candidate : {dir / name, dir / ".." / ".." / build_dir / name}) {
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.lexically_normal().string();
  }
  return (dir / name).string();
}

// ---------------------------------------------------------------------------------------------
// The producers' segments, read directly

struct SegmentTotals {
  std::uint64_t pushed = 0;
  std::uint64_t folded = 0;
  DropCounts dropped{};
};

struct SegmentView {
  std::size_t attached = 0;
  double fill_max = 0;        // largest waiting/capacity over the rings, now
  double high_water_max = 0;  // largest high-water mark/capacity over the rings
  SegmentTotals totals;       // summed over every segment ever seen
};

class SegmentWatch {
 public:
  explicit SegmentWatch(std::string prefix) : prefix_(std::move(prefix)) {}

  SegmentView look() {
    SegmentView view;
    const auto names = shm::list_segments(prefix_);
    for (const auto& name : names) {
      Entry& e = entries_[name];
      if (!e.segment) {
        auto attached = shm::Segment::attach(name, shm::Segment::Access::kReadOnly);
        if (!attached) continue;  // still being created, or already gone
        e.segment.emplace(std::move(attached).value());
      }
      const shm::Segment& seg = *e.segment;
      SegmentTotals t;
      const double capacity = seg.geometry().ring_capacity;
      for (std::uint32_t r = 0; r < seg.geometry().ring_count; ++r) {
        const shm::RingStats rs = seg.ring_stats(r);
        t.pushed += rs.pushed;
        t.folded += rs.folded;
        for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) t.dropped[i] += rs.dropped[i];
        view.fill_max = std::max(view.fill_max, static_cast<double>(rs.fill()) / capacity);
        view.high_water_max =
            std::max(view.high_water_max, static_cast<double>(rs.high_water) / capacity);
      }
      const shm::SegmentCounters c = seg.counters();
      t.folded += c.folded_no_ring;
      for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) t.dropped[i] += c.dropped[i];
      e.last = t;
      ++view.attached;
    }
    for (auto& [name, e] : entries_) {
      // A reclaimed segment keeps its last counts; its mapping goes.
      if (e.segment && std::find(names.begin(), names.end(), name) == names.end()) {
        e.segment.reset();
      }
      view.totals.pushed += e.last.pushed;
      view.totals.folded += e.last.folded;
      for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) {
        view.totals.dropped[i] += e.last.dropped[i];
      }
    }
    return view;
  }

 private:
  struct Entry {
    std::optional<shm::Segment> segment;
    SegmentTotals last;
  };
  std::string prefix_;
  std::map<std::string, Entry> entries_;
};

// ---------------------------------------------------------------------------------------------
// Sampling

struct Counters {
  double pushed = 0;  // the workers' progress
  SegmentView segments;
  double delivered_events = 0;
  double delivered_folded = 0;
  double datagrams = 0;
  double aggregates = 0;
  Cumulative latency;
  bool recv_answered = false;
  bool collector_answered = false;
  double collector_segments_active = -1;
  std::optional<ProcUsage> collector;
  std::optional<ProcUsage> recv;
  double workers_cpu_s = 0;  // summed over the workers alive now and those seen before
};

double per_s(double now, double before, double dt) { return dt > 0 ? (now - before) / dt : 0; }

double total_dropped(const DropCounts& d) {
  double sum = 0;
  for (const auto v : d) sum += static_cast<double>(v);
  return sum;
}

ojson maybe(std::optional<double> v, double scale = 1) {
  return v ? ojson(*v * scale) : ojson(nullptr);
}

class Sampler {
 public:
  Sampler(std::string prefix, Daemon& collector, std::uint16_t collector_http, Daemon& recv,
          std::uint16_t recv_http)
      : segments_(std::move(prefix)),
        collector_(collector),
        collector_http_(collector_http),
        recv_(recv),
        recv_http_(recv_http) {}

  Counters read(double pushed, const std::vector<pid_t>& workers) {
    Counters c;
    c.pushed = pushed;
    c.segments = segments_.look();
    const auto recv_page = scrape(recv_http_);
    c.recv_answered = !recv_page.empty();
    c.delivered_events = prom_sum(recv_page, "shmstats_recv_events_total");
    c.delivered_folded = prom_sum(recv_page, "shmstats_recv_aggregated_values_total");
    c.aggregates = prom_sum(recv_page, "shmstats_recv_aggregates_total");
    c.datagrams = prom_sum(recv_page, "shmstats_recv_datagrams_total");
    c.latency = prom_histogram(recv_page, "shmstats_recv_event_latency_seconds_bucket");
    collector_page_ = scrape(collector_http_);
    c.collector_answered = !collector_page_.empty();
    if (c.collector_answered) {
      c.collector_segments_active = prom_sum(collector_page_, "shmstats_collector_segments_active");
    }
    c.collector = read_proc_usage(collector_.pid());
    c.recv = read_proc_usage(recv_.pid());
    for (const pid_t pid : workers) {
      if (const auto u = read_proc_usage(pid)) worker_cpu_[pid] = u->cpu_s;
    }
    for (const auto& [pid, cpu] : worker_cpu_) c.workers_cpu_s += cpu;
    if (!recv_page.empty()) last_recv_page_ = recv_page;
    if (!collector_page_.empty()) last_collector_page_ = collector_page_;
    return c;
  }

  // One row of the time series: rates over the interval from `before` to `now`.
  ojson sample(double t_s, const Counters& now, const Counters& before, double dt) const {
    ojson s;
    s["t_s"] = t_s;
    s["offered_eps"] = per_s(now.pushed, before.pushed, dt);
    const double delivered = now.delivered_events + now.delivered_folded;
    s["delivered_eps"] = per_s(delivered, before.delivered_events + before.delivered_folded, dt);
    s["delivered_events_eps"] = per_s(now.delivered_events, before.delivered_events, dt);
    s["folded_eps"] = per_s(static_cast<double>(now.segments.totals.folded),
                            static_cast<double>(before.segments.totals.folded), dt);
    s["dropped_eps"] = per_s(total_dropped(now.segments.totals.dropped),
                             total_dropped(before.segments.totals.dropped), dt);
    ojson by_reason = ojson::object();
    for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) {
      by_reason[shm::to_string(static_cast<shm::DropReason>(i))] =
          per_s(static_cast<double>(now.segments.totals.dropped[i]),
                static_cast<double>(before.segments.totals.dropped[i]), dt);
    }
    s["dropped_eps_by_reason"] = std::move(by_reason);
    s["ring_fill_max"] = now.segments.fill_max;
    s["ring_high_water_max"] = now.segments.high_water_max;
    s["segments"] = now.segments.attached;
    const Cumulative interval = histogram_delta(now.latency, before.latency);
    s["latency_p50_ms"] = maybe(histogram_quantile(interval, 0.50), 1e3);
    s["latency_p99_ms"] = maybe(histogram_quantile(interval, 0.99), 1e3);
    const double datagrams = now.datagrams - before.datagrams;
    s["datagrams_ps"] = per_s(now.datagrams, before.datagrams, dt);
    const double items =
        (now.delivered_events + now.aggregates) - (before.delivered_events + before.aggregates);
    s["events_per_datagram"] = datagrams > 0 ? ojson(items / datagrams) : ojson(nullptr);
    const auto cpu_pct = [dt](const std::optional<ProcUsage>& a,
                              const std::optional<ProcUsage>& b) {
      return a && b && dt > 0 ? ojson(100.0 * (a->cpu_s - b->cpu_s) / dt) : ojson(nullptr);
    };
    s["collector_cpu_pct"] = cpu_pct(now.collector, before.collector);
    s["collector_rss_mb"] = now.collector ? ojson(now.collector->rss_mb) : ojson(nullptr);
    s["collector_rss_anon_mb"] = now.collector ? ojson(now.collector->rss_anon_mb) : ojson(nullptr);
    s["collector_rss_shmem_mb"] =
        now.collector ? ojson(now.collector->rss_shmem_mb) : ojson(nullptr);
    s["recv_cpu_pct"] = cpu_pct(now.recv, before.recv);
    s["recv_rss_mb"] = now.recv ? ojson(now.recv->rss_mb) : ojson(nullptr);
    s["producer_cpu_pct"] = dt > 0 ? 100.0 * (now.workers_cpu_s - before.workers_cpu_s) / dt : 0.0;
    return s;
  }

  const std::vector<PromSample>& last_recv_page() const { return last_recv_page_; }
  const std::vector<PromSample>& last_collector_page() const { return last_collector_page_; }

 private:
  SegmentWatch segments_;
  Daemon& collector_;
  std::uint16_t collector_http_;
  Daemon& recv_;
  std::uint16_t recv_http_;
  std::map<pid_t, double> worker_cpu_;
  std::vector<PromSample> collector_page_;
  std::vector<PromSample> last_recv_page_;
  std::vector<PromSample> last_collector_page_;
};

// ---------------------------------------------------------------------------------------------
// Output

// The columns of <name>.tsv, in order, as sample keys.
constexpr const char* kTsvColumns[] = {
    "t_s",          "offered_eps",       "delivered_eps",    "dropped_eps",
    "folded_eps",   "latency_p50_ms",    "latency_p99_ms",   "ring_fill_max",
    "datagrams_ps", "collector_cpu_pct", "collector_rss_mb", "producer_cpu_pct"};

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

// Runs gnuplot in `dir` on `script` if it is installed. Returns "" or why there is no plot.
std::string plot(const std::string& dir, const std::string& script) {
  const pid_t pid = ::fork();
  if (pid < 0) return fmt::format("fork: {}", std::strerror(errno));
  if (pid == 0) {
    if (::chdir(dir.c_str()) != 0) ::_exit(126);
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) ::dup2(devnull, STDOUT_FILENO);
    ::execlp("gnuplot", "gnuplot", script.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return "gnuplot is not installed";
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "gnuplot failed";
  return "";
}

int fail(const std::string& message) {
  std::fprintf(stderr, "shmstats-loadgen: %s\n", message.c_str());
  return 1;
}

}  // namespace

int run_scenario(const Config& config, const std::string& exe) {
  const ScenarioSpec* spec = find_scenario(config.scenario);
  if (spec == nullptr) return fail("unknown scenario " + config.scenario);
  std::error_code ec;
  std::filesystem::create_directories(config.out_dir, ec);
  if (ec) return fail(fmt::format("cannot create {}: {}", config.out_dir, ec.message()));
  const std::string name(spec->name);
  const auto out = [&](const std::string& suffix) {
    return (std::filesystem::path(config.out_dir) / (name + suffix)).string();
  };
  // A prefix of its own, so that the collector drains only this run's workers.
  Config run = config;
  run.prefix = fmt::format("scn{}", ::getpid());

  const std::string recv_bin = find_binary(config.recv_bin, exe, "shmstats-recv", "recv");
  const std::string collector_bin =
      find_binary(config.collector_bin, exe, "shmstats-collector", "collector");
  auto recv = Daemon::start(
      "receiver",
      {recv_bin, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--jsonl", config.recv_jsonl},
      out(".recv.log"));
  if (!recv) return fail(recv.error().message);
  auto recv_udp = recv.value()->port_of("udp");
  if (!recv_udp) return fail(recv_udp.error().message);
  auto recv_http = recv.value()->port_of("http");
  if (!recv_http) return fail(recv_http.error().message);

  std::vector<std::string> collector_argv = {collector_bin,
                                             "--shm-prefix",
                                             run.prefix,
                                             "--udp",
                                             fmt::format("127.0.0.1:{}", recv_udp.value()),
                                             "--http",
                                             "127.0.0.1:0",
                                             "--log-level",
                                             "warn"};
  collector_argv.insert(collector_argv.end(), config.collector_args.begin(),
                        config.collector_args.end());
  auto collector = Daemon::start("collector", collector_argv, out(".collector.log"));
  if (!collector) return fail(collector.error().message);
  auto collector_http = collector.value()->port_of("http");
  if (!collector_http) return fail(collector_http.error().message);

  Sampler sampler(run.prefix, *collector.value(), collector_http.value(), *recv.value(),
                  recv_http.value());
  std::fprintf(stderr,
               "shmstats-loadgen: scenario %s: %d processes x %d threads, %.0f events/s for "
               "%.1f s; collector pid %d, receiver pid %d\n",
               name.c_str(), run.processes, run.threads, run.rate, run.duration_s,
               static_cast<int>(collector.value()->pid()), static_cast<int>(recv.value()->pid()));

  const auto start = Clock::now();
  Counters first = sampler.read(0, {});
  Counters previous = first;
  auto previous_at = start;
  ojson samples = ojson::array();
  std::uint64_t unanswered_scrapes = 0;
  const auto take_sample = [&](double pushed, const std::vector<pid_t>& pids) {
    const auto now = Clock::now();
    Counters c = sampler.read(pushed, pids);
    if (!c.recv_answered || !c.collector_answered) ++unanswered_scrapes;
    const double dt = std::chrono::duration<double>(now - previous_at).count();
    const double t = std::chrono::duration<double>(now - start).count();
    samples.push_back(sampler.sample(t, c, previous, dt));
    const ojson& s = samples.back();
    std::fprintf(stderr,
                 "shmstats-loadgen: %5.1f s: offered %8.0f/s delivered %8.0f/s dropped %6.0f/s "
                 "fill %3.0f%% p99 %s ms collector CPU %s%%\n",
                 t, s["offered_eps"].get<double>(), s["delivered_eps"].get<double>(),
                 s["dropped_eps"].get<double>(), 100 * s["ring_fill_max"].get<double>(),
                 s["latency_p99_ms"].is_null()
                     ? "-"
                     : fmt::format("{:.2f}", s["latency_p99_ms"].get<double>()).c_str(),
                 s["collector_cpu_pct"].is_null()
                     ? "-"
                     : fmt::format("{:.0f}", s["collector_cpu_pct"].get<double>()).c_str());
    previous = std::move(c);
    previous_at = now;
  };

  auto summary = run_workers(run, exe, [&](const WorkerProgress& p) {
    take_sample(static_cast<double>(p.pushed), p.pids);
  });
  if (!summary) return fail(summary.error().message);
  const Summary& sum = summary.value();
  SeriesTally totals;
  for (const auto& t : sum.series) totals += t;

  // Settle: the collector drains what the rings still hold, takes the folds and reclaims every
  // segment; the receiver's counts stop moving.
  const auto settle_start = Clock::now();
  auto quiet_since = settle_start;
  double last_delivered = -1;
  auto next_sample = previous_at + kSampleInterval;
  bool settled = false;
  while (Clock::now() - settle_start < kSettleBound) {
    std::this_thread::sleep_for(kSettlePoll);
    const auto page = scrape(recv_http.value());
    const double delivered = prom_sum(page, "shmstats_recv_events_total") +
                             prom_sum(page, "shmstats_recv_aggregated_values_total");
    const auto now = Clock::now();
    if (delivered != last_delivered) quiet_since = now;
    last_delivered = delivered;
    const bool reclaimed = shm::list_segments(run.prefix).empty();
    if (now >= next_sample) {
      next_sample += kSampleInterval;
      take_sample(static_cast<double>(totals.pushed), {});
    }
    if (reclaimed && now - quiet_since >= kSettleQuiet) {
      settled = true;
      break;
    }
  }
  take_sample(static_cast<double>(totals.pushed), {});
  const Counters before_stop = previous;
  const auto collector_page = sampler.last_collector_page();
  const int collector_exit = collector.value()->stop(kStopTimeout);
  // The receiver's final counts, after the collector's last flush.
  std::this_thread::sleep_for(kSettleQuiet);
  const auto recv_page = scrape(recv_http.value());
  const auto recv_usage = read_proc_usage(recv.value()->pid());
  const int recv_exit = recv.value()->stop(kStopTimeout);
  const double elapsed_total = std::chrono::duration<double>(Clock::now() - start).count();

  // Totals and the ledger.
  const double delivered_events = prom_sum(recv_page, "shmstats_recv_events_total");
  const double delivered_folded = prom_sum(recv_page, "shmstats_recv_aggregated_values_total");
  const double delivered = delivered_events + delivered_folded;
  const double invalid = prom_sum(collector_page, "shmstats_collector_invalid_events_total");
  const double exporter_dropped =
      prom_sum(collector_page, "shmstats_exporter_events_dropped_total");
  const double queue_dropped =
      prom_sum(collector_page, "shmstats_exporter_queue_dropped_events_total");
  const double collector_dropped = invalid + exporter_dropped + queue_dropped;
  const double unaccounted = static_cast<double>(totals.accepted) - delivered - collector_dropped;
  const Cumulative latency =
      prom_histogram(recv_page, "shmstats_recv_event_latency_seconds_bucket");
  const double datagrams = prom_sum(recv_page, "shmstats_recv_datagrams_total");
  const double items = delivered_events + prom_sum(recv_page, "shmstats_recv_aggregates_total");

  double cpu_sum = 0;
  double cpu_max = 0;
  double rss_max = 0;
  double rss_anon_max = 0;
  double rss_shmem_max = 0;
  std::size_t cpu_n = 0;
  for (const auto& s : samples) {
    if (s["collector_cpu_pct"].is_number()) {
      cpu_sum += s["collector_cpu_pct"].get<double>();
      cpu_max = std::max(cpu_max, s["collector_cpu_pct"].get<double>());
      ++cpu_n;
    }
    if (s["collector_rss_mb"].is_number()) {
      rss_max = std::max(rss_max, s["collector_rss_mb"].get<double>());
      rss_anon_max = std::max(rss_anon_max, s["collector_rss_anon_mb"].get<double>());
      rss_shmem_max = std::max(rss_shmem_max, s["collector_rss_shmem_mb"].get<double>());
    }
  }
  const double collector_cpu_s = before_stop.collector && first.collector
                                     ? before_stop.collector->cpu_s - first.collector->cpu_s
                                     : 0;
  const double recv_cpu_s = recv_usage && first.recv ? recv_usage->cpu_s - first.recv->cpu_s : 0;
  const double received =
      prom_sum(collector_page, "shmstats_collector_events_received_total") +
      prom_sum(collector_page, "shmstats_collector_folded_values_received_total");
  const double pushed = static_cast<double>(totals.pushed);

  ojson dropped = ojson::object();
  for (std::size_t i = 0; i < shm::kDropReasonCount; ++i) {
    dropped[shm::to_string(static_cast<shm::DropReason>(i))] = sum.dropped_by_reason[i];
  }
  ojson doc;
  doc["tool"] = "shmstats-loadgen";
  doc["scenario"] = name;
  doc["about"] = spec->about;
  doc["scale"] = config.scale;
  doc["config"] = {{"prefix", run.prefix},
                   {"processes", run.processes},
                   {"threads", run.threads},
                   {"rate", run.rate},
                   {"duration_s", run.duration_s},
                   {"series", run.series},
                   {"ring_capacity", run.ring_capacity},
                   {"rings", run.rings},
                   {"overflow", run.overflow},
                   {"collector_args", config.collector_args},
                   {"recv_jsonl", config.recv_jsonl}};
  doc["machine"] = {{"cpus", std::thread::hardware_concurrency()}};
  ojson t;
  t["elapsed_s"] = sum.elapsed_s;
  t["pushed"] = totals.pushed;
  t["accepted"] = totals.accepted;
  t["refused"] = totals.refused;
  t["folded_by_producers"] = sum.producer.folded;
  t["dropped_by_reason"] = dropped;
  t["offered_rate"] = sum.elapsed_s > 0 ? pushed / sum.elapsed_s : 0;
  t["delivered"] = delivered;
  t["delivered_events"] = delivered_events;
  t["delivered_folded_values"] = delivered_folded;
  t["delivered_rate"] = sum.elapsed_s > 0 ? delivered / sum.elapsed_s : 0;
  t["collector_dropped"] = {{"invalid_events", invalid},
                            {"exporter", exporter_dropped},
                            {"exporter_queue_full", queue_dropped}};
  t["lost_datagrams"] = prom_sum(recv_page, "shmstats_recv_lost_total");
  t["duplicate_datagrams"] = prom_sum(recv_page, "shmstats_recv_duplicates_total");
  t["malformed_datagrams"] = prom_sum(recv_page, "shmstats_recv_malformed_total");
  t["receiver_write_dropped_lines"] = prom_sum(recv_page, "shmstats_recv_write_queue_full_total") +
                                      prom_sum(recv_page, "shmstats_recv_write_failed_lines_total");
  t["unaccounted"] = unaccounted;
  t["latency_ms"] = {{"p50", maybe(histogram_quantile(latency, 0.50), 1e3)},
                     {"p99", maybe(histogram_quantile(latency, 0.99), 1e3)},
                     {"p999", maybe(histogram_quantile(latency, 0.999), 1e3)}};
  t["datagrams"] = datagrams;
  t["events_per_datagram"] = datagrams > 0 ? ojson(items / datagrams) : ojson(nullptr);
  t["collector"] = {{"cpu_pct_mean", cpu_n > 0 ? cpu_sum / static_cast<double>(cpu_n) : 0},
                    {"cpu_pct_max", cpu_max},
                    {"cpu_seconds", collector_cpu_s},
                    {"cpu_ns_per_event", received > 0 ? 1e9 * collector_cpu_s / received : 0},
                    {"rss_mb_max", rss_max},
                    {"rss_anon_mb_max", rss_anon_max},
                    {"rss_shmem_mb_max", rss_shmem_max},
                    {"exit_status", collector_exit}};
  t["receiver"] = {{"cpu_seconds", recv_cpu_s},
                   {"cpu_ns_per_event", delivered > 0 ? 1e9 * recv_cpu_s / delivered : 0},
                   {"exit_status", recv_exit}};
  t["producers"] = {{"cpu_seconds", sum.cpu_s},
                    {"push_seconds", sum.push_s},
                    {"cpu_ns_per_event", pushed > 0 ? 1e9 * sum.cpu_s / pushed : 0},
                    {"push_ns_per_event", pushed > 0 ? 1e9 * sum.push_s / pushed : 0}};
  t["settled"] = settled;
  t["unanswered_scrapes"] = unanswered_scrapes;
  t["wall_s"] = elapsed_total;
  doc["totals"] = std::move(t);
  doc["samples"] = samples;

  const std::string title =
      fmt::format("shmstats scenario {}: {} ({} x {} threads{})", name, spec->about, run.processes,
                  run.threads, config.scale != 1.0 ? fmt::format(", scale {}", config.scale) : "");
  const bool written = write_file(out(".json"), doc.dump(2) + "\n") &&
                       write_file(out(".tsv"), tsv_of(samples)) &&
                       write_file(out(".gp"), gnuplot_script(name, title));
  if (!written) return fail("cannot write the results in " + config.out_dir);
  const std::string no_plot = plot(config.out_dir, name + ".gp");
  const ojson& tt = doc["totals"];
  std::printf(
      "scenario %s: pushed %llu, delivered %.0f (%.0f events + %.0f folded), refused %llu, "
      "collector dropped %.0f, lost datagrams %.0f, unaccounted %.0f; latency p50 %s ms p99 %s ms; "
      "%s events/datagram; collector CPU %.1f%% mean, RSS %.1f MB max (anon %.1f); results in "
      "%s%s\n",
      name.c_str(), static_cast<unsigned long long>(totals.pushed), delivered, delivered_events,
      delivered_folded, static_cast<unsigned long long>(totals.refused), collector_dropped,
      tt["lost_datagrams"].get<double>(), unaccounted, tt["latency_ms"]["p50"].dump().c_str(),
      tt["latency_ms"]["p99"].dump().c_str(), tt["events_per_datagram"].dump().c_str(),
      tt["collector"]["cpu_pct_mean"].get<double>(), rss_max, rss_anon_max, out(".json").c_str(),
      no_plot.empty() ? "" : fmt::format(" (no plot: {})", no_plot).c_str());
  std::fflush(stdout);
  if (collector_exit != 0) {
    return fail(fmt::format("the collector exited with status {} (see {})", collector_exit,
                            collector.value()->log_path()));
  }
  if (recv_exit != 0) {
    return fail(fmt::format("the receiver exited with status {} (see {})", recv_exit,
                            recv.value()->log_path()));
  }
  if (!settled) {
    return fail(fmt::format("the pipeline did not settle within {} s after the producers finished",
                            kSettleBound.count()));
  }
  return 0;
}

}  // namespace shmstats::tools::loadgen
