// Soak (issue #5): the real collector and receiver run for SHMSTATS_SOAK_SECONDS (600 when unset;
// the suite registers a short form, tests/e2e/CMakeLists.txt) while producers start and exit all
// the time: kAlive of shmstats-test-helper's produce mode at once, each with a few threads; every
// kKillOneIn-th is SIGKILLed once the collector has drained some of its events, the others exit
// after a fixed count. Once a second the test samples the collector's memory (/proc/<pid>/status:
// VmRSS, and apart from it RssAnon, its own heap and stacks, and RssShmem, the segment pages it
// touched, which come and go with the segments) and its open descriptors (/proc/<pid>/fd).
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "shm/segment.h"
#include "tests/support/pipeline.h"
#include "tests/support/segments.h"
#include "tests/support/support.h"

namespace shmstats {
namespace {

using testing::ChildProcess;
using testing::drained_from;
using testing::PipelineProcess;
using testing::SegmentGuard;
using testing::start_collector;
using testing::start_receiver;
using testing::TempDir;
using testing::unique_prefix;
using testing::wait_until;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const std::string kCollectorBin = SHMSTATS_COLLECTOR_BIN;
const std::string kRecvBin = SHMSTATS_RECV_BIN;

constexpr const char* kDurationEnv = "SHMSTATS_SOAK_SECONDS";
constexpr int kDefaultSeconds = 600;
// Samples before this point only set the reference: a third of the run, at most a minute. (TSan's
// shadow memory still grows for about 20 s; the bound below covers the rest of that in the short
// form.)
constexpr int kMaxWarmupSeconds = 60;
constexpr int kWarmupDivisor = 3;
// After warm-up, RssAnon may rise this far above its value at the end of the warm-up (allocator
// slack, a burst of batches in flight), and the descriptors this far above their warm-up maximum.
constexpr std::uint64_t kRssAnonGrowthBoundKib = 4096;
constexpr std::size_t kFdSlack = 4;

constexpr int kAlive = 3;  // producers alive at once
constexpr int kThreads = 3;
constexpr int kRatePerThread = 1000;
constexpr int kEventsPerThread = 1500;  // about 1.5 s of life for a producer that exits
constexpr int kKillOneIn = 3;
constexpr auto kTick = 50ms;  // the producer loop's pace
constexpr auto kSampleEvery = 1s;
constexpr int kReportEverySamples = 60;
// Every bounded wait; generous, because sanitizer builds on two shared cores are slow.
constexpr auto kWait = 60s;
constexpr int kKilledStatus = 128 + SIGKILL;
// Smaller segments (1.3 MB rather than the default 5 MB): thousands are made and reclaimed.
const std::vector<std::string> kProducerGeometry = {"--rings", "4", "--ring-capacity", "4096"};

int soak_seconds() {
  const char* env = std::getenv(kDurationEnv);
  if (env == nullptr) return kDefaultSeconds;
  return std::atoi(env);
}

// The collector's environment. ASan holds freed memory in a quarantine of 256 MB before reusing it,
// so that RssAnon would climb for minutes; a small quarantine lets it level off as it does without
// the sanitizer (the other tests keep the default). Other builds: none.
std::vector<std::string> collector_env() {
  if (std::string_view(SHMSTATS_SANITIZE) != "address") return {};
  const char* inherited = std::getenv("ASAN_OPTIONS");
  return {"ASAN_OPTIONS=" + std::string(inherited == nullptr ? "" : inherited) +
          ":quarantine_size_mb=1:thread_local_quarantine_size_kb=64"};
}

struct Sample {
  int second = 0;
  std::uint64_t vm_rss_kib = 0;
  std::uint64_t rss_anon_kib = 0;
  std::uint64_t rss_shmem_kib = 0;
  std::size_t fds = 0;
};

std::uint64_t status_field_kib(const std::string& status, const std::string& field) {
  const auto at = status.find("\n" + field + ":");
  if (at == std::string::npos) return 0;
  return std::strtoull(status.c_str() + at + field.size() + 2, nullptr, 10);
}

Sample sample_of(pid_t pid, int second) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::ifstream in(proc + "/status");
  const std::string status((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Sample s;
  s.second = second;
  s.vm_rss_kib = status_field_kib(status, "VmRSS");
  s.rss_anon_kib = status_field_kib(status, "RssAnon");
  s.rss_shmem_kib = status_field_kib(status, "RssShmem");
  std::error_code ignored;
  for (auto it = std::filesystem::directory_iterator(proc + "/fd", ignored);
       it != std::filesystem::directory_iterator(); it.increment(ignored)) {
    ++s.fds;
  }
  return s;
}

std::string describe(const char* what, const Sample& s) {
  char line[160];
  std::snprintf(line, sizeof(line),
                "%-18s t=%4d s  VmRSS %7llu KiB  RssAnon %7llu KiB  RssShmem %7llu KiB  fds %zu",
                what, s.second, static_cast<unsigned long long>(s.vm_rss_kib),
                static_cast<unsigned long long>(s.rss_anon_kib),
                static_cast<unsigned long long>(s.rss_shmem_kib), s.fds);
  return line;
}

// A producer of the soak: pushes kEventsPerThread values per thread and exits, or, if `doomed`,
// pushes until it is SIGKILLed.
struct Producer {
  ChildProcess process;
  bool doomed = false;
  std::optional<shm::Segment> watch;  // a doomed producer's segment, to see the collector drain it
};

Producer start_producer(const std::string& prefix, bool doomed) {
  std::vector<std::string> argv = {testing::helper_path(),
                                   "produce",
                                   "--prefix",
                                   prefix,
                                   "--threads",
                                   std::to_string(kThreads),
                                   "--rate",
                                   std::to_string(kRatePerThread)};
  argv.insert(argv.end(), kProducerGeometry.begin(), kProducerGeometry.end());
  if (doomed) {
    argv.emplace_back("--forever");
  } else {
    argv.insert(argv.end(), {"--events", std::to_string(kEventsPerThread)});
  }
  return Producer{ChildProcess::spawn(argv), doomed, std::nullopt};
}

// Producers start and exit for the whole run (a third SIGKILLed): after warm-up the collector's
// RssAnon stays within kRssAnonGrowthBoundKib of its value at the end of warm-up and its open
// descriptors within kFdSlack of their warm-up maximum; at the end every segment is reclaimed and
// both daemons exit 0 on SIGTERM.
TEST(CollectorSoakTest, MemoryAndDescriptorsStayBoundedWhileProducersComeAndGo) {
  const int seconds = soak_seconds();
  ASSERT_GT(seconds, 0) << kDurationEnv << " must be a positive number of seconds";
  const int warmup_seconds = std::min(kMaxWarmupSeconds, seconds / kWarmupDivisor);
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  PipelineProcess recv = start_receiver(kRecvBin, dir.file("out.jsonl"));
  ASSERT_NE(recv.udp_port, 0);
  PipelineProcess sut =
      start_collector(kCollectorBin, guard.prefix(),
                      {"--udp", "127.0.0.1:" + std::to_string(recv.udp_port)}, collector_env());
  ASSERT_NE(sut.http_port, 0);
  const pid_t pid = sut.process.pid();

  std::list<Producer> producers;  // a list: ChildProcess moves, but does not move-assign
  int started = 0;
  int killed = 0;
  std::vector<Sample> samples = {sample_of(pid, 0)};
  const auto begin = Clock::now();
  const auto end = begin + std::chrono::seconds(seconds);
  auto next_sample = begin + kSampleEvery;
  while (Clock::now() < end) {
    for (auto it = producers.begin(); it != producers.end();) {
      if (it->doomed && drained_from(*it->watch) > 0) {
        it->process.kill(SIGKILL);
        ASSERT_EQ(it->process.wait(kWait), kKilledStatus);
        ++killed;
        it = producers.erase(it);
      } else if (!it->doomed && it->process.wait(0ms) != -1) {
        ASSERT_EQ(it->process.wait(0ms), 0) << it->process.read_all(false);
        it = producers.erase(it);
      } else {
        ++it;
      }
    }
    while (producers.size() < kAlive) {
      Producer p = start_producer(guard.prefix(), ++started % kKillOneIn == 0);
      const std::string name = p.process.read_line_starting("segment ", kWait);
      ASSERT_FALSE(name.empty()) << "producer " << started << " made no segment";
      if (p.doomed) {
        auto watch = shm::Segment::attach(name, shm::Segment::Access::kReadOnly);
        ASSERT_TRUE(watch) << watch.error().message;
        p.watch.emplace(std::move(watch).value());
      }
      producers.push_back(std::move(p));
    }
    if (Clock::now() >= next_sample) {
      const auto second = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - begin);
      samples.push_back(sample_of(pid, static_cast<int>(second.count())));
      if (samples.size() % kReportEverySamples == 0) {
        std::printf("%s\n", describe("sample", samples.back()).c_str());
        std::fflush(stdout);
      }
      next_sample += kSampleEvery;
    }
    std::this_thread::sleep_for(kTick);
  }
  for (Producer& p : producers) {
    if (p.doomed) {
      p.process.kill(SIGKILL);
      ASSERT_EQ(p.process.wait(kWait), kKilledStatus);
      ++killed;
    } else {
      ASSERT_EQ(p.process.wait(kWait), 0);
    }
  }
  producers.clear();
  // A segment's file goes before its reclaim is counted: wait for both.
  std::string metrics;
  EXPECT_TRUE(wait_until(
      [&] {
        metrics = sut.metrics();
        return shm::list_segments(guard.prefix()).empty() &&
               testing::prom_value(metrics, "shmstats_collector_segments_reclaimed_total") >=
                   static_cast<double>(started);
      },
      kWait,
      [&] {
        return std::to_string(shm::list_segments(guard.prefix()).size()) + " segments left\n" +
               metrics;
      }));
  const Sample last = sample_of(pid, seconds);
  samples.push_back(last);

  const auto warm = std::find_if(samples.begin(), samples.end(),
                                 [&](const Sample& s) { return s.second >= warmup_seconds; });
  ASSERT_NE(warm, samples.end()) << "no sample after the warm-up of " << warmup_seconds << " s";
  const Sample warmed = *warm;
  std::size_t warmup_max_fds = 0;
  for (auto it = samples.begin(); it != warm; ++it) {
    warmup_max_fds = std::max(warmup_max_fds, it->fds);
  }
  Sample peak = warmed;
  for (auto it = warm; it != samples.end(); ++it) {
    peak.vm_rss_kib = std::max(peak.vm_rss_kib, it->vm_rss_kib);
    if (it->rss_anon_kib > peak.rss_anon_kib) {
      peak.rss_anon_kib = it->rss_anon_kib;
      peak.second = it->second;  // the time of the RssAnon maximum
    }
    peak.rss_shmem_kib = std::max(peak.rss_shmem_kib, it->rss_shmem_kib);
    peak.fds = std::max(peak.fds, it->fds);
  }
  const std::string summary =
      "soak of " + std::to_string(seconds) + " s: " + std::to_string(started) + " producers, " +
      std::to_string(killed) + " SIGKILLed\n" + describe("start", samples.front()) + "\n" +
      describe("after warm-up", warmed) + "\n" + describe("max after warm-up", peak) + "\n" +
      describe("end", last);
  std::printf("%s\n", summary.c_str());
  std::fflush(stdout);

  EXPECT_LE(peak.rss_anon_kib, warmed.rss_anon_kib + kRssAnonGrowthBoundKib) << summary;
  EXPECT_LE(peak.fds, std::max(warmup_max_fds, warmed.fds) + kFdSlack) << summary;
  EXPECT_EQ(testing::prom_value(metrics, "shmstats_collector_segments_attached_total"), started)
      << summary;
  EXPECT_EQ(testing::prom_value(metrics, "shmstats_collector_segments_reclaimed_total"), started)
      << summary;
  sut.process.kill(SIGTERM);
  EXPECT_EQ(sut.process.wait(kWait), 0);
  recv.process.kill(SIGTERM);
  EXPECT_EQ(recv.process.wait(kWait), 0);
}

}  // namespace
}  // namespace shmstats
