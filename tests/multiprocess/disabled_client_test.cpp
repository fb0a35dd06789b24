// Issue #5: a service whose /dev/shm is full or read-only keeps running with metrics disabled.
//
// The conditions are real: the helper process ("no-shm", tests/support/helper_main.cpp) mounts a
// tiny or a read-only tmpfs over /dev/shm in a private mount namespace of its own, so this test
// process and every other process keep the real /dev/shm. That needs root (CAP_SYS_ADMIN), as CI
// runs. Without root these tests FAIL with a message saying so; they do not skip, so that a CI
// that lost root cannot pass them silently.
#include <gtest/gtest.h>
#include <unistd.h>

#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "shmstats/shmstats.h"
#include "tests/support/support.h"

namespace shmstats {
namespace {

using testing::ChildProcess;
using testing::helper_path;
using testing::line_field;
using testing::SegmentGuard;
using testing::unique_prefix;
using namespace std::chrono_literals;

constexpr int kThreads = 4;
constexpr int kEventsPerThread = 5000;
constexpr std::string_view kLogPrefix = "shmstats: metrics disabled";

struct HelperRun {
  int status = -1;
  std::string output;
  std::vector<std::string> log_lines;  // the client's log lines (stderr, redirected)

  // The rest of the line that starts with `prefix`, or "" if there is none.
  std::string line(std::string_view prefix) const {
    std::istringstream in(output);
    for (std::string l; std::getline(in, l);) {
      if (l.rfind(prefix, 0) == 0) return l.substr(prefix.size());
    }
    return {};
  }
};

::testing::AssertionResult running_as_root() {
  if (::geteuid() == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "this test needs root (CAP_SYS_ADMIN) to mount a tmpfs over /dev/shm in a private "
            "mount namespace; run it as root, as CI does (euid is "
         << ::geteuid() << ")";
}

HelperRun run_no_shm(const std::string& mode, const std::string& prefix) {
  auto child =
      ChildProcess::spawn({helper_path(), "no-shm", "--shm", mode, "--prefix", prefix, "--threads",
                           std::to_string(kThreads), "--events", std::to_string(kEventsPerThread)});
  HelperRun run;
  run.output = child.read_all(true);
  run.status = child.wait(60s);
  std::istringstream in(run.output);
  for (std::string l; std::getline(in, l);) {
    if (l.rfind(kLogPrefix, 0) == 0) run.log_lines.push_back(l);
  }
  return run;
}

constexpr std::uint64_t kPushes = 2ULL * kThreads * kEventsPerThread;  // handle + dynamic path

// Runs the helper's no-shm `mode` and checks what a service sees: Client::create fails with
// `code`, create_or_disabled returns a disabled client with the same error, every push on both
// paths is refused and counted as dropped, and exactly one line is logged, holding each of
// `log_parts`.
void expect_disabled_run(const char* mode, ErrorCode code,
                         std::initializer_list<const char*> log_parts) {
  SegmentGuard guard(unique_prefix());

  const HelperRun run = run_no_shm(mode, guard.prefix());

  ASSERT_EQ(run.status, 0) << run.output;
  const std::string done = run.line("done ");
  ASSERT_FALSE(done.empty()) << run.output;
  EXPECT_EQ(line_field(done, "strict_code"), static_cast<std::uint64_t>(code))
      << "Client::create stays strict: " << done;
  EXPECT_EQ(line_field(done, "enabled"), 0U) << done;
  EXPECT_EQ(line_field(done, "error_code"), static_cast<std::uint64_t>(code)) << done;
  EXPECT_EQ(line_field(done, "pushes"), kPushes) << done;
  EXPECT_EQ(line_field(done, "accepted"), 0U) << done;
  EXPECT_EQ(line_field(done, "dropped"), kPushes) << done;
  ASSERT_EQ(run.log_lines.size(), 1U) << run.output;
  const std::string& log = run.log_lines[0];
  for (const char* part : log_parts) EXPECT_NE(log.find(part), std::string::npos) << log;
}

TEST(DisabledClientTest, FullShmDirectoryDisablesMetricsAndCountsEveryPush) {
  ASSERT_TRUE(running_as_root());
  expect_disabled_run("full", ErrorCode::kNoSpace,
                      {"in /dev/shm", "No space left on device", "To fix: free space in /dev/shm"});
}

TEST(DisabledClientTest, ReadOnlyShmDirectoryDisablesMetricsAndCountsEveryPush) {
  ASSERT_TRUE(running_as_root());
  expect_disabled_run("readonly", ErrorCode::kSystem,
                      {"in /dev/shm", "Read-only file system", "not read-only"});
}

TEST(DisabledClientTest, ForkedChildThatCannotCreateItsSegmentRunsDisabled) {
  ASSERT_TRUE(running_as_root());
  SegmentGuard guard(unique_prefix());

  const HelperRun run = run_no_shm("fork-full", guard.prefix());

  ASSERT_EQ(run.status, 0) << run.output;
  const std::string child = run.line("child ");
  const std::string done = run.line("done ");
  ASSERT_FALSE(child.empty()) << run.output;
  ASSERT_FALSE(done.empty()) << run.output;
  constexpr std::uint64_t kChildPushes = kPushes + 1;  // and its first, single-threaded push
  EXPECT_EQ(line_field(child, "enabled"), 0U) << child;
  EXPECT_EQ(line_field(child, "error_code"), static_cast<std::uint64_t>(ErrorCode::kNoSpace))
      << child;
  EXPECT_EQ(line_field(child, "pushes"), kChildPushes) << child;
  EXPECT_EQ(line_field(child, "accepted"), 0U) << child;
  EXPECT_EQ(line_field(child, "dropped"), kChildPushes) << child;
  EXPECT_EQ(line_field(done, "child_status"), 0U) << done;
  EXPECT_EQ(line_field(done, "parent_enabled"), 1U) << done;
  EXPECT_EQ(line_field(done, "parent_pushed"), 1U) << "the child never wrote the parent's rings";
  ASSERT_EQ(run.log_lines.size(), 1U) << "one line, from the child: " << run.output;
  EXPECT_NE(run.log_lines[0].find("No space left on device"), std::string::npos)
      << run.log_lines[0];
}

}  // namespace
}  // namespace shmstats
