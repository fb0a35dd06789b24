// shmstats-recv: the sequence tracker and the JSON Lines formatting as units, the library
// in-process, and the real shmstats-recv binary as a child process receiving real UDP datagrams
// (built with proto::Encoder) on 127.0.0.1, its ports read back from its stdout, its counters read
// from its /metrics with an HTTP client.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "common/http_client.h"
#include "proto/datagram.h"
#include "recv/jsonl.h"
#include "recv/receiver.h"
#include "recv/sequence.h"
#include "tests/support/support.h"

namespace shmstats::recv {
namespace {

using nlohmann::json;
using shmstats::testing::ChildProcess;
using shmstats::testing::wait_until;
using namespace std::chrono_literals;

constexpr auto kStartTimeout = 10s;
constexpr auto kWaitTimeout = 10s;
constexpr auto kExitTimeout = 5s;  // the receiver promises about 2 s
constexpr auto kHttpTimeout = 5s;
constexpr int kExitBadArguments = 2;
constexpr std::uint64_t kSender = 0xABCDEF0123;
constexpr const char* kSenderHex = "000000abcdef0123";
constexpr std::uint64_t kEpoch = 7;
constexpr const char* kHost = "web-1";
// 2026-11-23T10:30:19Z plus 123456789 ns.
constexpr std::int64_t kT0 = 1'795'429'819'123'456'789;
constexpr const char* kT0Text = "2026-11-23T10:30:19.123456789Z";

// ---------------------------------------------------------------------------------------------
// Helpers

// A temporary directory, removed with everything in it when the guard goes.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "recv_test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// Encodes `points` and `aggregates` as exactly one datagram (the next sequence of `encoder`).
std::string encode_one(proto::Encoder& encoder, const std::vector<model::Point>& points,
                       const std::vector<model::Aggregate>& aggregates = {}) {
  std::vector<std::string> out;
  (void)encoder.encode(points, aggregates, static_cast<std::uint64_t>(kT0), out);
  EXPECT_EQ(out.size(), 1U);
  return out.empty() ? std::string() : out.front();
}

proto::Encoder make_encoder(std::uint64_t epoch = kEpoch, std::uint64_t sender = kSender) {
  auto created = proto::Encoder::create(sender, epoch, proto::kMaxDatagramBytesIpv4, kHost);
  EXPECT_TRUE(created);
  return std::move(created).value();
}

std::span<const std::uint8_t> bytes_of(const std::string& datagram) {
  return {reinterpret_cast<const std::uint8_t*>(datagram.data()), datagram.size()};
}

const model::SeriesDef kRequests{
    "checkout", "http.requests", {{"code", "200"}, {"route", "/api/v1"}}, shm::Kind::kCounter};
const model::SeriesDef kQueue{"checkout", "queue.depth", {}, shm::Kind::kGauge};
const model::SeriesDef kLatency{"checkout", "db.latency", {{"db", "main"}}, shm::Kind::kTiming};

// One counter event at time kT0 + i, value i: small, one per datagram, easy to tell apart.
model::Point tick(int i) {
  return model::Point{&kRequests, shm::Kind::kCounter, static_cast<double>(i), 1.0F, kT0 + i};
}

// A UDP socket that sends to 127.0.0.1:port.
class UdpSender {
 public:
  explicit UdpSender(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    to_.sin_family = AF_INET;
    to_.sin_port = htons(port);
    to_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  UdpSender(const UdpSender&) = delete;
  UdpSender& operator=(const UdpSender&) = delete;
  ~UdpSender() {
    if (fd_ >= 0) ::close(fd_);
  }
  void send(const std::string& datagram) {
    const ssize_t n = ::sendto(fd_, datagram.data(), datagram.size(), 0,
                               reinterpret_cast<const sockaddr*>(&to_), sizeof(to_));
    ASSERT_EQ(n, static_cast<ssize_t>(datagram.size())) << std::strerror(errno);
  }

 private:
  int fd_;
  sockaddr_in to_{};
};

// A free port on 127.0.0.1 for `type`, for the one test where the receiver cannot report it.
std::uint16_t free_port(int type) {
  const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// The real shmstats-recv, listening on ports it picked, with --http.
struct RecvProcess {
  ChildProcess child;
  std::uint16_t udp_port = 0;
  std::uint16_t http_port = 0;

  // Samples of /metrics by name with labels, e.g. "shmstats_recv_malformed_total{reason=\"x\"}".
  std::map<std::string, std::uint64_t> metrics() const {
    std::map<std::string, std::uint64_t> out;
    const auto response = common::http_get("127.0.0.1", http_port, "/metrics", kHttpTimeout);
    if (!response || response.value().status != 200) return out;
    std::istringstream text(response.value().body);
    for (std::string line; std::getline(text, line);) {
      if (line.empty() || line[0] == '#') continue;
      const auto space = line.rfind(' ');
      out[line.substr(0, space)] = std::strtoull(line.c_str() + space + 1, nullptr, 10);
    }
    return out;
  }
  std::uint64_t metric(const std::string& name) const {
    const auto all = metrics();
    const auto it = all.find(name);
    return it == all.end() ? std::numeric_limits<std::uint64_t>::max() : it->second;
  }
  std::string describe() const {
    std::string out;
    for (const auto& [k, v] : metrics()) {
      if (k.find("sender_") == std::string::npos) out += k + "=" + std::to_string(v) + " ";
    }
    return out;
  }
};

std::uint16_t port_after(ChildProcess& child, const std::string& prefix) {
  const std::string port = child.read_line_starting(prefix, kStartTimeout);
  return static_cast<std::uint16_t>(std::strtoul(port.c_str(), nullptr, 10));
}

RecvProcess start_recv(const std::string& jsonl, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv{RECV_BIN,      "--listen", "127.0.0.1:0", "--http",
                                "127.0.0.1:0", "--jsonl",  jsonl};
  argv.insert(argv.end(), extra.begin(), extra.end());
  RecvProcess recv{ChildProcess::spawn(argv)};
  recv.udp_port = port_after(recv.child, "listening udp 127.0.0.1:");
  recv.http_port = port_after(recv.child, "listening http 127.0.0.1:");
  return recv;
}

// Waits until /metrics says `name` is `expected`.
::testing::AssertionResult wait_metric(const RecvProcess& recv, const std::string& name,
                                       std::uint64_t expected) {
  return wait_until(
      [&] { return recv.metric(name) == expected; }, kWaitTimeout,
      [&] { return name + " should be " + std::to_string(expected) + "; " + recv.describe(); });
}

::testing::AssertionResult wait_lines(const std::string& path, std::size_t expected) {
  return wait_until([&] { return read_lines(path).size() == expected; }, kWaitTimeout,
                    [&] {
                      return std::to_string(read_lines(path).size()) + " lines, expected " +
                             std::to_string(expected) + ":\n" + join(read_lines(path));
                    });
}

std::string reason(const char* name) {
  return std::string("shmstats_recv_malformed_total{reason=\"") + name + "\"}";
}

ReceiverOptions options_for(const std::string& jsonl) {
  ReceiverOptions options;
  options.listen = "127.0.0.1:0";
  options.jsonl = jsonl;
  return options;
}

json parse_line(const std::string& line) {
  json doc = json::parse(line, nullptr, false);
  EXPECT_FALSE(doc.is_discarded()) << line;
  return doc.is_discarded() ? json::object() : doc;
}

// ---------------------------------------------------------------------------------------------
// SequenceTracker

TEST(SequenceTrackerTest, FirstDatagramIsAcceptedWhateverItsSequence) {
  constexpr std::uint64_t kFirstSeen = 1000;  // the receiver started after the collector
  SequenceTracker sut;

  EXPECT_EQ(sut.observe(kEpoch, kFirstSeen), SequenceVerdict::kFirst);

  EXPECT_TRUE(sut.started());
  EXPECT_EQ(sut.epoch(), kEpoch);
  EXPECT_EQ(sut.highest(), kFirstSeen);
  EXPECT_EQ(sut.counters(), (SequenceCounters{.accepted = 1}));
}

TEST(SequenceTrackerTest, InOrderDatagramsCountNoLoss) {
  constexpr std::uint64_t kCount = 10;
  SequenceTracker sut;
  ASSERT_EQ(sut.observe(kEpoch, 0), SequenceVerdict::kFirst);

  for (std::uint64_t s = 1; s < kCount; ++s) {
    EXPECT_EQ(sut.observe(kEpoch, s), SequenceVerdict::kInOrder) << s;
  }

  EXPECT_EQ(sut.highest(), kCount - 1);
  EXPECT_EQ(sut.counters(), (SequenceCounters{.accepted = kCount}));
}

TEST(SequenceTrackerTest, GapCountsMissingDatagramsAsLost) {
  constexpr std::uint64_t kMissing = 3;
  SequenceTracker sut;
  ASSERT_EQ(sut.observe(kEpoch, 0), SequenceVerdict::kFirst);

  EXPECT_EQ(sut.observe(kEpoch, kMissing + 1), SequenceVerdict::kGap);

  EXPECT_EQ(sut.highest(), kMissing + 1);
  EXPECT_EQ(sut.counters(), (SequenceCounters{.accepted = 2, .lost = kMissing}));
}

TEST(SequenceTrackerTest, ReorderedArrivalInsideWindowUndoesItsLoss) {
  SequenceTracker sut;
  ASSERT_EQ(sut.observe(kEpoch, 0), SequenceVerdict::kFirst);
  ASSERT_EQ(sut.observe(kEpoch, 3), SequenceVerdict::kGap);  // 1 and 2 missing

  EXPECT_EQ(sut.observe(kEpoch, 2), SequenceVerdict::kReordered);

  EXPECT_EQ(sut.highest(), 3U);
  EXPECT_EQ(sut.counters(), (SequenceCounters{.accepted = 3, .lost = 1, .reordered = 1}));
}

TEST(SequenceTrackerTest, DuplicateInsideWindowIsDropped) {
  SequenceTracker sut;
  ASSERT_EQ(sut.observe(kEpoch, 0), SequenceVerdict::kFirst);
  ASSERT_EQ(sut.observe(kEpoch, 1), SequenceVerdict::kInOrder);
  ASSERT_EQ(sut.observe(kEpoch, 2), SequenceVerdict::kInOrder);

  const auto again_latest = sut.observe(kEpoch, 2);
  const auto again_older = sut.observe(kEpoch, 1);
  const auto again_first = sut.observe(kEpoch, 0);

  EXPECT_EQ(again_latest, SequenceVerdict::kDuplicate);
  EXPECT_EQ(again_older, SequenceVerdict::kDuplicate);
  EXPECT_EQ(again_first, SequenceVerdict::kDuplicate);
  EXPECT_FALSE(accepted(SequenceVerdict::kDuplicate));
  EXPECT_EQ(sut.counters(), (SequenceCounters{.accepted = 3, .duplicates = 3}));
}

TEST(SequenceTrackerTest, ReorderedDatagramSeenTwiceIsThenADuplicate) {
  SequenceTracker sut;
  ASSERT_EQ(sut.observe(kEpoch, 0), SequenceVerdict::kFirst);
  ASSERT_EQ(sut.observe(kEpoch, 2), SequenceVerdict::kGap);
  ASSERT_EQ(sut.observe(kEpoch, 1), SequenceVerdict::kReordered);

  EXPECT_EQ(sut.observe(kEpoch, 1), SequenceVerdict::kDuplicate);

  EXPECT_EQ(sut.counters(),
            (SequenceCounters{.accepted = 3, .lost = 0, .duplicates = 1, .reordered = 1}));
}

TEST(SequenceTrackerTest, LateArrivalBeyondWindowIsAcceptedAndUndoesItsLoss) {
  constexpr std::uint64_t kJump = SequenceTracker::kWindow + 10;
  SequenceTracker sut;
  ASSERT_EQ(sut.observe(kEpoch, 0), SequenceVerdict::kFirst);
  ASSERT_EQ(sut.observe(kEpoch, kJump), SequenceVerdict::kGap);  // 1 .. kJump-1 missing

  const auto verdict = sut.observe(kEpoch, 1);  // kJump - 1 behind: outside the window

  EXPECT_EQ(verdict, SequenceVerdict::kLate);
  EXPECT_TRUE(accepted(verdict));
  EXPECT_EQ(sut.highest(), kJump);
  EXPECT_EQ(sut.counters(), (SequenceCounters{.accepted = 3, .lost = kJump - 2, .late = 1}));
}

TEST(SequenceTrackerTest, WindowForgetsSequencesItSlidesPast) {
  SequenceTracker sut;
  ASSERT_EQ(sut.observe(kEpoch, 0), SequenceVerdict::kFirst);
  // The window slides by exactly its size: bit 0 % kWindow is reused for kWindow.
  ASSERT_EQ(sut.observe(kEpoch, SequenceTracker::kWindow + 1), SequenceVerdict::kGap);

  // 1 is exactly kWindow behind the highest: outside the window, so late.
  EXPECT_EQ(sut.observe(kEpoch, 1), SequenceVerdict::kLate);
  // 2 is inside and its bit was cleared by the slide, so it is reordered, not a duplicate.
  EXPECT_EQ(sut.observe(kEpoch, 2), SequenceVerdict::kReordered);
}

TEST(SequenceTrackerTest, HigherEpochIsRestartNotLoss) {
  constexpr std::uint64_t kNewEpoch = kEpoch + 1;
  SequenceTracker sut;
  ASSERT_EQ(sut.observe(kEpoch, 500), SequenceVerdict::kFirst);

  EXPECT_EQ(sut.observe(kNewEpoch, 0), SequenceVerdict::kRestart);
  EXPECT_EQ(sut.observe(kNewEpoch, 1), SequenceVerdict::kInOrder);

  EXPECT_EQ(sut.epoch(), kNewEpoch);
  EXPECT_EQ(sut.highest(), 1U);
  EXPECT_EQ(sut.counters(), (SequenceCounters{.accepted = 3, .restarts = 1}));
}

TEST(SequenceTrackerTest, RestartCountsDatagramsMissingFromStartOfNewEpoch) {
  constexpr std::uint64_t kFirstOfNewEpoch = 2;  // 0 and 1 of the new epoch never came
  SequenceTracker sut;
  ASSERT_EQ(sut.observe(kEpoch, 0), SequenceVerdict::kFirst);

  EXPECT_EQ(sut.observe(kEpoch + 1, kFirstOfNewEpoch), SequenceVerdict::kRestart);
  EXPECT_EQ(sut.observe(kEpoch + 1, 0), SequenceVerdict::kReordered);

  EXPECT_EQ(sut.counters(),
            (SequenceCounters{.accepted = 3, .lost = 1, .reordered = 1, .restarts = 1}));
}

TEST(SequenceTrackerTest, LowerEpochIsStaleAndDropped) {
  SequenceTracker sut;
  ASSERT_EQ(sut.observe(kEpoch, 0), SequenceVerdict::kFirst);
  ASSERT_EQ(sut.observe(kEpoch + 1, 0), SequenceVerdict::kRestart);

  const auto verdict = sut.observe(kEpoch, 1);

  EXPECT_EQ(verdict, SequenceVerdict::kStaleEpoch);
  EXPECT_FALSE(accepted(verdict));
  EXPECT_EQ(sut.epoch(), kEpoch + 1);
  EXPECT_EQ(sut.highest(), 0U);
  EXPECT_EQ(sut.counters(), (SequenceCounters{.accepted = 2, .restarts = 1, .stale_epoch = 1}));
}

TEST(SequenceTrackerTest, ArrivalOlderThanFirstSeenIsNotCountedAsRecoveredLoss) {
  SequenceTracker sut;
  ASSERT_EQ(sut.observe(kEpoch, 100), SequenceVerdict::kFirst);

  EXPECT_EQ(sut.observe(kEpoch, 99), SequenceVerdict::kReordered);
  EXPECT_EQ(sut.observe(kEpoch, 99), SequenceVerdict::kDuplicate);

  EXPECT_EQ(sut.counters(),
            (SequenceCounters{.accepted = 2, .lost = 0, .duplicates = 1, .reordered = 1}));
}

// ---------------------------------------------------------------------------------------------
// JSON Lines formatting

TEST(ReceiverJsonlTest, TimeIsRfc3339WithNineFractionDigits) {
  EXPECT_EQ(format_rfc3339_ns(kT0), kT0Text);
  EXPECT_EQ(format_rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
  EXPECT_EQ(format_rfc3339_ns(1), "1970-01-01T00:00:00.000000001Z");
  EXPECT_EQ(format_rfc3339_ns(-1), "1969-12-31T23:59:59.999999999Z");
  EXPECT_EQ(format_rfc3339_ns(951'782'400'000'000'000), "2000-02-29T00:00:00.000000000Z");
  EXPECT_EQ(format_rfc3339_ns(std::numeric_limits<std::int64_t>::max()),
            "2262-04-11T23:47:16.854775807Z");
  EXPECT_EQ(format_rfc3339_ns(std::numeric_limits<std::int64_t>::min()),
            "1677-09-21T00:12:43.145224192Z");
}

TEST(ReceiverJsonlTest, NonFiniteNumbersAreWrittenAsStrings) {
  std::string out;
  append_json_number(out, std::numeric_limits<double>::quiet_NaN());
  out += ' ';
  append_json_number(out, std::numeric_limits<double>::infinity());
  out += ' ';
  append_json_number(out, -std::numeric_limits<double>::infinity());
  out += ' ';
  append_json_number(out, 0.1);
  out += ' ';
  append_json_number(out, 1e300);
  out += ' ';
  append_json_number(out, 0.1F);

  EXPECT_EQ(out, "\"NaN\" \"+Inf\" \"-Inf\" 0.1 1e+300 0.1");
}

TEST(ReceiverJsonlTest, WholeNumbersKeepTheShortestFormsDigits) {
  // The integer fast path must print exactly what the shortest-float form prints.
  const std::vector<std::pair<double, const char*>> doubles = {
      {0.0, "0"},
      {-0.0, "-0"},
      {3.0, "3"},
      {-42.0, "-42"},
      {1e15, "1000000000000000"},
      {9007199254740991.0, "9007199254740991"},
      {9007199254740992.0, "9007199254740992"},
      {1e16, "1e+16"},
      {-1e16, "-1e+16"},
      {2.5, "2.5"},
      {0.1, "0.1"}};
  for (const auto& [value, text] : doubles) {
    std::string sut;
    append_json_number(sut, value);
    EXPECT_EQ(sut, text);
    EXPECT_EQ(sut, fmt::format("{}", value)) << "same as the shortest form";
  }
  const std::vector<std::pair<float, const char*>> floats = {
      {1.0F, "1"}, {0.5F, "0.5"}, {16777216.0F, "16777216"}, {-0.0F, "-0"}};
  for (const auto& [value, text] : floats) {
    std::string sut;
    append_json_number(sut, value);
    EXPECT_EQ(sut, text);
    EXPECT_EQ(sut, fmt::format("{}", value));
  }
}

TEST(ReceiverJsonlTest, StringsAreEscapedAndInvalidUtf8IsReplaced) {
  std::string out;

  append_json_string(out, std::string("a\"b\\c\n\x01\xC3\xA9\xFF", 10));

  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\u0001\xC3\xA9\xEF\xBF\xBD\"");
  const json parsed = json::parse(out);
  EXPECT_EQ(parsed.get<std::string>(), "a\"b\\c\n\x01\xC3\xA9\xEF\xBF\xBD");
}

TEST(ReceiverJsonlTest, EventWithNonFiniteValueStaysValidJson) {
  proto::DecodedDatagram datagram;
  datagram.header.sender_id = kSender;
  datagram.header.sender_epoch = kEpoch;
  datagram.header.sequence = 3;
  datagram.host = kHost;
  datagram.series.push_back(kQueue);
  datagram.points.push_back(model::Point{&datagram.series[0], shm::Kind::kGauge,
                                         std::numeric_limits<double>::quiet_NaN(), 1.0F, kT0});
  std::string out;

  const std::size_t lines = append_lines(out, datagram);

  ASSERT_EQ(lines, 1U);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back(), '\n');
  const json line = parse_line(out);
  EXPECT_EQ(line["value"], "NaN");
  EXPECT_EQ(line["kind"], "gauge");
  EXPECT_EQ(line["tags"], json::object());
}

// ---------------------------------------------------------------------------------------------
// Receiver, in-process

TEST(ReceiverTest, DuplicateDatagramIsWrittenOnce) {
  TempDir dir;
  const std::string path = dir.file("out.jsonl");
  auto created = Receiver::create(options_for(path));
  ASSERT_TRUE(created) << created.error().message;
  auto sut = std::move(created).value();
  auto encoder = make_encoder();
  const std::string first = encode_one(encoder, {tick(0)});
  const std::string second = encode_one(encoder, {tick(1)});

  sut->handle_datagram(bytes_of(first));
  sut->handle_datagram(bytes_of(second));
  sut->handle_datagram(bytes_of(first));
  sut->shutdown();

  const auto stats = sut->stats();
  EXPECT_EQ(stats.datagrams, 3U);
  EXPECT_EQ(stats.events, 2U);
  EXPECT_EQ(stats.sequence.duplicates, 1U);
  EXPECT_EQ(stats.sequence.accepted, 2U);
  EXPECT_EQ(stats.writer.lines_written, 2U);
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 2U) << join(lines);
  EXPECT_EQ(parse_line(lines[0])["sequence"], 0);
  EXPECT_EQ(parse_line(lines[1])["sequence"], 1);
}

TEST(ReceiverTest, EmptyDatagramIsABreakerProbeNotMalformed) {
  TempDir dir;
  const std::string path = dir.file("probe.jsonl");
  auto created = Receiver::create(options_for(path));
  ASSERT_TRUE(created) << created.error().message;
  auto sut = std::move(created).value();

  sut->handle_datagram({});
  sut->handle_datagram({});
  sut->shutdown();

  const auto stats = sut->stats();
  EXPECT_EQ(stats.datagrams, 2U);
  EXPECT_EQ(stats.probes, 2U);
  EXPECT_EQ(stats.malformed_total(), 0U);
  EXPECT_EQ(stats.sequence.accepted, 0U);
  EXPECT_EQ(stats.writer.lines_written, 0U);
  EXPECT_TRUE(read_lines(path).empty());
  EXPECT_NE(sut->metrics_text().find("shmstats_recv_probes_total 2\n"), std::string::npos)
      << sut->metrics_text();
}

TEST(ReceiverTest, MalformedDatagramsAreCountedByReason) {
  TempDir dir;
  auto created = Receiver::create(options_for(dir.file("o.jsonl")));
  ASSERT_TRUE(created) << created.error().message;
  auto sut = std::move(created).value();
  auto encoder = make_encoder();
  std::string bad_crc = encode_one(encoder, {tick(0)});
  bad_crc[proto::kHeaderBytes] = static_cast<char>(bad_crc[proto::kHeaderBytes] ^ 0x01);

  sut->handle_datagram(bytes_of("short"));
  sut->handle_datagram(bytes_of(bad_crc));
  sut->shutdown();

  const auto stats = sut->stats();
  EXPECT_EQ(stats.datagrams, 2U);
  EXPECT_EQ(stats.malformed_total(), 2U);
  EXPECT_EQ(stats.malformed[static_cast<std::size_t>(proto::DecodeError::kTooShort)], 1U);
  EXPECT_EQ(stats.malformed[static_cast<std::size_t>(proto::DecodeError::kBadCrc)], 1U);
  EXPECT_EQ(stats.sequence.accepted, 0U);
  EXPECT_EQ(stats.writer.lines_written, 0U);
}

TEST(EventLatencyTest, BucketsTileTheRangeWithoutGapsOrOverlaps) {
  // Every bound closes its own bucket and the next nanosecond opens the next one.
  for (std::size_t i = 0; i + 1 < EventLatency::kBuckets; ++i) {
    const std::int64_t bound = EventLatency::upper_bound_ns(i);
    ASSERT_EQ(EventLatency::bucket_of(bound), i) << "bound " << bound;
    ASSERT_EQ(EventLatency::bucket_of(bound + 1), i + 1) << "bound " << bound;
  }
  EXPECT_EQ(EventLatency::upper_bound_ns(EventLatency::kBuckets - 1), -1);
}

TEST(EventLatencyTest, BucketIsAtMostAQuarterWiderThanItsLowerBound) {
  constexpr double kMaxRelativeWidth = 0.25;
  for (std::size_t i = 2; i + 1 < EventLatency::kBuckets; ++i) {
    const auto lower = static_cast<double>(EventLatency::upper_bound_ns(i - 1));
    const auto upper = static_cast<double>(EventLatency::upper_bound_ns(i));
    EXPECT_LE((upper - lower) / lower, kMaxRelativeWidth) << "bucket " << i;
  }
}

// Issue #5: the latency of an event was `now - time` in signed arithmetic; a hostile datagram's
// event time of INT64_MIN overflowed it (undefined; UBSan stops the ASan build here).
TEST(ReceiverTest, EventTimeAtTheInt64ExtremesIsRecordedWithoutOverflow) {
  TempDir dir;
  auto created = Receiver::create(options_for(dir.file("out.jsonl")));
  ASSERT_TRUE(created) << created.error().message;
  auto& sut = *created.value();
  auto encoder = make_encoder();
  constexpr std::int64_t kEarliest = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t kLatest = std::numeric_limits<std::int64_t>::max();
  const model::Point earliest{&kRequests, shm::Kind::kCounter, 1, 1.0F, kEarliest};
  const model::Point latest{&kRequests, shm::Kind::kCounter, 2, 1.0F, kLatest};

  sut.handle_datagram(bytes_of(encode_one(encoder, {earliest})));
  sut.handle_datagram(bytes_of(encode_one(encoder, {latest})));

  EXPECT_EQ(sut.latency().count(), 2U);
  EXPECT_EQ(sut.latency().bucket(EventLatency::kBuckets - 1), 1U) << "INT64_MIN: the longest";
  EXPECT_EQ(sut.latency().bucket(0), 1U) << "in the future: the shortest";
}

TEST(EventLatencyTest, NegativeAndHugeLatenciesLandInTheEndBuckets) {
  EventLatency sut;

  sut.record_ns(-5);
  sut.record_ns(std::numeric_limits<std::int64_t>::max());

  EXPECT_EQ(sut.count(), 2U);
  EXPECT_EQ(sut.bucket(0), 1U);
  EXPECT_EQ(sut.bucket(EventLatency::kBuckets - 1), 1U);
}

TEST(ReceiverTest, RecordsLatencyOfEveryEventAndCountsFoldedValues) {
  TempDir dir;
  auto created = Receiver::create(options_for(dir.file("o.jsonl")));
  ASSERT_TRUE(created) << created.error().message;
  auto sut = std::move(created).value();
  auto encoder = make_encoder();
  constexpr std::uint64_t kFolded = 12;
  const model::Aggregate folded{&kLatency, kFolded, 30.5, 1, 5, 2, kT0};
  // Events stamped one second ago: each must be recorded near 1 s, within a bucket's width.
  const std::int64_t second_ago = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count() -
                                  1'000'000'000;
  const std::vector<model::Point> points = {
      {&kRequests, shm::Kind::kCounter, 1.0, 1.0F, second_ago},
      {&kRequests, shm::Kind::kCounter, 2.0, 1.0F, second_ago}};

  sut->handle_datagram(bytes_of(encode_one(encoder, points, {folded})));
  sut->shutdown();

  const auto stats = sut->stats();
  EXPECT_EQ(stats.aggregated_values, kFolded);
  const EventLatency& latency = sut->latency();
  EXPECT_EQ(latency.count(), points.size());  // aggregates carry no event time
  const std::size_t one_second = EventLatency::bucket_of(1'000'000'000);
  std::uint64_t near_one_second = 0;
  for (std::size_t i = one_second; i <= one_second + 1; ++i) near_one_second += latency.bucket(i);
  EXPECT_EQ(near_one_second, points.size());
  const std::string text = sut->metrics_text();
  EXPECT_NE(text.find("shmstats_recv_aggregated_values_total 12\n"), std::string::npos);
  EXPECT_NE(text.find("shmstats_recv_event_latency_seconds_count 2\n"), std::string::npos);
  EXPECT_NE(text.find("shmstats_recv_event_latency_seconds_bucket{le=\"+Inf\"} 2\n"),
            std::string::npos);
}

TEST(ReceiverTest, LeastRecentSenderIsForgottenBeyondMaxSenders) {
  constexpr std::size_t kMaxSenders = 2;
  TempDir dir;
  ReceiverOptions options = options_for(dir.file("o.jsonl"));
  options.max_senders = kMaxSenders;
  auto created = Receiver::create(options);
  ASSERT_TRUE(created) << created.error().message;
  auto sut = std::move(created).value();
  std::vector<proto::Encoder> encoders;
  for (std::uint64_t id = 1; id <= kMaxSenders + 1; ++id)
    encoders.push_back(make_encoder(kEpoch, id));
  const std::string first_of_1 = encode_one(encoders[0], {tick(0)});
  encode_one(encoders[0], {tick(1)});  // never delivered: sender 1 has lost one
  const std::string third_of_1 = encode_one(encoders[0], {tick(2)});

  sut->handle_datagram(bytes_of(first_of_1));
  sut->handle_datagram(bytes_of(third_of_1));
  sut->handle_datagram(bytes_of(encode_one(encoders[1], {tick(0)})));
  sut->handle_datagram(bytes_of(encode_one(encoders[2], {tick(0)})));  // evicts sender 1
  sut->shutdown();

  const auto stats = sut->stats();
  EXPECT_EQ(stats.senders, kMaxSenders);
  EXPECT_EQ(stats.senders_forgotten, 1U);
  EXPECT_EQ(stats.sequence.accepted, 4U);
  EXPECT_EQ(stats.sequence.lost, 1U);  // the forgotten sender's counts stay in the totals
  EXPECT_EQ(sut->metrics_text().find("sender=\"0000000000000001\""), std::string::npos);
}

TEST(ReceiverTest, CreateRejectsBadListenAddress) {
  ReceiverOptions options = options_for("-");
  options.listen = "127.0.0.1:99999";

  auto created = Receiver::create(options);

  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().code, shm::Errc::kInvalidOptions);
  EXPECT_NE(created.error().message.find("127.0.0.1:99999"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// The real binary

TEST(RecvBinaryTest, WritesOneLinePerEventFieldByField) {
  TempDir dir;
  const std::string path = dir.file("events.jsonl");
  auto recv = start_recv(path);
  ASSERT_NE(recv.udp_port, 0);
  ASSERT_NE(recv.http_port, 0);
  auto encoder = make_encoder();
  const std::vector<model::Point> points = {
      {&kRequests, shm::Kind::kCounter, 3, 1.0F, kT0},
      {&kQueue, shm::Kind::kGauge, 2.5, 1.0F, kT0 + 1'000},
      {&kQueue, shm::Kind::kGaugeDelta, -1.25, 0.5F, kT0 + 2'000},
  };
  UdpSender sender(recv.udp_port);

  sender.send(encode_one(encoder, points));

  ASSERT_TRUE(wait_lines(path, points.size()));
  const auto lines = read_lines(path);
  const std::regex rfc3339(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z)");
  for (const auto& text : lines) {
    const json line = parse_line(text);
    ASSERT_TRUE(line.contains("time")) << text;
    EXPECT_TRUE(std::regex_match(line["time"].get<std::string>(), rfc3339)) << text;
    EXPECT_EQ(line["service"], "checkout") << text;
    EXPECT_EQ(line["host"], kHost) << text;
    EXPECT_EQ(line["sender"], kSenderHex) << text;
    EXPECT_EQ(line["epoch"], kEpoch) << text;
    EXPECT_EQ(line["sequence"], 0) << text;
    EXPECT_FALSE(line.contains("aggregate")) << text;
  }
  const json counter = parse_line(lines[0]);
  EXPECT_EQ(counter["time"], kT0Text);
  EXPECT_EQ(counter["name"], "http.requests");
  EXPECT_EQ(counter["tags"], (json{{"code", "200"}, {"route", "/api/v1"}}));
  EXPECT_EQ(counter["kind"], "counter");
  EXPECT_EQ(counter["value"], 3.0);
  EXPECT_EQ(counter["sample_rate"], 1.0);
  const json gauge = parse_line(lines[1]);
  EXPECT_EQ(gauge["time"], "2026-11-23T10:30:19.123457789Z");
  EXPECT_EQ(gauge["name"], "queue.depth");
  EXPECT_EQ(gauge["tags"], json::object());
  EXPECT_EQ(gauge["kind"], "gauge");
  EXPECT_EQ(gauge["value"], 2.5);
  const json delta = parse_line(lines[2]);
  EXPECT_EQ(delta["time"], "2026-11-23T10:30:19.123458789Z");
  EXPECT_EQ(delta["kind"], "gauge_delta");
  EXPECT_EQ(delta["value"], -1.25);
  EXPECT_EQ(delta["sample_rate"], 0.5);
  EXPECT_TRUE(wait_metric(recv, "shmstats_recv_lines_written_total", points.size()));
  EXPECT_EQ(recv.metric("shmstats_recv_events_total"), points.size());
  EXPECT_EQ(recv.metric("shmstats_recv_datagrams_total"), 1U);
  EXPECT_EQ(recv.metric(std::string("shmstats_recv_sender_datagrams_total{sender=\"") + kSenderHex +
                        "\"}"),
            1U);
}

TEST(RecvBinaryTest, WritesAggregateWithFoldedValuesInsteadOfValue) {
  TempDir dir;
  const std::string path = dir.file("aggregates.jsonl");
  auto recv = start_recv(path);
  auto encoder = make_encoder();
  const model::Aggregate folded{&kLatency, 12, 30.5, 1, 5, 2, kT0};
  UdpSender sender(recv.udp_port);

  sender.send(encode_one(encoder, {}, {folded}));

  ASSERT_TRUE(wait_lines(path, 1));
  const json line = parse_line(read_lines(path).at(0));
  EXPECT_EQ(line["time"], kT0Text);
  EXPECT_EQ(line["name"], "db.latency");
  EXPECT_EQ(line["tags"], (json{{"db", "main"}}));
  EXPECT_EQ(line["kind"], "timing");
  EXPECT_FALSE(line.contains("value"));
  EXPECT_FALSE(line.contains("sample_rate"));
  EXPECT_EQ(line["aggregate"],
            (json{{"count", 12}, {"sum", 30.5}, {"min", 1.0}, {"max", 5.0}, {"last", 2.0}}));
  EXPECT_EQ(line["sender"], kSenderHex);
  EXPECT_EQ(line["sequence"], 0);
  EXPECT_TRUE(wait_metric(recv, "shmstats_recv_aggregates_total", 1));
}

TEST(RecvBinaryTest, TracksLossReorderingAndDuplicatesAcrossDatagrams) {
  TempDir dir;
  const std::string path = dir.file("seq.jsonl");
  auto recv = start_recv(path);
  auto encoder = make_encoder();
  std::vector<std::string> datagrams;
  for (int i = 0; i < 5; ++i) datagrams.push_back(encode_one(encoder, {tick(i)}));
  UdpSender sender(recv.udp_port);

  // 0, then 3 (1 and 2 lost), then 1 (reordered), 1 again (duplicate), 4; 2 never comes.
  for (const int seq : {0, 3, 1, 1, 4}) sender.send(datagrams[seq]);

  ASSERT_TRUE(wait_metric(recv, "shmstats_recv_datagrams_total", 5));
  // A datagram is counted on arrival, its sequence and events after it is decoded, and its line
  // written last: once the fourth line is there, every count is.
  ASSERT_TRUE(wait_lines(path, 4));
  EXPECT_EQ(recv.metric("shmstats_recv_lost_total"), 1U);
  EXPECT_EQ(recv.metric("shmstats_recv_reordered_total"), 1U);
  EXPECT_EQ(recv.metric("shmstats_recv_duplicates_total"), 1U);
  EXPECT_EQ(recv.metric("shmstats_recv_late_total"), 0U);
  EXPECT_EQ(recv.metric("shmstats_recv_events_total"), 4U);
  const std::string label = std::string("{sender=\"") + kSenderHex + "\"}";
  EXPECT_EQ(recv.metric("shmstats_recv_sender_lost" + label), 1U);
  EXPECT_EQ(recv.metric("shmstats_recv_sender_highest_sequence" + label), 4U);
  EXPECT_EQ(recv.metric("shmstats_recv_sender_epoch" + label), kEpoch);
  std::vector<std::uint64_t> sequences;
  for (const auto& line : read_lines(path)) {
    sequences.push_back(parse_line(line)["sequence"].get<std::uint64_t>());
  }
  EXPECT_EQ(sequences, (std::vector<std::uint64_t>{0, 3, 1, 4}));
}

TEST(RecvBinaryTest, RestartedSenderIsNotLossAndItsOldEpochIsStale) {
  TempDir dir;
  const std::string path = dir.file("restart.jsonl");
  auto recv = start_recv(path);
  auto before = make_encoder(kEpoch);
  auto after = make_encoder(kEpoch + 1);
  const std::string old0 = encode_one(before, {tick(0)});
  const std::string old1 = encode_one(before, {tick(1)});
  const std::string new0 = encode_one(after, {tick(2)});
  UdpSender sender(recv.udp_port);

  sender.send(old0);
  sender.send(new0);
  sender.send(old1);

  ASSERT_TRUE(wait_metric(recv, "shmstats_recv_datagrams_total", 3));
  // The last datagram, the stale one, writes no line: wait for its count itself.
  ASSERT_TRUE(wait_metric(recv, "shmstats_recv_stale_epoch_total", 1));
  EXPECT_EQ(recv.metric("shmstats_recv_sender_restarts_total"), 1U);
  EXPECT_EQ(recv.metric("shmstats_recv_lost_total"), 0U);
  ASSERT_TRUE(wait_lines(path, 2));
  const auto lines = read_lines(path);
  EXPECT_EQ(parse_line(lines[0])["epoch"], kEpoch);
  EXPECT_EQ(parse_line(lines[1])["epoch"], kEpoch + 1);
}

TEST(RecvBinaryTest, CountsMalformedDatagramsByReasonAndKeepsGoing) {
  TempDir dir;
  const std::string path = dir.file("malformed.jsonl");
  auto recv = start_recv(path);
  auto encoder = make_encoder();
  const std::string good = encode_one(encoder, {tick(0)});
  std::mt19937 rng(12345);  // fixed seed: the same "random" bytes every run
  std::string random_bytes(200, '\0');
  for (auto& c : random_bytes) c = static_cast<char>(rng() & 0xFF);
  random_bytes[0] = 'X';  // not "SHMD"
  const std::string too_short = good.substr(0, proto::kHeaderBytes);
  const std::string truncated = good.substr(0, good.size() - 1);
  std::string bad_crc = good;
  bad_crc[proto::kHeaderBytes + 1] = static_cast<char>(bad_crc[proto::kHeaderBytes + 1] ^ 0x40);
  std::string bad_version = good;
  bad_version[4] = 9;
  UdpSender sender(recv.udp_port);

  for (const auto& bad : {random_bytes, too_short, truncated, bad_crc, bad_version}) {
    sender.send(bad);
  }
  sender.send(good);

  ASSERT_TRUE(wait_metric(recv, "shmstats_recv_datagrams_total", 6));
  ASSERT_TRUE(wait_lines(path, 1));  // the good datagram, sent last, is decoded and written
  EXPECT_EQ(recv.metric(reason("bad_magic")), 1U);
  EXPECT_EQ(recv.metric(reason("too_short")), 1U);
  EXPECT_EQ(recv.metric(reason("bad_length")), 1U);
  EXPECT_EQ(recv.metric(reason("bad_crc")), 1U);
  EXPECT_EQ(recv.metric(reason("bad_version")), 1U);
  EXPECT_EQ(recv.metric(reason("bad_payload")), 0U);
  EXPECT_EQ(recv.metric("shmstats_recv_events_total"), 1U);
  EXPECT_EQ(parse_line(read_lines(path)[0])["value"], 0.0);
}

// `datagram` with the first byte of `marker` (a string field's text) replaced by 0xFF, which is
// never valid UTF-8, and its CRC made right again, so that only the protobuf parse rejects it.
std::string with_invalid_utf8(std::string datagram, const std::string& marker) {
  const auto at = datagram.find(marker, proto::kHeaderBytes);
  EXPECT_NE(at, std::string::npos) << marker << " is not in the datagram";
  if (at == std::string::npos) return datagram;
  datagram[at] = '\xff';
  const std::size_t crc_at = datagram.size() - proto::kTrailerBytes;
  const std::uint32_t crc = proto::crc32c(datagram.data(), crc_at);
  for (std::size_t i = 0; i < proto::kTrailerBytes; ++i) {
    datagram[crc_at + i] = static_cast<char>((crc >> (8 * i)) & 0xFF);
  }
  return datagram;
}

// Issue #5: libprotobuf wrote an ERROR line to stderr for each string field with invalid UTF-8
// it parsed, so any sender could grow the receiver's log without limit, one line per datagram.
TEST(RecvBinaryTest, InvalidUtf8StringFieldsDoNotFloodTheLog) {
  TempDir dir;
  const std::string log = dir.file("recv.log");
  RecvProcess recv{ChildProcess::spawn({RECV_BIN, "--listen", "127.0.0.1:0", "--http",
                                        "127.0.0.1:0", "--jsonl", dir.file("out.jsonl")},
                                       {}, log)};
  recv.udp_port = port_after(recv.child, "listening udp 127.0.0.1:");
  recv.http_port = port_after(recv.child, "listening http 127.0.0.1:");
  ASSERT_NE(recv.http_port, 0);
  const std::string kMarker = "zzzzzzzz";
  auto created = proto::Encoder::create(kSender, kEpoch, proto::kMaxDatagramBytesIpv4, kMarker);
  ASSERT_TRUE(created);
  const std::string bad = with_invalid_utf8(encode_one(created.value(), {tick(0)}), kMarker);
  constexpr std::uint64_t kDatagrams = 500;
  // One line from protobuf and one malformed-datagram report, each at most once per 10 s.
  constexpr std::size_t kMaxLogLines = 4;
  UdpSender sender(recv.udp_port);

  for (std::uint64_t i = 0; i < kDatagrams; ++i) sender.send(bad);

  ASSERT_TRUE(wait_metric(recv, reason("bad_payload"), kDatagrams));
  EXPECT_EQ(recv.metric("shmstats_recv_protobuf_log_messages_total"), kDatagrams);
  const std::uint64_t suppressed = recv.metric("shmstats_recv_protobuf_log_suppressed_total");
  EXPECT_GE(suppressed, kDatagrams - kMaxLogLines);
  const auto lines = read_lines(log);
  EXPECT_LE(lines.size(), kMaxLogLines) << join(lines);
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(join(lines).find("invalid UTF-8"), std::string::npos) << join(lines);
}

TEST(RecvBinaryTest, ServesHealthAndPrometheusMetadata) {
  TempDir dir;
  auto recv = start_recv(dir.file("health.jsonl"));

  const auto health = common::http_get("127.0.0.1", recv.http_port, "/health", kHttpTimeout);
  const auto metrics = common::http_get("127.0.0.1", recv.http_port, "/metrics", kHttpTimeout);

  ASSERT_TRUE(health) << health.error().message;
  EXPECT_EQ(health.value().status, 200);
  EXPECT_EQ(parse_line(health.value().body), (json{{"status", "ok"}}));
  ASSERT_TRUE(metrics) << metrics.error().message;
  EXPECT_EQ(metrics.value().status, 200);
  for (const char* name :
       {"datagrams_total", "probes_total", "bytes_total", "events_total", "aggregates_total",
        "malformed_total", "lost_total", "duplicates_total", "reordered_total", "late_total",
        "sender_restarts_total", "stale_epoch_total", "lines_written_total", "write_errors_total",
        "write_queue_full_total", "write_queue_depth"}) {
    EXPECT_NE(metrics.value().body.find(std::string("# TYPE shmstats_recv_") + name + " "),
              std::string::npos)
        << name;
    EXPECT_NE(metrics.value().body.find(std::string("# HELP shmstats_recv_") + name + " "),
              std::string::npos)
        << name;
  }
}

TEST(RecvBinaryTest, SigtermFlushesEveryLineAndExitsZero) {
  constexpr int kDatagrams = 50;
  constexpr int kEventsPerDatagram = 20;
  TempDir dir;
  const std::string path = dir.file("flush.jsonl");
  auto recv = start_recv(path);
  auto encoder = make_encoder();
  UdpSender sender(recv.udp_port);
  for (int d = 0; d < kDatagrams; ++d) {
    std::vector<model::Point> points;
    for (int e = 0; e < kEventsPerDatagram; ++e) points.push_back(tick(d * kEventsPerDatagram + e));
    sender.send(encode_one(encoder, points));
  }
  ASSERT_TRUE(wait_metric(recv, "shmstats_recv_datagrams_total", kDatagrams));

  recv.child.kill(SIGTERM);
  const int status = recv.child.wait(kExitTimeout);

  EXPECT_EQ(status, 0);
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(kDatagrams * kEventsPerDatagram));
  for (std::size_t i = 0; i < lines.size(); ++i) {
    ASSERT_EQ(parse_line(lines[i])["value"], static_cast<double>(i)) << lines[i];
  }
}

TEST(RecvBinaryTest, FullWriterQueueDropsAndCountsLines) {
  TempDir dir;
  const std::string path = dir.file("full.jsonl");
  auto recv = start_recv(path, {"--queue-lines", "1"});
  auto encoder = make_encoder();
  UdpSender sender(recv.udp_port);

  sender.send(encode_one(encoder, {tick(0), tick(1)}));  // 2 lines never fit a 1-line queue
  sender.send(encode_one(encoder, {tick(2)}));

  ASSERT_TRUE(wait_metric(recv, "shmstats_recv_lines_written_total", 1));
  EXPECT_EQ(recv.metric("shmstats_recv_write_queue_full_total"), 2U);
  EXPECT_EQ(recv.metric("shmstats_recv_events_total"), 3U);
  ASSERT_TRUE(wait_lines(path, 1));
  EXPECT_EQ(parse_line(read_lines(path)[0])["value"], 2.0);
}

TEST(RecvBinaryTest, SigintAlsoExitsZero) {
  TempDir dir;
  auto recv = start_recv(dir.file("int.jsonl"));

  recv.child.kill(SIGINT);

  EXPECT_EQ(recv.child.wait(kExitTimeout), 0);
}

class RecvUnwritableTest : public ::testing::TestWithParam<const char*> {};

TEST_P(RecvUnwritableTest, UnwritableOutputCountsWriteErrorsAndKeepsRunning) {
  TempDir dir;
  // "" stands for the temporary directory itself: open() fails with EISDIR.
  const std::string path = std::string(GetParam()).empty() ? dir.path() : GetParam();
  auto recv = start_recv(path);
  auto encoder = make_encoder();
  UdpSender sender(recv.udp_port);

  sender.send(encode_one(encoder, {tick(0)}));
  ASSERT_TRUE(wait_until([&] { return recv.metric("shmstats_recv_write_errors_total") >= 1; },
                         kWaitTimeout, [&] { return recv.describe(); }));
  sender.send(encode_one(encoder, {tick(1)}));

  ASSERT_TRUE(wait_metric(recv, "shmstats_recv_write_failed_lines_total", 2));
  EXPECT_EQ(recv.metric("shmstats_recv_datagrams_total"), 2U);
  EXPECT_EQ(recv.metric("shmstats_recv_events_total"), 2U);
  EXPECT_EQ(recv.metric("shmstats_recv_lines_written_total"), 0U);
  EXPECT_GE(recv.metric("shmstats_recv_write_errors_total"), 2U);
  recv.child.kill(SIGTERM);
  EXPECT_EQ(recv.child.wait(kExitTimeout), 0);
}

std::string unwritable_name(const ::testing::TestParamInfo<const char*>& param_info) {
  return std::string(param_info.param).empty() ? "Directory" : "ProcFile";
}

INSTANTIATE_TEST_SUITE_P(Paths, RecvUnwritableTest, ::testing::Values("", "/proc/version"),
                         unwritable_name);

TEST(RecvBinaryTest, JsonlDashWritesLinesToStdout) {
  const std::uint16_t udp_port = free_port(SOCK_DGRAM);
  auto child = ChildProcess::spawn(
      {RECV_BIN, "--listen", "127.0.0.1:" + std::to_string(udp_port), "--jsonl", "-"});
  auto encoder = make_encoder();
  UdpSender sender(udp_port);
  std::string line;

  // The receiver announces its port on stderr here, so send until its first line shows up.
  ASSERT_TRUE(wait_until(
      [&] {
        sender.send(encode_one(encoder, {tick(0)}));
        line = child.read_line_starting("{", 50ms);
        return !line.empty();
      },
      kWaitTimeout, [] { return std::string("no line on stdout"); }));

  const json parsed = parse_line("{" + line);
  EXPECT_EQ(parsed["name"], "http.requests");
  EXPECT_EQ(parsed["sender"], kSenderHex);
  child.kill(SIGTERM);
  EXPECT_EQ(child.wait(kExitTimeout), 0);
}

TEST(RecvBinaryTest, BadArgumentsExitTwo) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--listen", "nowhere"},
        std::vector<std::string>{"--http", "127.0.0.1:70000"},
        std::vector<std::string>{"--queue-lines", "0"}, std::vector<std::string>{"--bogus"}}) {
    std::vector<std::string> argv{RECV_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    auto child = ChildProcess::spawn(argv);

    EXPECT_EQ(child.wait(kExitTimeout), kExitBadArguments) << args[0];
  }
}

}  // namespace
}  // namespace shmstats::recv
