// Leak checks of the daemons (issue #5). The real shmstats-collector and shmstats-recv run while
// short-lived producers (shmstats-test-helper's produce mode) come and go, one pair after another:
// the collector attaches, drains and reclaims a segment per producer, of one that exited and of one
// that was SIGKILLed. Then both daemons stop on SIGTERM. A leak, or any memory error, makes a
// daemon exit non-zero with a report on its stderr, which the test captures to a file.
//
// The checker depends on the build (tests/e2e/CMakeLists.txt): in the ASan build LeakSanitizer,
// which runs from the daemon's exit handlers (not after _Exit or a SIGKILL, hence the SIGTERM and
// the check that the handlers ran); in builds without a sanitizer valgrind's memcheck, which
// checks at any exit. The TSan build has neither and does not build this test.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "shm/segment.h"
#include "tests/support/pipeline.h"
#include "tests/support/segments.h"
#include "tests/support/support.h"

namespace shmstats {
namespace {

using testing::ChildProcess;
using testing::drained_from;
using testing::file_gets;
using testing::file_text;
using testing::PipelineProcess;
using testing::SegmentGuard;
using testing::start_collector;
using testing::start_receiver;
using testing::TempDir;
using testing::unique_prefix;
using testing::wait_until;
using namespace std::chrono_literals;

const std::string kCollectorBin = SHMSTATS_COLLECTOR_BIN;
const std::string kRecvBin = SHMSTATS_RECV_BIN;
// valgrind's path; empty in the ASan build, where LeakSanitizer checks instead.
const std::string kValgrind = SHMSTATS_VALGRIND;
// memcheck's exit status when it found an error (a definite or indirect leak counts as one).
constexpr int kValgrindErrorExit = 99;

// Every bounded wait; generous, because a daemon under valgrind or ASan on two shared cores is
// slow.
constexpr auto kWait = 60s;
constexpr int kKilledStatus = 128 + SIGKILL;
// Bytes of a daemon's stderr shown when an assertion fails: the end, where the report is.
constexpr std::size_t kShownStderrBytes = 6000;

// Smaller segments (1.3 MB rather than the default 5 MB), cheap to make and reclaim.
const std::vector<std::string> kProducerGeometry = {"--rings", "4", "--ring-capacity", "4096"};

std::string tail_of(const std::string& text) {
  return text.size() <= kShownStderrBytes ? text : text.substr(text.size() - kShownStderrBytes);
}

// Writes an executable script at `path` that runs `bin` with its arguments under the build's leak
// checker, its stderr going to `stderr_path`. exec keeps the pid, so the test signals the daemon
// itself. LeakSanitizer is asked for ASan's exit statistics (atexit=1): they come from the same
// exit handlers as the leak check, so their presence shows the check ran.
std::string write_launcher(const std::string& path, const std::string& bin,
                           const std::string& stderr_path) {
  std::ofstream out(path);
  out << "#!/bin/sh\n"
      << "exec 2>'" << stderr_path << "'\n";
  if (kValgrind.empty()) {
    out << "export ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:atexit=1\"\n"
        << "exec '" << bin << "' \"$@\"\n";
  } else {
    out << "exec '" << kValgrind
        << "' --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode="
        << kValgrindErrorExit << " '" << bin << "' \"$@\"\n";
  }
  out.close();
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path;
}

// Empty if the daemon's stderr shows its checker ran and found nothing, else what is wrong.
std::string checker_complaint(const std::string& stderr_text) {
  if (kValgrind.empty()) {
    if (stderr_text.find("LeakSanitizer") != std::string::npos) return "a LeakSanitizer report";
    if (stderr_text.find("ERROR: AddressSanitizer") != std::string::npos) return "an ASan report";
    if (stderr_text.find("AddressSanitizer exit stats") == std::string::npos) {
      return "no ASan exit statistics: the exit handlers (and the leak check) did not run";
    }
    return "";
  }
  if (stderr_text.find("ERROR SUMMARY: 0 errors") == std::string::npos) {
    return "memcheck found errors, or did not finish";
  }
  return "";
}

// A producer: `threads` threads push into counter "seq" at a steady rate, `events` values each,
// or until killed if `events` is 0.
ChildProcess start_producer(const std::string& prefix, int threads, int events) {
  constexpr int kRatePerThread = 1000;
  std::vector<std::string> argv = {testing::helper_path(),
                                   "produce",
                                   "--prefix",
                                   prefix,
                                   "--threads",
                                   std::to_string(threads),
                                   "--rate",
                                   std::to_string(kRatePerThread)};
  argv.insert(argv.end(), kProducerGeometry.begin(), kProducerGeometry.end());
  if (events == 0) {
    argv.emplace_back("--forever");
  } else {
    argv.insert(argv.end(), {"--events", std::to_string(events)});
  }
  return ChildProcess::spawn(argv);
}

// Ten pairs of producers, each pair alive together: one pushes 1,000 values per thread and exits,
// the other pushes until the collector has drained some of it and is then SIGKILLed. The
// collector reclaims all twenty segments; then both daemons, stopped with SIGTERM, exit 0 and
// their leak checker reports nothing.
TEST(DaemonLeakTest, CollectorAndReceiverExitWithoutLeaksAfterProducersComeAndGo) {
  constexpr int kPairs = 10;
  constexpr int kThreads = 2;
  constexpr int kEventsPerThread = 1000;
  constexpr int kProducers = 2 * kPairs;
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  const std::string collector_stderr = dir.file("collector.stderr");
  const std::string recv_stderr = dir.file("recv.stderr");
  PipelineProcess recv = start_receiver(write_launcher(dir.file("recv.sh"), kRecvBin, recv_stderr),
                                        dir.file("out.jsonl"));
  ASSERT_NE(recv.udp_port, 0) << tail_of(file_text(recv_stderr));
  PipelineProcess sut =
      start_collector(write_launcher(dir.file("collector.sh"), kCollectorBin, collector_stderr),
                      guard.prefix(), {"--udp", "127.0.0.1:" + std::to_string(recv.udp_port)});
  ASSERT_NE(sut.http_port, 0) << tail_of(file_text(collector_stderr));

  for (int pair = 0; pair < kPairs; ++pair) {
    ChildProcess exiting = start_producer(guard.prefix(), kThreads, kEventsPerThread);
    ChildProcess killed = start_producer(guard.prefix(), kThreads, 0);
    const std::string name = killed.read_line_starting("segment ", kWait);
    ASSERT_FALSE(name.empty()) << "pair " << pair;
    {
      auto watch = shm::Segment::attach(name, shm::Segment::Access::kReadOnly);
      ASSERT_TRUE(watch) << watch.error().message;
      ASSERT_TRUE(
          wait_until([&] { return drained_from(watch.value()) > 0; }, kWait,
                     [&] { return "drained " + std::to_string(drained_from(watch.value())); }))
          << name;
    }
    killed.kill(SIGKILL);
    ASSERT_EQ(killed.wait(kWait), kKilledStatus) << "pair " << pair;
    ASSERT_EQ(exiting.wait(kWait), 0) << "pair " << pair;
  }
  // A segment's file goes before its reclaim is counted: wait for both.
  std::string collector_metrics;
  ASSERT_TRUE(wait_until(
      [&] {
        collector_metrics = sut.metrics();
        return shm::list_segments(guard.prefix()).empty() &&
               testing::prom_value(collector_metrics,
                                   "shmstats_collector_segments_reclaimed_total") >= kProducers;
      },
      kWait,
      [&] {
        return std::to_string(shm::list_segments(guard.prefix()).size()) + " segments left\n" +
               collector_metrics;
      }));
  EXPECT_EQ(testing::prom_value(collector_metrics, "shmstats_collector_segments_attached_total"),
            kProducers);
  EXPECT_EQ(testing::prom_value(collector_metrics, "shmstats_collector_segments_reclaimed_total"),
            kProducers);
  EXPECT_GT(recv.metric("shmstats_recv_datagrams_total"), 0);

  sut.process.kill(SIGTERM);
  const int collector_status = sut.process.wait(kWait);
  recv.process.kill(SIGTERM);
  const int recv_status = recv.process.wait(kWait);
  const std::string collector_text = file_text(collector_stderr);
  const std::string recv_text = file_text(recv_stderr);
  EXPECT_EQ(collector_status, 0) << tail_of(collector_text);
  EXPECT_EQ(checker_complaint(collector_text), "") << tail_of(collector_text);
  EXPECT_EQ(recv_status, 0) << tail_of(recv_text);
  EXPECT_EQ(checker_complaint(recv_text), "") << tail_of(recv_text);
}

}  // namespace
}  // namespace shmstats
