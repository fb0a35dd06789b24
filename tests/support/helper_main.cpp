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
//   no-shm --shm full|readonly|fork-full --prefix P [--threads T] [--events N]
//       Needs root. Makes the condition real in a private mount namespace of its own
//       (unshare(CLONE_NEWNS), every mount made private), where it mounts over /dev/shm a 64 KiB
//       tmpfs ("full": a default segment of about 5 MB cannot be reserved), a read-only tmpfs
//       ("readonly"), or a tmpfs with room for one small segment ("fork-full"). stderr is
//       redirected to stdout, so the reader sees the client's log line.
//       full, readonly: tries Client::create, then makes a client with create_or_disabled, and T
//       threads each push N values through a counter handle and N through the dynamic path.
//       Prints "done strict_code=<ErrorCode or 255> enabled=<0|1> error_code=<ErrorCode or 255>
//       pushes=<n> accepted=<n> dropped=<n>".
//       fork-full: creates an enabled client (1 segment fits), pushes once, forks; the child's
//       first push cannot create its own segment, so it goes disabled; then T threads of the
//       child push N values each through the handle and the dynamic path. The child prints
//       "child enabled=.. error_code=.. pushes=.. accepted=.. dropped=.." and the parent, after
//       the child exits, "done parent_enabled=<0|1> parent_pushed=<n> child_status=<n>".
//       Exit 0; "setup-error <step>: <errno text>" and exit 3 if the namespace or mount fails.
//   pace --prefix P --service S [--threads T] [--rate PUSHES_PER_S_PER_THREAD] [--events N]
//        [--rings R] [--ring-capacity C] [--overflow drop_newest|fold|...] [--retry]
//       Each thread t pushes 0, 1, 2, ... into counter "seq" tagged thread:<t> on a schedule of
//       R pushes/s (0: unpaced), for N values (0: until SIGTERM). A refused push is counted and
//       the next value follows; with --retry it is retried until accepted. Reports per thread
//       and in total what it pushed, how late it ever ran and its longest push
//       (tests/support/helper_pace.h), then exits 0 and closes its segment.
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "shm/segment.h"
#include "shmstats/shmstats.h"
#include "tests/support/helper_pace.h"

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

int setup_error(const char* step) {
  std::printf("setup-error %s: %s\n", step, std::strerror(errno));
  return 3;
}

constexpr int kNoError = 255;

int code_of(const shmstats::Error* error) {
  return error == nullptr ? kNoError : static_cast<int>(error->code);
}

struct PushTally {
  std::uint64_t pushes = 0;
  std::uint64_t accepted = 0;
};

// `threads` threads each push `events` values through `counter` and `events` through the dynamic
// path of `client`.
PushTally push_from_threads(shmstats::Client& client, shmstats::Counter counter, int threads,
                            std::uint64_t events) {
  std::atomic<std::uint64_t> pushes{0};
  std::atomic<std::uint64_t> accepted{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      const std::string tag = std::to_string(t);
      for (std::uint64_t i = 0; i < events; ++i) {
        if (counter.add(static_cast<double>(i))) accepted.fetch_add(1);
        if (client.count("no_shm.dynamic", 1, {{"thread", tag}})) accepted.fetch_add(1);
        pushes.fetch_add(2);
      }
    });
  }
  for (auto& w : workers) w.join();
  return PushTally{pushes.load(), accepted.load()};
}

