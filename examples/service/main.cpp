// example-service: a stand-in service that pushes through the shmstats producer library for a
// while, then prints what it pushed. It uses only the installed header <shmstats/shmstats.h>.
//   example-service [SECONDS] [SHM_PREFIX]       (defaults: 3, shmstats)
#include <shmstats/shmstats.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  shmstats::Options options;
  options.service = "example-service";
  if (argc > 2) options.shm_prefix = argv[2];
  // A service keeps running without metrics rather than failing: create_or_disabled.
  shmstats::Client client = shmstats::Client::create_or_disabled(options);
  auto requests = client.counter("example.requests", {{"route", "/hello"}});
  auto latency = client.timing("example.latency");
  if (!requests || !latency) {
    std::fprintf(stderr, "example-service: %s\n",
                 (!requests ? requests.error() : latency.error()).message.c_str());
    return 1;
  }
  std::printf("example-service: shmstats %s, segment %s (%s)\n",
              std::string(shmstats::version()).c_str(), client.segment_name().c_str(),
              client.enabled() ? "enabled" : "disabled");
  std::fflush(stdout);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::uint64_t sent = 0;
  while (std::chrono::steady_clock::now() < end) {
    const auto start = std::chrono::steady_clock::now();
    (void)requests->add();
    (void)latency->record(std::chrono::steady_clock::now() - start);
    ++sent;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const shmstats::Stats stats = client.stats();
  std::printf("example-service: requests=%llu pushed=%llu dropped=%llu\n",
              static_cast<unsigned long long>(sent), static_cast<unsigned long long>(stats.pushed),
              static_cast<unsigned long long>(stats.dropped));
  return stats.dropped == 0 ? 0 : 1;
}
