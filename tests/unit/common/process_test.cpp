// common::Process against real children (/bin/sh): stdout and stderr captured through pipes, the
// exit status and the killing signal reported, the bounded wait, the kill at the deadline, the
// environment overrides and the reaping of a child still running when its Process goes away.
#include "common/process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <cerrno>
#include <chrono>
#include <string>

namespace shmstats::common {
namespace {

using namespace std::chrono_literals;
using Stream = Process::Stream;

constexpr auto kLineTimeout = 10s;
constexpr auto kExitTimeout = 10s;

Process shell(const std::string& script, SpawnOptions options = {}) {
  options.argv = {"/bin/sh", "-c", script};
  if (options.out.kind == Redirect::Kind::kInherit) options.out = Redirect::pipe();
  auto process = Process::spawn(options);
  if (!process) throw std::runtime_error(process.error().message);
  return std::move(process).value();
}

TEST(ProcessTest, CapturesStdoutLineByLine) {
  auto sut = shell("echo first; echo second");

  const auto first = sut.read_line(Stream::kOut, kLineTimeout);
  const auto second = sut.read_line(Stream::kOut, kLineTimeout);
  const auto end = sut.read_line(Stream::kOut, kLineTimeout);

  EXPECT_EQ(first, "first");
  EXPECT_EQ(second, "second");
  EXPECT_EQ(end, std::nullopt);  // end of file
  EXPECT_FALSE(sut.open(Stream::kOut));
}

TEST(ProcessTest, CapturesStderrApartFromStdout) {
  SpawnOptions options;
  options.err = Redirect::pipe();
  auto sut = shell("echo out; echo err >&2", options);

  const std::string out = sut.read_all(Stream::kOut, kLineTimeout);
  const std::string err = sut.read_all(Stream::kErr, kLineTimeout);

  EXPECT_EQ(out, "out\n");
  EXPECT_EQ(err, "err\n");
}

TEST(ProcessTest, ReportsTheExitCode) {
  constexpr int kCode = 3;
  auto sut = shell("exit " + std::to_string(kCode));

  const auto status = sut.wait_for(kExitTimeout);

  ASSERT_TRUE(status);
  EXPECT_TRUE(status->exited());
  EXPECT_FALSE(status->success());
  EXPECT_EQ(status->exit_code(), kCode);
  EXPECT_EQ(status->code(), kCode);
  EXPECT_EQ(status->describe(), "exited with status 3");
  EXPECT_EQ(sut.exit_status()->code(), kCode);
}

TEST(ProcessTest, ReportsTheSignalThatEndedTheChild) {
  auto sut = shell("kill -TERM $$");

  const auto status = sut.wait_for(kExitTimeout);

  ASSERT_TRUE(status);
  EXPECT_TRUE(status->signaled());
  EXPECT_EQ(status->term_signal(), SIGTERM);
  EXPECT_EQ(status->code(), 128 + SIGTERM);
}

TEST(ProcessTest, WaitForGivesUpAtItsDeadlineWhileTheChildRuns) {
  constexpr auto kShortWait = 50ms;
  auto sut = shell("exec sleep 30");

  const auto status = sut.wait_for(kShortWait);

  EXPECT_EQ(status, std::nullopt);
  EXPECT_EQ(sut.try_wait(), std::nullopt);
  EXPECT_EQ(::kill(sut.pid(), 0), 0) << "still running";
}

TEST(ProcessTest, WaitOrKillKillsTheChildAtTheDeadline) {
  constexpr auto kDeadline = 100ms;
  auto sut = shell("exec sleep 30");

  const auto started = std::chrono::steady_clock::now();
  const ExitStatus status = sut.wait_or_kill(kDeadline);
  const auto waited = std::chrono::steady_clock::now() - started;

  EXPECT_TRUE(status.signaled());
  EXPECT_EQ(status.term_signal(), SIGKILL);
  EXPECT_GE(waited, kDeadline);
  EXPECT_EQ(::kill(sut.pid(), 0), -1) << "reaped";
}

TEST(ProcessTest, DestructorKillsAndReapsAChildStillRunning) {
  pid_t pid = -1;
  {
    auto sut = shell("exec sleep 30");
    pid = sut.pid();
    ASSERT_EQ(::kill(pid, 0), 0);
  }

  errno = 0;
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH) << "neither running nor a zombie";
}

TEST(ProcessTest, EnvironmentOverridesReplaceTheInheritedValue) {
  ASSERT_EQ(::setenv("SHMSTATS_PROCESS_TEST", "inherited", 1), 0);
  SpawnOptions options;
  options.env_overrides = {"SHMSTATS_PROCESS_TEST=override", "SHMSTATS_PROCESS_TEST_NEW=added"};
  auto sut = shell("echo \"$SHMSTATS_PROCESS_TEST $SHMSTATS_PROCESS_TEST_NEW $HOME\"", options);

  const auto line = sut.read_line(Stream::kOut, kLineTimeout);
  ::unsetenv("SHMSTATS_PROCESS_TEST");

  ASSERT_TRUE(line);
  const char* home = std::getenv("HOME");
  EXPECT_EQ(*line, std::string("override added ") + (home != nullptr ? home : ""));
}

TEST(ProcessTest, RunsInTheWorkingDirectoryAndFindsProgramsInPath) {
  SpawnOptions options;
  options.argv = {"pwd"};
  options.search_path = true;
  options.working_dir = "/";
  options.out = Redirect::pipe();
  auto sut = Process::spawn(options);
  ASSERT_TRUE(sut) << sut.error().message;

  EXPECT_EQ(sut.value().read_line(Stream::kOut, kLineTimeout), "/");
  EXPECT_TRUE(sut.value().wait().success());
}

TEST(ProcessTest, MissingProgramIsReportedAsNotFound) {
  SpawnOptions options;
  options.argv = {"/nonexistent/shmstats-no-such-program"};

  const auto sut = Process::spawn(options);

  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, shm::Errc::kNotFound);
  EXPECT_NE(sut.error().message.find("/nonexistent/shmstats-no-such-program"), std::string::npos);
}

}  // namespace
}  // namespace shmstats::common
