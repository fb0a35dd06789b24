// The collector's and the receiver's security promises with the real binaries (issue #5): only
// segments of allowed uids that are not group- or world-writable are attached (refusals counted,
// logged and listed on /health), and HTTP (and the receiver's UDP) listen on 127.0.0.1 unless
// told otherwise, checked against the kernel's socket tables. Segments of another user are made
// by shmstats-test-corruptor's as-user mode (uid 65534, "nobody"), so this needs root (CI runs
// the suite as root) and fails, rather than skips, without it.
#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "shm/segment.h"
#include "tests/support/pipeline.h"
#include "tests/support/support.h"

namespace shmstats {
namespace {

using nlohmann::json;
using testing::ChildProcess;
using testing::file_gets;
using testing::file_text;
using testing::PipelineProcess;
using testing::SegmentGuard;
using testing::TempDir;
using testing::unique_prefix;
using testing::wait_until;
using namespace std::chrono_literals;

const std::string kCollectorBin = SHMSTATS_COLLECTOR_BIN;
const std::string kRecvBin = SHMSTATS_RECV_BIN;
const std::string kCorruptorBin = SHMSTATS_TEST_CORRUPTOR;

constexpr auto kWait = 60s;
constexpr uid_t kNobody = 65534;
constexpr std::uint16_t kDefaultHttpPort = 9102;  // collector/config.h

::testing::AssertionResult running_as_root() {
  if (::geteuid() == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "this test makes segments as another user (uid " << kNobody
         << ") and needs root to do so; run the suite as root, as CI does (euid is " << ::geteuid()
         << ")";
}

// The collector with its stderr in `log` and `args` added.
PipelineProcess start_collector(const std::string& prefix, const std::vector<std::string>& args,
                                const std::string& log) {
  std::vector<std::string> argv = {kCollectorBin, "--shm-prefix", prefix, "--http",
                                   "127.0.0.1:0", "--log-level",  "warn"};
  argv.insert(argv.end(), args.begin(), args.end());
  PipelineProcess p{ChildProcess::spawn(argv, {}, log)};
  const std::string port = p.process.read_line_starting("listening http 127.0.0.1:", kWait);
  p.http_port = port.empty() ? 0 : static_cast<std::uint16_t>(std::stoul(port));
  return p;
}

// A segment created by uid `uid` in a child that holds it until the end of the test.
struct ForeignSegment {
  ChildProcess process;
  std::string name;
};

ForeignSegment make_segment_as(uid_t uid, const std::string& prefix) {
  ForeignSegment s{ChildProcess::spawn({kCorruptorBin, "as-user", "--uid", std::to_string(uid),
                                        "--prefix", prefix}),
                   ""};
  s.name = s.process.read_line_starting("segment ", kWait);
  return s;
}

// /health's quarantine reason for `name` now, or "".
std::string listed_reason(const PipelineProcess& p, const std::string& name) {
  int status = 0;
  const json doc =
      json::parse(testing::http_get(p.http_port, "/health", 5s, &status), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return "";
  for (const auto& q : doc.value("quarantined", json::array())) {
    if (q.value("segment", "") == name) return q.value("reason", "");
  }
  return "";
}

// /health's quarantine reason for `name`, waited for: /health shows a copy the drain publishes
// up to 250 ms after it counted the quarantine. "" if it never shows.
std::string quarantine_reason(const PipelineProcess& p, const std::string& name) {
  std::string reason;
  (void)wait_until(
      [&] {
        reason = listed_reason(p, name);
        return !reason.empty();
      },
      kWait, [] { return std::string(); });
  return reason;
}

double quarantined_for(const std::string& page, const std::string& reason) {
  return testing::prom_value(page, "shmstats_collector_segments_quarantined_by_reason_total",
                             "reason=\"" + reason + "\"");
}

// Waits until the collector attached one segment, and checks it quarantined none.
::testing::AssertionResult attaches_exactly_one_segment(const PipelineProcess& sut,
                                                        const std::string& log) {
  std::string page;
  auto attached = wait_until(
      [&] {
        page = sut.metrics();
        return testing::prom_value(page, "shmstats_collector_segments_attached_total") == 1;
      },
      kWait, [&] { return page + file_text(log); });
  if (!attached) return attached;
  if (testing::prom_value(page, "shmstats_collector_segments_quarantined_total") != 0) {
    return ::testing::AssertionFailure() << "a segment was quarantined:\n" << page;
  }
  return ::testing::AssertionSuccess();
}

// Waits until the collector counted one quarantine for `reason`, and checks it attached nothing.
::testing::AssertionResult refuses_one_segment_as(const PipelineProcess& sut,
                                                  const std::string& reason) {
  std::string page;
  auto refused = wait_until(
      [&] {
        page = sut.metrics();
        // A scrape reads the counters one by one while the drain thread may be between its two
        // increments, so wait for both the reason and the total to show the refusal.
        return quarantined_for(page, reason) == 1 &&
               testing::prom_value(page, "shmstats_collector_segments_quarantined_total") >= 1;
      },
      kWait, [&] { return page; });
  if (!refused) return refused;
  if (testing::prom_value(page, "shmstats_collector_segments_attached_total") != 0 ||
      testing::prom_value(page, "shmstats_collector_segments_quarantined_total") != 1) {
    return ::testing::AssertionFailure() << "more than the one refusal:\n" << page;
  }
  return ::testing::AssertionSuccess();
}

// --- sockets as the kernel lists them ------------------------------------------------------

// Inodes of the sockets `pid` has open.
std::set<std::string> socket_inodes(pid_t pid) {
  std::set<std::string> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    char target[256] = {};
    const std::string link = dir + "/" + e->d_name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
    const std::string t(target, n > 0 ? static_cast<std::size_t>(n) : 0);
    if (t.rfind("socket:[", 0) == 0) out.insert(t.substr(8, t.size() - 9));
  }
  ::closedir(d);
  return out;
}

// "a.b.c.d:port" of /proc/net/<table>'s sockets that `pid` owns (for tcp, listening ones only);
// sockets in the IPv6 tables are listed as "v6 <hex address>".
std::vector<std::string> bound_addresses(pid_t pid, const std::string& table) {
  const auto inodes = socket_inodes(pid);
  std::vector<std::string> out;
  std::ifstream in("/proc/net/" + table);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
        timeout >> inode;
    if (inodes.count(inode) == 0) continue;
    if (table.rfind("tcp", 0) == 0 && state != "0A") continue;  // 0A: LISTEN
    const auto colon = local.find(':');
    const unsigned long port = std::stoul(local.substr(colon + 1), nullptr, 16);
    if (table.back() == '6') {
      out.push_back("v6 " + local);
      continue;
    }
    in_addr addr{};
    addr.s_addr = static_cast<in_addr_t>(std::stoul(local.substr(0, colon), nullptr, 16));
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &addr, text, sizeof(text));
    out.push_back(std::string(text) + ":" + std::to_string(port));
  }
  return out;
}

// An IPv4 address of this machine other than loopback, or "" if it has none.
std::string other_local_address() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string found;
  for (const ifaddrs* a = list; a != nullptr && found.empty(); a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
    if ((ntohl(in->sin_addr.s_addr) >> 24) == 127) continue;
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    found = text;
  }
  ::freeifaddrs(list);
  return found;
}