int no_shm(int argc, char** argv) {
  const std::string shm = arg_value(argc, argv, "--shm", "full");
  const int threads = std::stoi(arg_value(argc, argv, "--threads", "4"));
  const std::uint64_t events = std::stoull(arg_value(argc, argv, "--events", "1000"));
  shmstats::Options options;  // default geometry: a 4,988,928-byte segment
  options.shm_prefix = arg_value(argc, argv, "--prefix", "shmstats");
  options.service = "test-helper";
  options.read_environment = false;
  if (shm == "fork-full") {  // 853,248 bytes: one fits in 1200 KiB, two do not
    options.rings = 2;
    options.ring_capacity = 1024;
  }
  const char* tmpfs_options = shm == "fork-full" ? "size=1200k" : "size=64k";
  const unsigned long read_only = shm == "readonly" ? MS_RDONLY : 0;

  if (::dup2(STDOUT_FILENO, STDERR_FILENO) < 0) return setup_error("redirecting stderr");
  if (::unshare(CLONE_NEWNS) != 0) return setup_error("unshare(CLONE_NEWNS)");
  // Private, so that the mount below stays in this namespace.
  if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return setup_error("making every mount private");
  }
  if (::mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | read_only, tmpfs_options) != 0) {
    return setup_error("mounting a tmpfs over /dev/shm");
  }

  if (shm != "fork-full") {
    auto strict = shmstats::Client::create(options);
    const int strict_code = strict ? kNoError : static_cast<int>(strict.error().code);
    shmstats::Client client = shmstats::Client::create_or_disabled(options);
    auto counter = client.counter("no_shm.counter");
    if (!counter) {
      std::printf("error registration failed: %s\n", counter.error().message.c_str());
      return 2;
    }
    const PushTally tally = push_from_threads(client, counter.value(), threads, events);
    const auto s = client.stats();
    std::printf(
        "done strict_code=%d enabled=%d error_code=%d pushes=%llu accepted=%llu "
        "dropped=%llu\n",
        strict_code, client.enabled() ? 1 : 0, code_of(client.creation_error()),
        static_cast<unsigned long long>(tally.pushes),
        static_cast<unsigned long long>(tally.accepted),
        static_cast<unsigned long long>(s.dropped));
    return 0;
  }

  auto client = shmstats::Client::create(options);
  if (!client) {
    std::printf("error the parent's segment does not fit: %s\n", client.error().message.c_str());
    return 2;
  }
  auto counter = client->counter("no_shm.counter");
  if (!counter || !counter->add(1)) {
    std::printf("error the parent cannot push\n");
    return 2;
  }
  std::fflush(stdout);
  const pid_t child = ::fork();
  if (child < 0) return setup_error("fork");
  if (child == 0) {
    // The first push (one thread) tries to make the child's own segment and goes disabled.
    const bool first = counter->add(1);
    PushTally tally = push_from_threads(client.value(), counter.value(), threads, events);
    tally.pushes += 1;
    tally.accepted += first ? 1 : 0;
    const auto s = client->stats();
    std::printf("child enabled=%d error_code=%d pushes=%llu accepted=%llu dropped=%llu\n",
                client->enabled() ? 1 : 0, code_of(client->creation_error()),
                static_cast<unsigned long long>(tally.pushes),
                static_cast<unsigned long long>(tally.accepted),
                static_cast<unsigned long long>(s.dropped));
    std::fflush(stdout);
    std::_Exit(0);
  }
  int status = 0;
  if (::waitpid(child, &status, 0) != child) return setup_error("waitpid");
  const auto s = client->stats();
  std::printf("done parent_enabled=%d parent_pushed=%llu child_status=%d\n",
              client->enabled() ? 1 : 0, static_cast<unsigned long long>(s.pushed),
              WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  return 0;
}

int pace(int argc, char** argv) {
  shmstats::Options options;
  options.shm_prefix = arg_value(argc, argv, "--prefix", "shmstats");
  options.service = arg_value(argc, argv, "--service", "test-helper");
  options.rings = static_cast<std::uint32_t>(std::stoul(arg_value(argc, argv, "--rings", "16")));
  options.ring_capacity =
      static_cast<std::uint32_t>(std::stoul(arg_value(argc, argv, "--ring-capacity", "8192")));
  options.overflow = parse_overflow(arg_value(argc, argv, "--overflow", "drop_newest"));
  options.read_environment = false;
  shmstats::testing::PaceConfig config;
  config.threads = std::stoi(arg_value(argc, argv, "--threads", "1"));
  config.rate = std::stod(arg_value(argc, argv, "--rate", "0"));
  config.events = std::stoull(arg_value(argc, argv, "--events", "0"));
  config.retry = has_flag(argc, argv, "--retry");
  return shmstats::testing::run_paced(options, config);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: shmstats-test-helper produce|drain|no-shm|pace [options]\n");
    return 64;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "produce") return produce(argc, argv);
    if (cmd == "drain") return drain(argc, argv);
    if (cmd == "no-shm") return no_shm(argc, argv);
    if (cmd == "pace") return pace(argc, argv);
  } catch (const std::exception& e) {
    std::printf("error %s\n", e.what());
    return 2;
  }
  std::fprintf(stderr, "shmstats-test-helper: unknown command '%s'\n", cmd.c_str());
  return 64;
}
