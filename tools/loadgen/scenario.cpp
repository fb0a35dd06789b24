#include "tools/loadgen/scenario.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <vector>

#include "common/http_client.h"
#include "shm/segment.h"
#include "tools/loadgen/daemon.h"
#include "tools/loadgen/metrics_page.h"
#include "tools/loadgen/output.h"
#include "tools/loadgen/parent.h"
#include "tools/loadgen/proc_usage.h"
#include "tools/loadgen/sampler.h"

namespace shmstats::tools::loadgen {
namespace {

using Clock = std::chrono::steady_clock;
using ojson = nlohmann::ordered_json;
namespace prom = common::prometheus;

constexpr auto kSampleInterval = std::chrono::seconds(1);
constexpr auto kSettlePoll = std::chrono::milliseconds(250);
constexpr auto kSettleQuiet = std::chrono::milliseconds(750);  // counts still this long: done
constexpr auto kSettleBound = std::chrono::seconds(30);

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
    const double delivered = prom::sum(page, "shmstats_recv_events_total") +
                             prom::sum(page, "shmstats_recv_aggregated_values_total");
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
  const int collector_exit = collector.value()->stop(kDaemonStopTimeout);
  // The receiver's final counts, after the collector's last flush.
  std::this_thread::sleep_for(kSettleQuiet);
  const auto recv_page = scrape(recv_http.value());
  const auto recv_usage = read_proc_usage(recv.value()->pid());
  const int recv_exit = recv.value()->stop(kDaemonStopTimeout);
  const double elapsed_total = std::chrono::duration<double>(Clock::now() - start).count();

  // Totals and the ledger.
  const double delivered_events = prom::sum(recv_page, "shmstats_recv_events_total");
  const double delivered_folded = prom::sum(recv_page, "shmstats_recv_aggregated_values_total");
  const double delivered = delivered_events + delivered_folded;
  const double invalid = prom::sum(collector_page, "shmstats_collector_invalid_events_total");
  const double exporter_dropped =
      prom::sum(collector_page, "shmstats_exporter_events_dropped_total");
  const double queue_dropped =
      prom::sum(collector_page, "shmstats_exporter_queue_dropped_events_total");
  const double collector_dropped = invalid + exporter_dropped + queue_dropped;
  const double unaccounted = static_cast<double>(totals.accepted) - delivered - collector_dropped;
  const Cumulative latency =
      prom_histogram(recv_page, "shmstats_recv_event_latency_seconds_bucket");
  const double datagrams = prom::sum(recv_page, "shmstats_recv_datagrams_total");
  const double items = delivered_events + prom::sum(recv_page, "shmstats_recv_aggregates_total");

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
      prom::sum(collector_page, "shmstats_collector_events_received_total") +
      prom::sum(collector_page, "shmstats_collector_folded_values_received_total");
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
  t["lost_datagrams"] = prom::sum(recv_page, "shmstats_recv_lost_total");
  t["duplicate_datagrams"] = prom::sum(recv_page, "shmstats_recv_duplicates_total");
  t["malformed_datagrams"] = prom::sum(recv_page, "shmstats_recv_malformed_total");
  t["receiver_write_dropped_lines"] =
      prom::sum(recv_page, "shmstats_recv_write_queue_full_total") +
      prom::sum(recv_page, "shmstats_recv_write_failed_lines_total");
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