// errno of a TCP connect to address:port (0 if it connected).
int connect_error(const std::string& address, std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, address.c_str(), &a.sin_addr);
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a));
  const int err = rc == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

bool port_is_free(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const bool available = ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return available;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += i + " ";
  return out;
}

// --- segment policy ------------------------------------------------------------------------

TEST(CollectorSecurityTest, RefusesSegmentOfAnotherUidAndCountsAndLogsIt) {
  ASSERT_TRUE(running_as_root());
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  const std::string log = dir.file("collector.log");
  auto foreign = make_segment_as(kNobody, guard.prefix());
  ASSERT_FALSE(foreign.name.empty());

  auto sut = start_collector(guard.prefix(), {}, log);
  ASSERT_NE(sut.http_port, 0) << file_text(log);

  ASSERT_TRUE(refuses_one_segment_as(sut, "foreign_owner"));
  const std::string reason = quarantine_reason(sut, foreign.name);
  EXPECT_EQ(reason.rfind("foreign_owner: ", 0), 0U) << reason;
  EXPECT_NE(reason.find("uid 65534"), std::string::npos) << reason;
  EXPECT_TRUE(file_gets(log, "quarantined segment " + foreign.name + " (foreign_owner)", kWait));
  sut.process.kill(SIGTERM);
  EXPECT_EQ(sut.process.wait(kWait), 0);
}

TEST(CollectorSecurityTest, AttachesSegmentOfAnotherUidListedInAllowedUids) {
  ASSERT_TRUE(running_as_root());
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  const std::string log = dir.file("collector.log");
  auto foreign = make_segment_as(kNobody, guard.prefix());
  ASSERT_FALSE(foreign.name.empty());

  auto sut = start_collector(guard.prefix(), {"--allowed-uids", std::to_string(kNobody)}, log);
  ASSERT_NE(sut.http_port, 0) << file_text(log);

  EXPECT_TRUE(attaches_exactly_one_segment(sut, log));
  sut.process.kill(SIGTERM);
  EXPECT_EQ(sut.process.wait(kWait), 0);
}

shm::SegmentOptions group_writable(const std::string& prefix) {
  shm::SegmentOptions o;
  o.prefix = prefix;
  o.service = "group-writable";
  o.ring_count = 1;
  o.ring_capacity = 16;
  o.series_capacity = 8;
  o.strings_size = 4096;
  o.mode = 0660;
  return o;
}

