// Segment creation and access as security boundaries (issue #5): exclusive creation that follows
// no symlink, and owner-only segments that another uid cannot open. Real /dev/shm files; the
// other user is a forked child that drops to uid and gid 65534 ("nobody"), so this needs root
// (CI runs the suite as root) and fails, rather than skips, without it.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "shm/segment.h"
#include "tests/support/support.h"

namespace shmstats::shm {
namespace {

using shmstats::testing::SegmentGuard;
using shmstats::testing::unique_prefix;

constexpr uid_t kNobody = 65534;

::testing::AssertionResult running_as_root() {
  if (::geteuid() == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "this test acts as another user (uid " << kNobody
         << ") and needs root to become it; run the suite as root, as CI does (euid is "
         << ::geteuid() << ")";
}

SegmentOptions small_options(const std::string& prefix) {
  SegmentOptions o;
  o.prefix = prefix;
  o.service = "security-test";
  o.ring_count = 1;
  o.ring_capacity = 16;
  o.series_capacity = 8;
  o.strings_size = 4096;
  return o;
}

// The name Segment::create gives this process's first segment with `prefix`.
std::string first_segment_name(const std::string& prefix) {
  return make_segment_name(prefix, ::getpid(), process_start_time(::getpid()), 0);
}

// A directory under /tmp for link targets, removed at the end.
class TargetDir {
 public:
  TargetDir() {
    char pattern[] = "/tmp/shmstats-security-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  TargetDir(const TargetDir&) = delete;
  TargetDir& operator=(const TargetDir&) = delete;
  ~TargetDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(SegmentSecurityTest, CreateRefusesAPlantedSymlinkAndLeavesItsTargetAlone) {
  SegmentGuard guard(unique_prefix());
  TargetDir dir;
  const std::string target = dir.file("precious");
  const std::string kContent = "not a segment";
  constexpr mode_t kTargetMode = 0644;
  {
    std::ofstream out(target);
    out << kContent;
  }
  ASSERT_EQ(::chmod(target.c_str(), kTargetMode), 0);
  const std::string link = std::string(kShmDirectory) + "/" + first_segment_name(guard.prefix());
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0) << std::strerror(errno);

  const auto sut = Segment::create(small_options(guard.prefix()));

  ASSERT_FALSE(sut) << "created through a symlink";
  EXPECT_EQ(sut.error().code, Errc::kExists) << sut.error().message;
  EXPECT_EQ(read_file(target), kContent) << "the target was not truncated or written";
  struct stat st {};
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, kTargetMode) << "the target's mode was not changed";
  EXPECT_EQ(st.st_size, static_cast<off_t>(kContent.size()));
  ASSERT_EQ(::lstat(link.c_str(), &st), 0) << "the planted link is left where it was";
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

TEST(SegmentSecurityTest, CreateThroughADanglingSymlinkCreatesNothing) {
  SegmentGuard guard(unique_prefix());
  TargetDir dir;
  const std::string target = dir.file("would-be-created");
  const std::string link = std::string(kShmDirectory) + "/" + first_segment_name(guard.prefix());
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0) << std::strerror(errno);

  const auto sut = Segment::create(small_options(guard.prefix()));

  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, Errc::kExists) << sut.error().message;
  struct stat st {};
  EXPECT_NE(::lstat(target.c_str(), &st), 0) << "the link's target was created";
}

// Child exit codes of the attempt below.
constexpr int kRefused = 0;     // EACCES, as wanted
constexpr int kOpened = 1;      // the other user opened it
constexpr int kOtherError = 2;  // failed, but not with EACCES
constexpr int kNoSetuid = 3;    // could not become the other user

// In a forked child (this process has one thread): become kNobody and try to open `name` for
// reading, first as shm_open does, then by its path. Only async-signal-safe calls.
int open_as_nobody(const char* shm_name, const char* path) {
  if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
      ::setresuid(kNobody, kNobody, kNobody) != 0) {
    return kNoSetuid;
  }
  const int fd = ::shm_open(shm_name, O_RDONLY, 0);
  if (fd >= 0) return kOpened;
  if (errno != EACCES) return kOtherError;
  const int fd2 = ::open(path, O_RDONLY | O_NOFOLLOW);
  if (fd2 >= 0) return kOpened;
  return errno == EACCES ? kRefused : kOtherError;
}

TEST(SegmentSecurityTest, OtherUserCannotOpenAnOwnerOnlySegmentEvenReadOnly) {
  ASSERT_TRUE(running_as_root());
  SegmentGuard guard(unique_prefix());
  auto segment = Segment::create(small_options(guard.prefix()));
  ASSERT_TRUE(segment) << segment.error().message;
  const std::string shm_name = "/" + segment.value().name();
  const std::string path = std::string(kShmDirectory) + shm_name;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  ASSERT_EQ(st.st_mode & 07777, 0600U);
  ASSERT_EQ(st.st_uid, 0U);

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(open_as_nobody(shm_name.c_str(), path.c_str()));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);

  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kRefused)
      << "1: uid " << kNobody << " opened the segment; 2: it failed without EACCES; 3: setuid";
}

}  // namespace
}  // namespace shmstats::shm
