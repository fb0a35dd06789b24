// The "pace" mode of shmstats-test-helper (helper_main.cpp lists its flags): producer threads
// that keep a schedule and report exactly what they pushed, for the fault-injection tests
// (tests/e2e/fault_test.cpp). Each thread t pushes 0, 1, 2, ... into counter "seq" tagged
// thread:<t>, so a reader can tell every value apart and see which ones arrived.
//
// Output (stdout, one line each):
//   segment <name>                                              once the client exists
//   thread t=<t> pushes=<n> accepted=<n> refused=<n>             per thread, at the end
//   done pushes=<n> accepted=<n> refused=<n> elapsed_us=<n> max_lag_us=<n> max_push_ns=<n>
// max_lag_us: how late, at worst, a push started against the thread's schedule; max_push_ns: the
// longest single push call. Both include whatever the scheduler did to the thread.
#pragma once

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "shmstats/shmstats.h"

namespace shmstats::testing {

struct PaceConfig {
  int threads = 1;
  double rate = 0;           // pushes per second per thread; 0: as fast as possible
  std::uint64_t events = 0;  // values per thread; 0: until SIGTERM
  bool retry = false;        // retry a refused push until it is accepted
};

namespace detail {

// Set by SIGTERM: a lock-free atomic, so a signal handler may store to it.
inline std::atomic<bool> pace_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free);

inline void on_pace_signal(int /*sig*/) { pace_stop.store(true, std::memory_order_relaxed); }

struct PaceTally {
  std::uint64_t pushes = 0;  // values pushed (each counted once, however often retried)
  std::uint64_t accepted = 0;
  std::uint64_t refused = 0;  // push calls that returned false
  std::int64_t max_lag_ns = 0;
  std::int64_t max_push_ns = 0;
  bool registered = false;
};

inline void pace_thread(shmstats::Client& client, int index, const PaceConfig& config,
                        PaceTally& tally) {
  using Clock = std::chrono::steady_clock;
  auto counter = client.counter("seq", {{"thread", std::to_string(index)}});
  if (!counter) return;
  tally.registered = true;
  const auto period = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(config.rate > 0 ? 1.0 / config.rate : 0.0));
  auto due = Clock::now();
  for (std::uint64_t value = 0; config.events == 0 || value < config.events; ++value) {
    if (pace_stop.load(std::memory_order_relaxed)) break;
    if (config.rate > 0) {
      std::this_thread::sleep_until(due);
      tally.max_lag_ns = std::max<std::int64_t>(tally.max_lag_ns, (Clock::now() - due).count());
      due += period;
    }
    ++tally.pushes;
    for (;;) {
      const auto start = Clock::now();
      const bool accepted = counter->add(static_cast<double>(value));
      tally.max_push_ns = std::max<std::int64_t>(tally.max_push_ns, (Clock::now() - start).count());
      if (accepted) {
        ++tally.accepted;
        break;
      }
      ++tally.refused;
      if (!config.retry || pace_stop.load(std::memory_order_relaxed)) break;
      std::this_thread::yield();
    }
  }
}

}  // namespace detail

// Runs the pace mode with a client made from `options`; returns the exit code (0, or 2 when the
// client or a series could not be made, with an "error ..." line).
inline int run_paced(const shmstats::Options& options, const PaceConfig& config) {
  struct sigaction action {};
  action.sa_handler = detail::on_pace_signal;
  ::sigaction(SIGTERM, &action, nullptr);
  auto client = shmstats::Client::create(options);
  if (!client) {
    std::printf("error %s\n", client.error().message.c_str());
    return 2;
  }
  std::printf("segment %s\n", client->segment_name().c_str());
  std::fflush(stdout);
  const auto started = std::chrono::steady_clock::now();
  std::vector<detail::PaceTally> tallies(static_cast<std::size_t>(config.threads));
  std::vector<std::thread> workers;
  for (int t = 0; t < config.threads; ++t) {
    workers.emplace_back([&, t] {
      detail::pace_thread(client.value(), t, config, tallies[static_cast<std::size_t>(t)]);
    });
  }
  for (auto& w : workers) w.join();
  const auto elapsed = std::chrono::steady_clock::now() - started;
  detail::PaceTally total;
  total.registered = true;
  for (int t = 0; t < config.threads; ++t) {
    const auto& one = tallies[static_cast<std::size_t>(t)];
    std::printf("thread t=%d pushes=%llu accepted=%llu refused=%llu\n", t,
                static_cast<unsigned long long>(one.pushes),
                static_cast<unsigned long long>(one.accepted),
                static_cast<unsigned long long>(one.refused));
    total.pushes += one.pushes;
    total.accepted += one.accepted;
    total.refused += one.refused;
    total.max_lag_ns = std::max(total.max_lag_ns, one.max_lag_ns);
    total.max_push_ns = std::max(total.max_push_ns, one.max_push_ns);
    total.registered = total.registered && one.registered;
  }
  if (!total.registered) {
    std::printf("error a thread could not register its series\n");
    return 2;
  }
  std::printf(
      "done pushes=%llu accepted=%llu refused=%llu elapsed_us=%lld max_lag_us=%lld "
      "max_push_ns=%lld\n",
      static_cast<unsigned long long>(total.pushes),
      static_cast<unsigned long long>(total.accepted),
      static_cast<unsigned long long>(total.refused),
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count()),
      static_cast<long long>(total.max_lag_ns / 1000), static_cast<long long>(total.max_push_ns));
  std::fflush(stdout);
  return 0;
}

}  // namespace shmstats::testing
