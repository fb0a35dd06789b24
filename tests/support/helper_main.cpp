// shmstats-test-helper: the real processes that multi-process tests fork/exec.
//
//   produce --prefix P [--threads T] [--events N | --forever] [--rings R] [--ring-capacity C]
//           [--overflow drop_newest|fold|...] [--rate EVENTS_PER_S_PER_THREAD] [--hold]
//       Creates a Client, prints "segment <name>", then each thread t pushes the values 0..N-1
//       into counter "seq" tagged thread:<t>. With drop-newest a refused push is retried, so every
//       value arrives exactly once (the refusals are counted as drops). Prints
//       "done pushed=<n> dropped=<n> folded=<n>" and, with --hold, waits to be killed.
//   drain --segment NAME --threads T --events N [--timeout-ms M]
//       Attaches read-write and drains every ring until each thread's series has N values,
//       checking that every series sees 0, 1, 2, ... in order, each exactly once. Exit 0 and
//       "ok consumed=<n>", else exit 2 and "error ...".
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "shm/segment.h"
#include "shmstats/shmstats.h"

namespace {

std::string arg_value(int argc, char** argv, const std::string& name, const std::string& def) {
  for (int i = 2; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return def;
}
bool has_flag(int argc, char** argv, const std::string& name) {
  for (int i = 2; i < argc; ++i) {
    if (argv[i] == name) return true;
  }
  return false;
}

shmstats::Overflow parse_overflow(const std::string& s) {
  if (s == "fold") return shmstats::Overflow::kFold;
  if (s == "drop_oldest") return shmstats::Overflow::kDropOldest;
  if (s == "priority") return shmstats::Overflow::kPriority;
  if (s == "sampled") return shmstats::Overflow::kSampled;
  return shmstats::Overflow::kDropNewest;
}

int produce(int argc, char** argv) {
  shmstats::Options options;
  options.shm_prefix = arg_value(argc, argv, "--prefix", "shmstats");
  options.service = "test-helper";
  options.rings = static_cast<std::uint32_t>(std::stoul(arg_value(argc, argv, "--rings", "16")));
  options.ring_capacity =
      static_cast<std::uint32_t>(std::stoul(arg_value(argc, argv, "--ring-capacity", "8192")));
  options.overflow = parse_overflow(arg_value(argc, argv, "--overflow", "drop_newest"));
  options.read_environment = false;
  const int threads = std::stoi(arg_value(argc, argv, "--threads", "1"));
  const bool forever = has_flag(argc, argv, "--forever");
  const std::uint64_t events = std::stoull(arg_value(argc, argv, "--events", "1000"));
  const double rate = std::stod(arg_value(argc, argv, "--rate", "0"));  // 0: as fast as possible
  auto client = shmstats::Client::create(options);
  if (!client) {
    std::printf("error %s\n", client.error().message.c_str());
    return 2;
  }
  std::printf("segment %s\n", client->segment_name().c_str());
  std::fflush(stdout);
  std::vector<std::thread> workers;
  std::atomic<int> failures{0};
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      const std::string tag = std::to_string(t);
      auto counter = client->counter("seq", {{"thread", tag}});
      if (!counter) {
        failures.fetch_add(1);
        return;
      }
      auto next = std::chrono::steady_clock::now();
      const auto period = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(rate > 0 ? 1.0 / rate : 0.0));
      for (std::uint64_t i = 0; forever || i < events; ++i) {
        // Retry a refused push so that each value enters the ring exactly once.
        while (!counter->add(static_cast<double>(i))) std::this_thread::yield();
        if (rate > 0) {
          next += period;
          std::this_thread::sleep_until(next);
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  const auto s = client->stats();
  std::printf("done pushed=%llu dropped=%llu folded=%llu failures=%d\n",
              static_cast<unsigned long long>(s.pushed), static_cast<unsigned long long>(s.dropped),
              static_cast<unsigned long long>(s.folded), failures.load());
  std::fflush(stdout);
  if (has_flag(argc, argv, "--hold")) {
    for (;;) ::pause();
  }
  return failures.load() == 0 ? 0 : 2;
}

int drain(int argc, char** argv) {
  using shmstats::shm::Segment;
  const std::string name = arg_value(argc, argv, "--segment", "");
  const int threads = std::stoi(arg_value(argc, argv, "--threads", "1"));
  const std::uint64_t events = std::stoull(arg_value(argc, argv, "--events", "1000"));
  const auto timeout =
      std::chrono::milliseconds(std::stoi(arg_value(argc, argv, "--timeout-ms", "60000")));
  auto seg = Segment::attach(name, Segment::Access::kReadWrite);
  if (!seg) {
    std::printf("error %s\n", seg.error().message.c_str());
    return 2;
  }
  std::map<std::uint32_t, std::uint64_t> next;  // series id -> next expected value
  std::uint64_t consumed = 0;
  std::vector<shmstats::shm::Event> batch(512);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::uint64_t want = static_cast<std::uint64_t>(threads) * events;
  while (consumed < want) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::printf("error timed out with %llu of %llu events\n",
                  static_cast<unsigned long long>(consumed), static_cast<unsigned long long>(want));
      return 2;
    }
    bool any = false;
    for (std::uint32_t r = 0; r < seg.value().geometry().ring_count; ++r) {
      auto reader = seg.value().ring_reader(r);
      const auto got = reader.poll(batch);
      if (got.corrupt) {
        std::printf("error ring %u corrupt\n", r);
        return 2;
      }
      for (std::size_t i = 0; i < got.count; ++i) {
        const auto& ev = batch[i];
        const auto expected = next[ev.series_id]++;
        if (ev.value != static_cast<double>(expected)) {
          std::printf("error series %u: got %.0f, expected %llu\n", ev.series_id, ev.value,
                      static_cast<unsigned long long>(expected));
          return 2;
        }
      }
      consumed += got.count;
      any = any || got.count > 0;
    }
    if (!any) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (next.size() != static_cast<std::size_t>(threads)) {
    std::printf("error saw %zu series, expected %d\n", next.size(), threads);
    return 2;
  }
  std::printf("ok consumed=%llu\n", static_cast<unsigned long long>(consumed));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: shmstats-test-helper produce|drain [options]\n");
    return 64;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "produce") return produce(argc, argv);
    if (cmd == "drain") return drain(argc, argv);
  } catch (const std::exception& e) {
    std::printf("error %s\n", e.what());
    return 2;
  }
  std::fprintf(stderr, "shmstats-test-helper: unknown command '%s'\n", cmd.c_str());
  return 64;
}