TEST(CollectorSecurityTest, RefusesGroupWritableSegmentAndCountsAndLogsIt) {
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  const std::string log = dir.file("collector.log");
  auto segment = shm::Segment::create(group_writable(guard.prefix()));
  ASSERT_TRUE(segment) << segment.error().message;

  auto sut = start_collector(guard.prefix(), {}, log);
  ASSERT_NE(sut.http_port, 0) << file_text(log);

  ASSERT_TRUE(refuses_one_segment_as(sut, "unsafe_mode"));
  const std::string reason = quarantine_reason(sut, segment.value().name());
  EXPECT_NE(reason.find("mode 0660"), std::string::npos) << reason;
  EXPECT_TRUE(
      file_gets(log, "quarantined segment " + segment.value().name() + " (unsafe_mode)", kWait));
  sut.process.kill(SIGTERM);
  EXPECT_EQ(sut.process.wait(kWait), 0);
}

TEST(CollectorSecurityTest, AttachesGroupWritableSegmentWithAllowGroupWritable) {
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  const std::string log = dir.file("collector.log");
  auto segment = shm::Segment::create(group_writable(guard.prefix()));
  ASSERT_TRUE(segment) << segment.error().message;

  auto sut = start_collector(guard.prefix(), {"--allow-group-writable", "true"}, log);
  ASSERT_NE(sut.http_port, 0) << file_text(log);

  EXPECT_TRUE(attaches_exactly_one_segment(sut, log));
  sut.process.kill(SIGTERM);
  EXPECT_EQ(sut.process.wait(kWait), 0);
}

// --- listening addresses -------------------------------------------------------------------

// Without --http the collector serves on its default, 127.0.0.1:9102: the kernel's table shows
// one listening TCP socket, on loopback, none on IPv6, and another address of the machine (if
// it has one) refuses the connection.
TEST(CollectorSecurityTest, HttpListensOnLoopbackOnlyByDefault) {
  ASSERT_TRUE(port_is_free(kDefaultHttpPort))
      << "port " << kDefaultHttpPort << " (the collector's default) is taken on 127.0.0.1 by "
      << "another process; this test starts the collector with its default HTTP address";
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  const std::string log = dir.file("collector.log");
  auto sut = ChildProcess::spawn({kCollectorBin, "--shm-prefix", guard.prefix()}, {}, log);

  const std::string announced = sut.read_line_starting("listening http ", kWait);

  EXPECT_EQ(announced, "127.0.0.1:" + std::to_string(kDefaultHttpPort)) << file_text(log);
  const auto tcp = bound_addresses(sut.pid(), "tcp");
  EXPECT_EQ(tcp, std::vector<std::string>{"127.0.0.1:" + std::to_string(kDefaultHttpPort)})
      << join(tcp);
  EXPECT_TRUE(bound_addresses(sut.pid(), "tcp6").empty())
      << join(bound_addresses(sut.pid(), "tcp6"));
  EXPECT_EQ(connect_error("127.0.0.1", kDefaultHttpPort), 0);
  if (const std::string other = other_local_address(); !other.empty()) {
    EXPECT_EQ(connect_error(other, kDefaultHttpPort), ECONNREFUSED) << other;
  } else {
    std::printf("[ security ] no non-loopback IPv4 address to try a connection from\n");
  }
  sut.kill(SIGTERM);
  EXPECT_EQ(sut.wait(kWait), 0);
}

// The receiver given only ports (--listen 0 --http 0) binds both on 127.0.0.1.
TEST(RecvSecurityTest, UdpAndHttpListenOnLoopbackOnlyWhenNoHostIsGiven) {
  TempDir dir;
  auto sut = ChildProcess::spawn(
      {kRecvBin, "--listen", "0", "--http", "0", "--jsonl", dir.file("out.jsonl")});

  const std::string udp = sut.read_line_starting("listening udp ", kWait);
  const std::string http = sut.read_line_starting("listening http ", kWait);

  ASSERT_EQ(udp.rfind("127.0.0.1:", 0), 0U) << udp;
  ASSERT_EQ(http.rfind("127.0.0.1:", 0), 0U) << http;
  const auto udp_bound = bound_addresses(sut.pid(), "udp");
  const auto tcp_bound = bound_addresses(sut.pid(), "tcp");
  EXPECT_EQ(udp_bound, std::vector<std::string>{udp}) << join(udp_bound);
  EXPECT_EQ(tcp_bound, std::vector<std::string>{http}) << join(tcp_bound);
  EXPECT_TRUE(bound_addresses(sut.pid(), "udp6").empty());
  EXPECT_TRUE(bound_addresses(sut.pid(), "tcp6").empty());
  if (const std::string other = other_local_address(); !other.empty()) {
    const auto port = static_cast<std::uint16_t>(std::stoul(http.substr(http.find(':') + 1)));
    EXPECT_EQ(connect_error(other, port), ECONNREFUSED) << other;
  }
  sut.kill(SIGTERM);
  EXPECT_EQ(sut.wait(kWait), 0);
}

}  // namespace
}  // namespace shmstats
