// shmstats-collector: parses the configuration, wires discovery, drain, exporters and the HTTP
// endpoint together, and handles signals. SIGTERM/SIGINT: stop discovery, drain every ring, flush
// every exporter, exit 0 — within --shutdown-timeout.
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

#include "collector/config.h"
#include "collector/config_print.h"
#include "collector/delivery.h"
#include "collector/drain.h"
#include "collector/exporters/registry.h"
#include "collector/fault.h"
#include "collector/telemetry.h"
#include "common/endpoint.h"
#include "common/http_server.h"
#include "common/sd_notify.h"
#include "common/version.h"
#include "shm/clock.h"
#include "shm/mapping_guard.h"

namespace {

using namespace shmstats;
using namespace shmstats::collector;

int run(int argc, char** argv) {
  // Answered before the configuration is read, so they work whatever else is set.
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--version") {
      std::puts(common::version_text("shmstats-collector").c_str());
      return 0;
    }
    if (arg == "--print-config") {
      std::fputs(example_config_toml().c_str(), stdout);
      return 0;
    }
  }
  std::string help;
  auto config = load_config(argc, argv, help);
  if (!config) {
    if (!help.empty()) {
      std::fputs(help.c_str(), stdout);
      std::fputs(
          "\nAlso:\n  --version       print the version (project, segment layout, wire format)\n"
          "  --print-config  print every configuration key with its default, as TOML\n",
          stdout);
      return 0;
    }
    std::fprintf(stderr, "shmstats-collector: %s\n", config.error().message.c_str());
    return 2;
  }
  const Config& cfg = config.value();
  auto logger = spdlog::stderr_color_mt("collector");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  // Signals are taken by sigwait in this thread; every other thread inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A producer that truncates its segment file under our mapping must not kill us with SIGBUS:
  // the segment is quarantined instead (shm/mapping_guard.h).
  if (auto guarded = shm::install_mapping_fault_handler(); !guarded) {
    std::fprintf(stderr, "shmstats-collector: %s\n", guarded.error().message.c_str());
    return 1;
  }

  const auto epoch = shm::clock_ns(CLOCK_REALTIME);
  LatencyHistogram latency;
  // Fault injection (collector/fault.h) for the fault tests only; off unless set.
  const FaultOptions faults = FaultOptions::from_environment();
  if (faults.any()) {
    spdlog::warn(
        "fault injection: exporter \"{}\" hangs in send ({}); output \"{}\" sends corrupt "
        "requests ({})",
        faults.hang_exporter, kFaultHangExporterEnv, faults.corrupt_requests,
        kFaultCorruptRequestsEnv);
  }
  // One runner per configured output (collector/exporters/registry.h); latency is recorded by
  // the first only, so events are not counted twice.
  DeliveryTracker delivery;
  std::vector<std::unique_ptr<ExporterRunner>> runners;
  for (const OutputConfig& output : cfg.outputs) {
    const ExporterType* type = find_exporter_type(output.type);
    if (type == nullptr) {
      std::fprintf(stderr, "shmstats-collector: %s: unknown output type %s\n",
                   output.origin.c_str(), output.type.c_str());
      return 2;
    }
    ExporterContext context{output.name, cfg.sender_id, epoch, cfg.host};
    auto e = type->create(output.values, context);
    if (!e) {
      std::fprintf(stderr, "shmstats-collector: output %s (%s): %s\n", output.name.c_str(),
                   output.origin.c_str(), e.error().message.c_str());
      return 2;
    }
    if (const std::string where = e.value()->listen_address(); !where.empty()) {
      std::printf("listening %s %s\n", output.name.c_str(), where.c_str());
    }
    runners.push_back(std::make_unique<ExporterRunner>(
        with_faults(std::move(e).value(), faults), output.values.uint(kCommonQueueKey),
        runners.empty() ? &latency : nullptr, &delivery));
  }
  if (runners.empty()) {
    spdlog::warn(
        "no output configured (--udp, --dogstatsd, ...): events are drained and counted "
        "only");
  }
  std::vector<ExporterRunner*> exporters;
  for (auto& r : runners) exporters.push_back(r.get());

  DrainOptions drain_options;
  drain_options.prefix = cfg.shm_prefix;
  drain_options.batch_size = cfg.batch_size;
  drain_options.flush_interval = cfg.flush_interval;
  drain_options.max_events_per_second = cfg.max_drain_rate;
  drain_options.policy.allowed_uids = cfg.allowed_uids;
  drain_options.policy.allow_group_writable = cfg.allow_group_writable;
  DrainLoop drain(drain_options, exporters, &delivery);

  HealthThresholds thresholds;
  thresholds.latency_p99_seconds = cfg.health_latency_p99_seconds;
  Health health(thresholds);
  std::unique_ptr<common::HttpServer> http;
  if (!cfg.http.empty()) {
    auto where = common::parse_listen_address(cfg.http);
    if (!where) {
      std::fprintf(stderr, "shmstats-collector: --http: %s\n", where.error().message.c_str());
      return 2;
    }
    auto server = common::HttpServer::start(
        where.value().host, where.value().port,
        {{"/metrics",
          [&] {
            const HealthReport report = health.evaluate(drain, exporters, latency);
            return common::HttpResponse{200, render_metrics(drain, exporters, latency, report)};
          }},
         {"/health", [&] {
            const HealthReport report = health.evaluate(drain, exporters, latency);
            return common::HttpResponse{report.status == "unhealthy" ? 503 : 200,
                                        report.to_json() + "\n", "application/json"};
          }}});
    if (!server) {
      std::fprintf(stderr, "shmstats-collector: --http: %s\n", server.error().message.c_str());
      return 2;
    }
    http = std::move(server).value();
    std::printf("listening http %s:%u\n", where.value().host.c_str(), http->port());
  }
  std::string outputs;
  for (const OutputConfig& output : cfg.outputs) {
    const ExporterType* type = find_exporter_type(output.type);
    outputs +=
        fmt::format("; {} {}", output.name,
                    type->short_key.empty() ? output.type : output.values.text(type->short_key));
  }
  std::printf("collecting prefix %s%s\n", cfg.shm_prefix.c_str(),
              outputs.empty() ? "; no outputs" : outputs.c_str());
  std::fflush(stdout);
  spdlog::info("shmstats-collector started (sender {:016x}, epoch {})", cfg.sender_id, epoch);

  std::atomic<bool> stop{false};
  std::thread drain_thread([&] { drain.run(stop); });
  // systemd (Type=notify): outputs made, HTTP listening, draining.
  std::string notify_error;
  if (common::notify_systemd("READY=1", &notify_error) == common::NotifyResult::kFailed) {
    spdlog::warn("readiness notification: {}", notify_error);
  }

  int sig = 0;
  sigwait(&signals, &sig);
  (void)common::notify_systemd("STOPPING=1");
  spdlog::info("signal {}: draining every ring and flushing exporters (bound {} ms)", sig,
               cfg.shutdown_timeout.count());
  const auto deadline = std::chrono::steady_clock::now() + cfg.shutdown_timeout;
  stop.store(true);
  drain_thread.join();
  bool clean = true;
  for (auto& r : runners) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    clean = r->stop(std::max(left, std::chrono::milliseconds(1))) && clean;
  }
  if (http) http->stop();
  const auto& c = drain.counters();
  spdlog::info("stopped: {} events, {} aggregates in {} batches; {} segments reclaimed",
               c.events_received.load(), c.aggregates_received.load(), c.batches.load(),
               c.segments_reclaimed.load());
  spdlog::shutdown();
  if (!clean) {
    // An exporter thread is stuck in a send; it cannot be joined. Its losses were counted.
    std::fflush(nullptr);
    std::_Exit(0);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmstats-collector: %s\n", e.what());
    return 1;
  }
}
