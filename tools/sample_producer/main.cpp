// shmstats-sample: a stand-in service for the demo. It links the producer library like a real
// service would and pushes a realistic mix (request counters by route and code, latency timings,
// a queue-depth gauge, payload sizes, active users) at a steady rate for a while.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "shmstats/shmstats.h"

int main(int argc, char** argv) {
  CLI::App app{"shmstats-sample: a sample service that pushes metrics through shmstats"};
  std::string service = "sample";
  std::string prefix = "shmstats";
  double duration_s = 10;
  double rate = 1000;
  int threads = 2;
  app.add_option("--service", service, "service name written into the segment");
  app.add_option("--prefix", prefix, "segment name prefix");
  app.add_option("--duration", duration_s, "seconds to run")->check(CLI::Range(0.0, 86400.0));
  app.add_option("--rate", rate, "requests per second per thread (each pushes 5 values)")
      ->check(CLI::Range(1.0, 1e8));
  app.add_option("--threads", threads, "pushing threads")->check(CLI::Range(1, 256));
  CLI11_PARSE(app, argc, argv);

  shmstats::Options options;
  options.service = service;
  options.shm_prefix = prefix;
  auto client = shmstats::Client::create(options);
  if (!client) {
    std::fprintf(stderr, "shmstats-sample: %s\n", client.error().message.c_str());
    return 1;
  }
  std::printf("%s: segment %s\n", service.c_str(), client->segment_name().c_str());
  std::fflush(stdout);

  const std::vector<std::string> routes = {"/api/users", "/api/orders", "/health"};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t + 1));
      std::lognormal_distribution<double> latency_ms(1.5, 0.6);
      std::uniform_int_distribution<int> pick(0, 99);
      // Handles are registered once (cold path); pushes below are the hot path.
      std::vector<shmstats::Counter> ok;
      std::vector<shmstats::Counter> failed;
      for (const auto& r : routes) {
        ok.push_back(client->counter("http.requests", {{"route", r}, {"code", "200"}}).value());
        failed.push_back(client->counter("http.requests", {{"route", r}, {"code", "500"}}).value());
      }
      auto latency = client->timing("http.latency", {{"service", service}}).value();
      auto depth = client->gauge("queue.depth").value();
      auto payload = client->histogram("payload.bytes").value();
      auto users = client->set("users.active").value();
      const auto period = std::chrono::duration<double>(1.0 / rate);
      const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(duration_s);
      auto next = std::chrono::steady_clock::now();
      int queue = 0;
      while (std::chrono::steady_clock::now() < end) {
        const auto route = static_cast<std::size_t>(pick(rng)) % routes.size();
        (void)(pick(rng) < 3 ? failed[route].add() : ok[route].add());
        (void)latency.record_ms(latency_ms(rng));
        queue = std::max(0, queue + pick(rng) % 3 - 1);
        (void)depth.set(queue);
        (void)payload.record(200 + pick(rng) * 10);
        (void)users.add(pick(rng) + 1000 * t);
        next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
        std::this_thread::sleep_until(next);
      }
    });
  }
  for (auto& w : workers) w.join();
  const auto s = client->stats();
  std::printf("%s: done, pushed=%llu folded=%llu dropped=%llu series=%u\n", service.c_str(),
              static_cast<unsigned long long>(s.pushed), static_cast<unsigned long long>(s.folded),
              static_cast<unsigned long long>(s.dropped), s.series);
  return 0;
}
