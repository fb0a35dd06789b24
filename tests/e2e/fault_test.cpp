// Fault injection with real processes on loopback (issue #5): the promise that shmstats never takes
// a service down and never loses what it accepted without counting it, checked against the faults
// that break it in production. Producers are shmstats-test-helper's "pace" mode (each thread
// pushes 0, 1, 2, ... into counter "seq" tagged thread:<t> and reports exactly what it pushed);
// the collector and the receiver are the real binaries.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "shm/segment.h"
#include "tests/support/pipeline.h"
#include "tests/support/support.h"

namespace shmstats {
namespace {

using nlohmann::json;
using testing::ChildProcess;
using testing::line_field;
using testing::PaceReport;
using testing::PipelineProcess;
using testing::read_report;
using testing::SegmentGuard;
using testing::start_collector;
using testing::start_pace;
using testing::start_receiver;
using testing::TempDir;
using testing::unique_prefix;
using testing::wait_until;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const std::string kCollectorBin = SHMSTATS_COLLECTOR_BIN;
const std::string kRecvBin = SHMSTATS_RECV_BIN;

// Every bounded wait; generous, because sanitizer builds on two shared cores are slow.
constexpr auto kWait = 60s;
constexpr int kKilledStatus = 128 + SIGKILL;

std::string udp_to(std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// Per thread tag of a pace producer's segment: the stats of the ring that thread pushed into,
// found through the series of the last event it committed. Read once its owner stopped pushing.
std::map<std::string, shm::RingStats> rings_by_thread(const shm::Segment& segment) {
  std::map<std::string, shm::RingStats> out;
  const std::uint32_t mask = segment.geometry().ring_capacity - 1;
  for (std::uint32_t r = 0; r < segment.geometry().ring_count; ++r) {
    const shm::RingStats stats = segment.ring_stats(r);
    if (stats.tail == 0) continue;
    const shm::Event last = segment.ring_slots(r)[(stats.tail - 1) & mask];
    const auto info = segment.read_series(last.series_id);
    if (!info) continue;
    for (const auto& [key, value] : info.value().tags) {
      if (key == "thread") out[value] = stats;
    }
  }
  return out;
}

std::uint64_t sum_over_rings(const std::vector<shm::Segment>& segments,
                             std::uint64_t (*field)(const shm::RingStats&)) {
  std::uint64_t total = 0;
  for (const auto& segment : segments) {
    for (std::uint32_t r = 0; r < segment.geometry().ring_count; ++r) {
      total += field(segment.ring_stats(r));
    }
  }
  return total;
}
std::uint64_t tail_of(const shm::RingStats& s) { return s.tail; }
std::uint64_t head_of(const shm::RingStats& s) { return s.head; }
std::uint64_t ring_full_of(const shm::RingStats& s) {
  return s.dropped[static_cast<std::size_t>(shm::DropReason::kRingFull)];
}

// "<service>|<thread>" of a JSON line from the receiver.
std::string series_key(const json& line) {
  return line.at("service").get<std::string>() + "|" +
         line.at("tags").at("thread").get<std::string>();
}

// What the receiver wrote: event values per series in file order, and events per sender epoch.
struct Delivered {
  std::map<std::string, std::vector<double>> values;
  std::map<std::uint64_t, std::uint64_t> events_by_epoch;
  std::uint64_t events = 0;
  std::uint64_t other_lines = 0;  // aggregates, or lines that do not parse
};

Delivered read_delivered(const std::string& path) {
  Delivered d;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || j.contains("aggregate") || !j.contains("value")) {
      ++d.other_lines;
      continue;
    }
    d.values[series_key(j)].push_back(j.at("value").get<double>());
    ++d.events_by_epoch[j.at("epoch").get<std::uint64_t>()];
    ++d.events;
  }
  return d;
}

// Each value 0, 1, ..., n-1 exactly once, in this order (a ring is FIFO).
::testing::AssertionResult is_sequence_from_zero(const std::vector<double>& values) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i] != static_cast<double>(i)) {
      return ::testing::AssertionFailure()
             << "position " << i << " holds " << values[i] << " of " << values.size();
    }
  }
  return ::testing::AssertionSuccess();
}

// The seed of a randomised test: SHMSTATS_TEST_SEED if set (to replay a failure), else fresh.
std::uint32_t test_seed() {
  if (const char* env = std::getenv("SHMSTATS_TEST_SEED")) {
    return static_cast<std::uint32_t>(std::stoul(env));
  }
  return std::random_device{}();
}

// --- A producer SIGKILLed at random points --------------------------------------------------

// 100 producers, each SIGKILLed at a random moment of its life (some before their segment exists,
// most while their threads push): every event a producer committed to a ring before it died
// reaches the receiver exactly once and in order, the collector reclaims every dead producer's
// segment, and it keeps draining the whole time.
TEST(ProducerFaultTest, SigkilledHundredTimesLosesNoCommittedEventAndLeavesNoSegment) {
  const std::uint32_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay with SHMSTATS_TEST_SEED)");
  std::mt19937 random(seed);
  constexpr int kKills = 100;
  constexpr int kAtOnce = 5;  // producers alive together
  constexpr int kThreads = 2;
  constexpr int kRatePerThread = 10000;
  // One kill in kStartupOneIn lands in the first few milliseconds after spawn (before or while
  // the segment is made), the others at a random moment after the segment exists, mid-stream.
  constexpr int kStartupOneIn = 5;
  constexpr int kStartupWindowUs = 5000;
  constexpr int kStreamWindowUs = 25000;
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  const std::string jsonl = dir.file("out.jsonl");
  auto recv = start_receiver(kRecvBin, jsonl);
  ASSERT_NE(recv.udp_port, 0);
  auto sut = start_collector(kCollectorBin, guard.prefix(), {"--udp", udp_to(recv.udp_port)});
  ASSERT_NE(sut.http_port, 0);

  std::map<std::string, std::uint64_t> committed;  // "<service>|<thread>" -> ring tail at death
  std::uint64_t committed_total = 0;
  int killed_in_startup = 0;
  std::uniform_int_distribution<int> startup_one_in(1, kStartupOneIn);
  std::uniform_int_distribution<int> startup_delay_us(0, kStartupWindowUs);
  std::uniform_int_distribution<int> stream_delay_us(0, kStreamWindowUs);
  for (int round = 0; round < kKills / kAtOnce; ++round) {
    struct Victim {
      std::string service;
      Clock::time_point spawned_at;
      ChildProcess process;
    };
    std::vector<Victim> victims;
    for (int i = 0; i < kAtOnce; ++i) {
      const std::string service = "victim" + std::to_string(round * kAtOnce + i);
      const auto spawned_at = Clock::now();
      victims.push_back(Victim{service, spawned_at,
                               start_pace(guard.prefix(), service, kThreads, kRatePerThread,
                                          {"--retry", "--rings", "4", "--ring-capacity", "4096"})});
    }
    for (Victim& v : victims) {
      // The fault itself: a kill at this producer's random moment (sleep_until picks the moment;
      // it does not wait for a state).
      if (startup_one_in(random) == 1) {
        std::this_thread::sleep_until(v.spawned_at +
                                      std::chrono::microseconds(startup_delay_us(random)));
        v.process.kill(SIGKILL);
        ASSERT_EQ(v.process.wait(kWait), kKilledStatus) << v.service;
        ++killed_in_startup;
        continue;
      }
      // Mapped before the kill, so what its rings hold can be read after the collector unlinked
      // the segment.
      const std::string name = v.process.read_line_starting("segment ", kWait);
      ASSERT_FALSE(name.empty()) << v.service;
      const auto seen_at = Clock::now();
      auto watch = shm::Segment::attach(name, shm::Segment::Access::kReadOnly);
      ASSERT_TRUE(watch) << watch.error().message;
      std::this_thread::sleep_until(seen_at + std::chrono::microseconds(stream_delay_us(random)));
      v.process.kill(SIGKILL);
      ASSERT_EQ(v.process.wait(kWait), kKilledStatus) << v.service;
      for (const auto& [thread, stats] : rings_by_thread(watch.value())) {
        committed[v.service + "|" + thread] = stats.tail;
        committed_total += stats.tail;
      }
    }
    // The collector never stalls: it has drained everything committed so far and still answers.
    std::string page;
    ASSERT_TRUE(wait_until(
        [&] {
          page = sut.metrics();
          return testing::prom_value(page, "shmstats_collector_events_received_total") >=
                 static_cast<double>(committed_total);
        },
        kWait, [&] { return "committed " + std::to_string(committed_total) + "; " + page; }))
        << "round " << round;
  }

  ASSERT_TRUE(wait_until(
      [&] { return shm::list_segments(guard.prefix()).empty(); }, kWait,
      [&] { return std::to_string(shm::list_segments(guard.prefix()).size()) + " segments left"; }))
      << "every dead producer's segment is reclaimed";
  // A reclaimed segment's last events may still wait in the collector's unsealed batch: wait
  // until the receiver wrote all the collector sent and that covers every committed event (the
  // file is parsed only once the counts say it can be complete).
  std::string collector_page;
  std::string recv_page;
  Delivered delivered;
  ASSERT_TRUE(wait_until(
      [&] {
        collector_page = sut.metrics();
        recv_page = recv.metrics();
        const double received =
            testing::prom_value(collector_page, "shmstats_collector_events_received_total");
        if (received < static_cast<double>(committed_total) ||
            testing::prom_value(recv_page, "shmstats_recv_lines_written_total") != received) {
          return false;
        }
        delivered = read_delivered(jsonl);
        for (const auto& [key, tail] : committed) {
          if (delivered.values[key].size() < tail) return false;
        }
        return true;
      },
      kWait, [&] { return collector_page + recv_page; }));
  EXPECT_EQ(testing::prom_value(recv_page, "shmstats_recv_lost_total"), 0);
  EXPECT_EQ(testing::prom_value(collector_page, "shmstats_collector_segments_quarantined_total"),
            0);
  EXPECT_GE(testing::prom_value(collector_page, "shmstats_collector_segments_reclaimed_total"),
            kKills - killed_in_startup);
  for (const auto& [key, tail] : committed) {
    const auto it = delivered.values.find(key);
    ASSERT_NE(it, delivered.values.end()) << key << " committed " << tail;
    EXPECT_EQ(it->second.size(), tail) << key;
    EXPECT_TRUE(is_sequence_from_zero(it->second)) << key;
  }
  // Producers killed before the test saw their segment: what arrived is still a clean prefix.
  for (const auto& [key, values] : delivered.values) {
    if (committed.count(key) == 0) {
      EXPECT_TRUE(is_sequence_from_zero(values)) << key;
    }
  }
  EXPECT_EQ(delivered.other_lines, 0U);
  std::printf("[ fault    ] %d kills (%d in start-up), %llu committed events in %zu threads\n",
              kKills, killed_in_startup, static_cast<unsigned long long>(committed_total),
              committed.size());
  sut.process.kill(SIGTERM);
  EXPECT_EQ(sut.process.wait(kWait), 0);
}

// A producer SIGKILLed after it created its segment's file but before it published the header
// leaves a file that never becomes a segment: empty (killed before reserving the pages) or sized
// and all zero (after). Both are made here exactly so, named for a real process that was then
// SIGKILLed. The collector removes them once it sees that their owner is dead, as it removes any
// dead producer's segment, instead of quarantining them for ever. (Issue #5: a start-up kill of
// the test above lands in that window now and then, and left the file in /dev/shm.)
TEST(ProducerFaultTest, SegmentFileOfProducerKilledWhileCreatingItIsRemoved) {
  constexpr off_t kReservedBytes = 1 << 20;
  SegmentGuard guard(unique_prefix());
  auto owner = ChildProcess::spawn({"/bin/sleep", "60"});
  const std::uint64_t start_time = shm::process_start_time(owner.pid());
  ASSERT_NE(start_time, 0U);
  owner.kill(SIGKILL);
  ASSERT_EQ(owner.wait(kWait), kKilledStatus);
  for (std::uint32_t n = 0; n < 2; ++n) {
    const std::string path = std::string(shm::kShmDirectory) + "/" +
                             shm::make_segment_name(guard.prefix(), owner.pid(), start_time, n);
    const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0) << path;
    EXPECT_EQ(::ftruncate(fd, n == 0 ? 0 : kReservedBytes), 0);
    ::close(fd);
  }

  auto sut = start_collector(kCollectorBin, guard.prefix(), {});
  ASSERT_NE(sut.http_port, 0);

  // The file goes first and the count follows it: wait for both.
  std::string page;
  EXPECT_TRUE(wait_until(
      [&] {
        page = sut.metrics();
        return shm::list_segments(guard.prefix()).empty() &&
               testing::prom_value(page, "shmstats_collector_segments_reclaimed_total") == 2;
      },
      kWait,
      [&] {
        return std::to_string(shm::list_segments(guard.prefix()).size()) + " files left\n" + page;
      }));
  EXPECT_EQ(testing::prom_value(page, "shmstats_collector_segments_quarantined_total"), 0) << page;
  sut.process.kill(SIGTERM);
  EXPECT_EQ(sut.process.wait(kWait), 0);
}

// --- The collector SIGKILLed and restarted under load -----------------------------------------

// Producers push on a steady schedule with drop-newest into small rings while the collector is
// SIGKILLed and restarted kKills times, each time only after the rings filled and the producers'
// refusals began. Both tests check that the producers kept their pace, that every refusal is
// counted exactly in the segment (by reason), that the receiver sees kKills sender restarts and
// no lost datagram, and, per collector life, what it took from the rings against what reached
// the receiver under its epoch.
class CollectorFaultTest : public ::testing::Test {
 protected:
  static constexpr int kKills = 20;
  static constexpr int kProducers = 2;
  static constexpr int kThreads = 2;
  static constexpr int kRatePerThread = 1000;
  static constexpr int kRingCapacity = 256;  // full about 0.26 s after the collector dies
  static constexpr int kBatchSize = 512;
  static constexpr int kExporterQueue = 4;
  // Batches of about 200 events at this rate: the queue holds 200 ms of them, so a slow exporter
  // thread in a sanitizer build does not overflow it.
  static constexpr const char* kFlushInterval = "50ms";
  // What a SIGKILLed collector may hold and so lose, by design: the batch it is filling (sealed
  // at batch_size, checked after each ring, so up to one ring more), the batches in its exporter's
  // queue, and the one being sent.
  static constexpr std::int64_t kInFlightBound =
      (kExporterQueue + 2) * (kBatchSize + kRingCapacity);
  // A producer thread is never this late against its schedule; a push that blocked would be.
  static constexpr std::uint64_t kMaxLagUs = 2'000'000;

  void start() {
    recv_.emplace(start_receiver(kRecvBin, jsonl_));
    ASSERT_NE(recv_->udp_port, 0);
    restart_collector();
    for (int p = 0; p < kProducers; ++p) {
      producers_.push_back(
          start_pace(guard_.prefix(), "producer" + std::to_string(p), kThreads, kRatePerThread,
                     {"--rings", "4", "--ring-capacity", std::to_string(kRingCapacity),
                      "--overflow", "drop_newest"}));
      const std::string name = producers_.back().read_line_starting("segment ", kWait);
      ASSERT_FALSE(name.empty());
      auto attached = shm::Segment::attach(name, shm::Segment::Access::kReadOnly);
      ASSERT_TRUE(attached) << attached.error().message;
      segments_.push_back(std::move(attached).value());
    }
  }

  double recv_events() const { return recv_->metric("shmstats_recv_events_total"); }
  std::uint64_t tails() const { return sum_over_rings(segments_, tail_of); }
  std::uint64_t heads() const { return sum_over_rings(segments_, head_of); }
  std::string describe() const {
    return "tails " + std::to_string(tails()) + " heads " + std::to_string(heads()) +
           " delivered " + std::to_string(recv_events()) + " refused " +
           std::to_string(sum_over_rings(segments_, ring_full_of));
  }

  void restart_collector() {
    tails_at_start_ = tails();
    epoch_at_start_ = recv_epoch();
    collector_.emplace(start_collector(
        kCollectorBin, guard_.prefix(),
        {"--udp", udp_to(recv_->udp_port), "--batch-size", std::to_string(kBatchSize),
         "--exporter-queue", std::to_string(kExporterQueue), "--flush-interval", kFlushInterval}));
    ASSERT_NE(collector_->http_port, 0);
  }

  // The receiver's current epoch of its one sender, "" before the first datagram.
  std::string recv_epoch() const {
    const std::string page = recv_->metrics();
    const auto at = page.find("\nshmstats_recv_sender_epoch{");
    if (at == std::string::npos) return "";
    const auto value = page.find(' ', at + 1) + 1;
    return page.substr(value, page.find('\n', value) - value);
  }

  // The running collector has taken the backlog it found at start, and the receiver has its
  // datagrams (its epoch), so that it is mid-stream and its life shows in the file.
  void wait_until_delivering() {
    ASSERT_TRUE(
        wait_until([&] { return heads() >= tails_at_start_ && recv_epoch() != epoch_at_start_; },
                   kWait, [&] { return describe(); }));
  }

  // SIGKILLs the collector; quiesced, only once the producers are stopped and everything they
  // committed reached the receiver. Then waits with no collector running until the rings are full
  // and refusals have begun, and starts the next collector.
  void kill_and_restart(bool quiesce) {
    wait_until_delivering();
    if (quiesce) {
      for (auto& p : producers_) p.kill(SIGSTOP);
      ASSERT_TRUE(wait_until([&] { return recv_events() == static_cast<double>(tails()); }, kWait,
                             [&] { return describe(); }));
    }
    collector_->process.kill(SIGKILL);
    ASSERT_EQ(collector_->process.wait(kWait), kKilledStatus);
    collector_.reset();
    heads_at_kill_.push_back(heads());  // no consumer: heads stay put until the next collector
    const std::uint64_t refused_at_kill = sum_over_rings(segments_, ring_full_of);
    if (quiesce) {
      for (auto& p : producers_) p.kill(SIGCONT);
    }
    ASSERT_TRUE(
        wait_until([&] { return sum_over_rings(segments_, ring_full_of) > refused_at_kill; }, kWait,
                   [&] { return describe(); }));
    restart_collector();
  }

  // Stops the producers (their reports into reports_), waits until the last collector reclaimed
  // their segments and the receiver has every line of that collector's life, then reads them.
  void finish() {
    wait_until_delivering();
    for (auto& p : producers_) p.kill(SIGTERM);
    for (auto& p : producers_) {
      reports_.push_back(read_report(p, kThreads, kWait));
      ASSERT_TRUE(reports_.back().complete);
      ASSERT_EQ(p.wait(kWait), 0);
    }
    ASSERT_TRUE(wait_until([&] { return shm::list_segments(guard_.prefix()).empty(); }, kWait,
                           [&] { return describe(); }));
    // The last collector took everything its predecessor left; it has sealed and sent all of it
    // (a reclaimed segment's last events may wait in an unsealed batch for a moment).
    const std::uint64_t last_life_sent = tails() - heads_at_kill_.back();
    std::string page;
    const std::string udp = "exporter=\"udp\"";
    ASSERT_TRUE(wait_until(
        [&] {
          page = collector_->metrics();
          return testing::prom_value(page, "shmstats_exporter_queue_depth", udp) == 0 &&
                 testing::prom_value(page, "shmstats_collector_events_received_total") ==
                     static_cast<double>(last_life_sent) &&
                 testing::prom_value(page, "shmstats_exporter_events_sent_total", udp) ==
                     static_cast<double>(last_life_sent);
        },
        kWait,
        [&] { return "the last collector took " + std::to_string(last_life_sent) + "\n" + page; }));
    // The last collector's datagrams reach the receiver after every earlier one (one socket, in
    // order), so once its count is complete the file is.
    ASSERT_TRUE(wait_until(
        [&] {
          delivered_ = read_delivered(jsonl_);
          return !delivered_.events_by_epoch.empty() &&
                 delivered_.events_by_epoch.rbegin()->second == last_life_sent;
        },
        kWait,
        [&] {
          std::string seen =
              "the last collector sent " + std::to_string(last_life_sent) + "; events by epoch:";
          for (const auto& [epoch, events] : delivered_.events_by_epoch) {
            seen += " " + std::to_string(epoch) + "=" + std::to_string(events);
          }
          return seen + "\n" + recv_->metrics() + collector_->metrics();
        }));
  }

  // Per collector life (epochs ascend with start time): events it took from the rings minus the
  // events the receiver got under its epoch.
  std::vector<std::int64_t> losses_per_life() const {
    std::vector<std::int64_t> losses;
    std::uint64_t head_before = 0;
    std::size_t life = 0;
    for (const auto& [epoch, events] : delivered_.events_by_epoch) {
      const std::uint64_t head_after =
          life < heads_at_kill_.size() ? heads_at_kill_[life] : tails();
      losses.push_back(static_cast<std::int64_t>(head_after - head_before) -
                       static_cast<std::int64_t>(events));
      head_before = head_after;
      ++life;
    }
    return losses;
  }

  // What every collector life must show, quiesced or not.
  void expect_counted_exactly_and_on_pace() {
    ASSERT_EQ(reports_.size(), segments_.size());
    std::uint64_t refused = 0;
    for (std::size_t p = 0; p < segments_.size(); ++p) {
      const PaceReport& report = reports_[p];
      const auto rings = rings_by_thread(segments_[p]);
      ASSERT_EQ(rings.size(), static_cast<std::size_t>(kThreads));
      for (const auto& [thread, tally] : report.threads) {
        ASSERT_EQ(rings.count(thread), 1U) << thread;
        const shm::RingStats& ring = rings.at(thread);
        const std::string where = "producer " + std::to_string(p) + " thread " + thread;
        EXPECT_EQ(ring.tail, tally.accepted) << where;
        EXPECT_EQ(ring.pushed, tally.pushes) << where;
        EXPECT_EQ(ring_full_of(ring), tally.refused) << where << ": refusals by reason";
        EXPECT_EQ(ring.dropped_total(), tally.refused) << where << ": no other drop reason";
        EXPECT_EQ(tally.accepted + tally.refused, tally.pushes) << where;
        // On pace: a thread pushes one value per period, so its count follows its run time.
        const double scheduled = kRatePerThread * static_cast<double>(report.elapsed_us) / 1e6;
        EXPECT_GE(static_cast<double>(tally.pushes), 0.9 * scheduled) << where;
        refused += tally.refused;
      }
    }
    EXPECT_GT(refused, 0U) << "the rings filled while no collector ran";
    const std::string page = recv_->metrics();
    EXPECT_EQ(testing::prom_value(page, "shmstats_recv_sender_restarts_total"), kKills) << page;
    EXPECT_EQ(testing::prom_value(page, "shmstats_recv_lost_total"), 0) << page;
    EXPECT_EQ(testing::prom_value(page, "shmstats_recv_duplicates_total"), 0) << page;
    EXPECT_EQ(delivered_.events_by_epoch.size(), static_cast<std::size_t>(kKills + 1));
    EXPECT_EQ(delivered_.other_lines, 0U);
    for (const auto& [key, values] : delivered_.values) {
      EXPECT_EQ(std::set<double>(values.begin(), values.end()).size(), values.size())
          << key << ": a value arrived twice";
    }
  }

  void print_numbers(const char* what) const {
    std::uint64_t max_lag_us = 0;
    std::uint64_t max_push_ns = 0;
    std::uint64_t accepted = 0;
    std::uint64_t refused = 0;
    for (const auto& r : reports_) {
      max_lag_us = std::max(max_lag_us, r.max_lag_us);
      max_push_ns = std::max(max_push_ns, r.max_push_ns);
      accepted += r.accepted;
      refused += r.refused;
    }
    std::int64_t lost = 0;
    std::int64_t worst = 0;
    for (const auto loss : losses_per_life()) {
      lost += loss;
      worst = std::max(worst, loss);
    }
    std::printf(
        "[ fault    ] %s: %d kills; accepted %llu, refused %llu, delivered %llu, lost in killed "
        "collectors %lld (worst life %lld, bound %lld); producers' max lag %llu us, longest push "
        "%llu ns\n",
        what, kKills, static_cast<unsigned long long>(accepted),
        static_cast<unsigned long long>(refused),
        static_cast<unsigned long long>(delivered_.events), static_cast<long long>(lost),
        static_cast<long long>(worst), static_cast<long long>(kInFlightBound),
        static_cast<unsigned long long>(max_lag_us), static_cast<unsigned long long>(max_push_ns));
  }

  SegmentGuard guard_{unique_prefix()};
  TempDir dir_;
  const std::string jsonl_ = dir_.file("out.jsonl");
  std::optional<PipelineProcess> recv_;
  std::optional<PipelineProcess> collector_;
  std::vector<ChildProcess> producers_;
  std::vector<shm::Segment> segments_;  // the producers', mapped read-only
  std::vector<PaceReport> reports_;
  std::vector<std::uint64_t> heads_at_kill_;
  std::uint64_t tails_at_start_ = 0;  // when the running collector started
  std::string epoch_at_start_;
  Delivered delivered_;
};

// Each kill comes when the collector holds nothing (producers stopped, all delivered): the events
// that waited in the rings across 20 collector deaths all arrive, none twice, none lost.
TEST_F(CollectorFaultTest, KilledTwentyTimesWhenQuiescentDeliversEveryAcceptedEvent) {
  ASSERT_NO_FATAL_FAILURE(start());
  for (int kill = 0; kill < kKills; ++kill) {
    ASSERT_NO_FATAL_FAILURE(kill_and_restart(true)) << "kill " << kill;
  }
  ASSERT_NO_FATAL_FAILURE(finish());

  expect_counted_exactly_and_on_pace();
  for (const auto loss : losses_per_life()) EXPECT_EQ(loss, 0);
  for (std::size_t p = 0; p < reports_.size(); ++p) {
    for (const auto& [thread, tally] : reports_[p].threads) {
      const std::string key = "producer" + std::to_string(p) + "|" + thread;
      EXPECT_EQ(delivered_.values[key].size(), tally.accepted) << key;
    }
  }
  print_numbers("quiescent kills");
}

// Each kill comes mid-stream: a collector's life loses at most what it held in flight (its batch,
// its exporter's queue and the batch being sent, kInFlightBound), never what waited in the rings;
// the last collector, stopped cleanly, loses nothing. The producers never waited for any of it.
TEST_F(CollectorFaultTest, KilledTwentyTimesUnderLoadLosesAtMostWhatEachHeldInFlight) {
  ASSERT_NO_FATAL_FAILURE(start());
  for (int kill = 0; kill < kKills; ++kill) {
    ASSERT_NO_FATAL_FAILURE(kill_and_restart(false)) << "kill " << kill;
  }
  ASSERT_NO_FATAL_FAILURE(finish());

  expect_counted_exactly_and_on_pace();
  const auto losses = losses_per_life();
  ASSERT_FALSE(losses.empty());
  for (std::size_t life = 0; life + 1 < losses.size(); ++life) {
    EXPECT_GE(losses[life], 0) << "life " << life;
    EXPECT_LE(losses[life], kInFlightBound) << "life " << life;
  }
  EXPECT_EQ(losses.back(), 0) << "the last collector stopped cleanly";
  for (const auto& r : reports_) EXPECT_LT(r.max_lag_us, kMaxLagUs);
  print_numbers("kills under load");
}

// The environment for a process whose resident memory a test bounds. ASan keeps freed memory in
// a quarantine (256 MB by default), so its RSS would grow with what the process allocates over
// time, not with what it holds; that process gets no quarantine.
std::vector<std::string> rss_measuring_env() {
#if defined(__SANITIZE_ADDRESS__)
  const char* inherited = std::getenv("ASAN_OPTIONS");
  return {"ASAN_OPTIONS=" + std::string(inherited != nullptr ? inherited : "") +
          ":quarantine_size_mb=0"};
#else
  return {};
#endif
}

// --- The destination down, then back ---------------------------------------------------------

// The collector sends to a port where nothing listens for a few seconds under load: the breaker
// opens, every event it cannot send is counted dropped, its memory stays flat; then a receiver
// starts on that port, the breaker closes and delivery resumes.
TEST(DestinationFaultTest, ClosedPortOpensBreakerCountsDropsInFlatMemoryUntilReceiverStarts) {
  constexpr int kThreads = 2;
  constexpr int kRatePerThread = 5000;
  constexpr auto kOutage = 4s;
  constexpr auto kSampleEvery = 100ms;
  constexpr std::uint64_t kRssGrowthLimitKib = 5 * 1024;
  constexpr double kResumedEvents = 5000;
  constexpr std::uint64_t kRingCapacity = 4096;  // goes round in about 0.8 s
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  const std::uint16_t port = testing::closed_udp_port();
  ASSERT_NE(port, 0);
  auto sut = start_collector(kCollectorBin, guard.prefix(),
                             {"--udp", udp_to(port), "--breaker-failures", "3", "--breaker-open",
                              "200ms", "--exporter-queue", "8"},
                             rss_measuring_env());
  ASSERT_NE(sut.http_port, 0);
  auto producer =
      start_pace(guard.prefix(), "outage", kThreads, kRatePerThread,
                 {"--ring-capacity", std::to_string(kRingCapacity), "--overflow", "drop_newest"});
  const std::string name = producer.read_line_starting("segment ", kWait);
  ASSERT_FALSE(name.empty());
  auto watch = shm::Segment::attach(name, shm::Segment::Access::kReadOnly);
  ASSERT_TRUE(watch) << watch.error().message;
  const std::vector<shm::Segment> segments = [&] {
    std::vector<shm::Segment> one;
    one.push_back(std::move(watch).value());
    return one;
  }();
  const std::string udp = "exporter=\"udp\"";
  std::string page;
  // Open, and every ring gone round once: the collector has touched all the shared pages it maps
  // (they count in its RSS), so what grows from here is its own memory.
  ASSERT_TRUE(wait_until(
      [&] {
        page = sut.metrics();
        return testing::prom_value(page, "shmstats_exporter_circuit_state", udp) == 1 &&
               testing::prom_value(page, "shmstats_exporter_events_dropped_total", udp) > 0 &&
               sum_over_rings(segments, head_of) >= kThreads * kRingCapacity;
      },
      kWait, [&] { return page; }));

  // The outage: a fixed window of load against the closed port, sampled (a measurement, not a
  // wait for a state).
  const std::uint64_t rss_at_open = testing::rss_kib(sut.process.pid());
  auto dropped_so_far = [&] {
    return testing::prom_value(page, "shmstats_exporter_events_dropped_total", udp) +
           testing::prom_value(page, "shmstats_exporter_queue_dropped_events_total", udp);
  };
  page = sut.metrics();
  const double received_at_open =
      testing::prom_value(page, "shmstats_collector_events_received_total");
  const double dropped_at_open = dropped_so_far();
  const double sent_at_open = testing::prom_value(page, "shmstats_exporter_events_sent_total", udp);
  std::uint64_t rss_max = rss_at_open;
  for (const auto end = Clock::now() + kOutage; Clock::now() < end;) {
    std::this_thread::sleep_for(kSampleEvery);
    rss_max = std::max(rss_max, testing::rss_kib(sut.process.pid()));
  }
  // Nothing silently lost: with the producer paused, every event received is sent or counted.
  producer.kill(SIGSTOP);
  auto accounted = [&] {
    page = sut.metrics();
    return testing::prom_value(page, "shmstats_exporter_queue_depth", udp) == 0 &&
           testing::prom_value(page, "shmstats_collector_events_received_total") ==
               testing::prom_value(page, "shmstats_exporter_events_sent_total", udp) +
                   testing::prom_value(page, "shmstats_exporter_events_dropped_total", udp) +
                   testing::prom_value(page, "shmstats_exporter_queue_dropped_events_total", udp) +
                   testing::prom_value(page, "shmstats_exporter_exception_dropped_events_total",
                                       udp);
  };
  ASSERT_TRUE(wait_until(accounted, kWait, [&] { return page; }));
  producer.kill(SIGCONT);
  const double received_in_outage =
      testing::prom_value(page, "shmstats_collector_events_received_total") - received_at_open;
  const double dropped = dropped_so_far() - dropped_at_open;
  EXPECT_EQ(testing::prom_value(page, "shmstats_exporter_exceptions_total", udp), 0);
  EXPECT_GT(received_in_outage,
            0.5 * kThreads * kRatePerThread * std::chrono::duration<double>(kOutage).count())
      << "the drain kept going";
  EXPECT_GT(dropped, 0);
  // The half-open breaker probes with an empty datagram, so no event goes to the closed port
  // counted as sent (on loopback the port unreachable comes back within the probe's send).
  EXPECT_EQ(testing::prom_value(page, "shmstats_exporter_events_sent_total", udp), sent_at_open);
  const double failed_probes = testing::prom_value(page, "shmstats_exporter_breaker_probes_total",
                                                   udp + ",result=\"failed\"");
  EXPECT_GE(failed_probes, 5) << "a probe every 200 ms for 4 s\n" << page;
  EXPECT_EQ(
      testing::prom_value(page, "shmstats_exporter_breaker_probes_total", udp + ",result=\"ok\""),
      0);
  EXPECT_LT(rss_max - rss_at_open, kRssGrowthLimitKib)
      << "RSS " << rss_at_open << " KiB when the breaker opened, at most " << rss_max;

  const std::string jsonl = dir.file("out.jsonl");
  auto recv = start_receiver(kRecvBin, jsonl, port);
  ASSERT_EQ(recv.udp_port, port);
  ASSERT_TRUE(wait_until(
      [&] {
        page = sut.metrics();
        return testing::prom_value(page, "shmstats_exporter_circuit_state", udp) == 0 &&
               recv.metric("shmstats_recv_events_total") >= kResumedEvents;
      },
      kWait, [&] { return page; }));
  producer.kill(SIGTERM);
  const PaceReport report = read_report(producer, kThreads, kWait);
  ASSERT_TRUE(report.complete);
  ASSERT_EQ(producer.wait(kWait), 0);
  ASSERT_TRUE(wait_until([&] { return shm::list_segments(guard.prefix()).empty(); }, kWait,
                         [] { return std::string("segment still there"); }));
  // The collector took every accepted event, and each is sent or counted dropped.
  ASSERT_TRUE(wait_until(
      [&] {
        return accounted() &&
               testing::prom_value(page, "shmstats_collector_events_received_total") ==
                   static_cast<double>(report.accepted);
      },
      kWait, [&] { return "accepted " + std::to_string(report.accepted) + "\n" + page; }));
  EXPECT_EQ(report.refused, 0U);
  EXPECT_GE(recv.metric("shmstats_recv_probes_total"), 1) << "the probe that closed the breaker";
  std::printf(
      "[ fault    ] outage %.1f s: RSS %llu KiB at open, max %llu KiB; in it %.0f events received, "
      "%.0f dropped and counted, 0 sent; %.0f failed probes; %.0f delivered after recovery\n",
      std::chrono::duration<double>(kOutage).count(), static_cast<unsigned long long>(rss_at_open),
      static_cast<unsigned long long>(rss_max), received_in_outage, dropped, failed_probes,
      recv.metric("shmstats_recv_events_total"));
  sut.process.kill(SIGTERM);
  EXPECT_EQ(sut.process.wait(kWait), 0);
}

// --- The collector's share of segment memory ------------------------------------------------

// KiB of shared memory (the segments' pages) mapped into `pid`, from /proc/<pid>/status.
std::uint64_t rss_shmem_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("RssShmem:", 0) == 0) return std::stoull(line.substr(9));
  }
  return 0;
}

// One producer thread goes round its 2 MiB ring several times while the collector drains it.
// Every slot page it passed through was mapped into the collector on the way; the collector
// unmaps those behind its read position (the data stays in the segment), so its share of the
// segment stays at the pages in use: under 1 MiB here, where keeping them would be the whole ring.
TEST(CollectorMemoryTest, DrainedSlotPagesAreGivenBackSoSharedMemoryStaysBounded) {
  constexpr std::uint64_t kRingCapacity = 65536;  // 2 MiB of slots
  constexpr std::uint64_t kRingBytesKib = kRingCapacity * sizeof(shm::Event) / 1024;
  constexpr double kLaps = 3;
  constexpr std::uint64_t kBoundKib = 1024;
  SegmentGuard guard(unique_prefix());
  testing::UdpSink sink;
  auto sut = start_collector(kCollectorBin, guard.prefix(), {"--udp", udp_to(sink.port())});
  ASSERT_NE(sut.http_port, 0);
  auto producer = start_pace(guard.prefix(), "laps", 1, 100'000,
                             {"--rings", "1", "--ring-capacity", std::to_string(kRingCapacity),
                              "--overflow", "drop_newest"});
  ASSERT_FALSE(producer.read_line_starting("segment ", kWait).empty());
  std::string page;
  ASSERT_TRUE(wait_until(
      [&] {
        (void)sink.datagrams();  // keep the sink's socket buffer from filling
        page = sut.metrics();
        return testing::prom_value(page, "shmstats_collector_events_received_total") >=
               kLaps * static_cast<double>(kRingCapacity);
      },
      kWait, [&] { return page; }));

  // Measured while the producer still pushes: the segment is attached, its ring in use.
  const std::uint64_t shmem_kib = rss_shmem_kib(sut.process.pid());
  page = sut.metrics();
  const double released = testing::prom_value(page, "shmstats_collector_slot_bytes_released_total");
  producer.kill(SIGTERM);
  EXPECT_EQ(producer.wait(kWait), 0);
  std::printf(
      "[ memory   ] after %.0f laps of a %llu KiB ring: collector RssShmem %llu KiB, "
      "%.0f KiB of slot pages given back\n",
      kLaps, static_cast<unsigned long long>(kRingBytesKib),
      static_cast<unsigned long long>(shmem_kib), released / 1024);
  EXPECT_LT(shmem_kib, kBoundKib) << "the collector kept the ring's drained pages mapped";
  EXPECT_GE(released, (kLaps - 1) * static_cast<double>(kRingBytesKib) * 1024) << page;
  sut.process.kill(SIGTERM);
  EXPECT_EQ(sut.process.wait(kWait), 0);
}

// --- One exporter hung for ever -----------------------------------------------------------

// The dogstatsd exporter's send never returns (the collector's fault hook, collector/fault.h): the
// UDP exporter still delivers every event, the drain keeps pace (no producer refusal, though a
// stalled drain would fill the rings within about 1.6 s), the hung exporter's dropped batches are
// counted, and SIGTERM still ends the collector with 0 once --shutdown-timeout gives up on it.
TEST(ExporterFaultTest, HungExporterDropsOnlyItsOwnBatchesAndShutdownStillExitsZero) {
  constexpr int kThreads = 2;
  constexpr int kRatePerThread = 5000;
  constexpr int kEventsPerThread = 15000;  // 3 s
  constexpr int kExporterQueue = 4;
  constexpr auto kShutdownTimeout = 1s;
  constexpr auto kExitSlack = 10s;
  SegmentGuard guard(unique_prefix());
  TempDir dir;
  testing::UdpSink statsd;
  auto recv = start_receiver(kRecvBin, dir.file("out.jsonl"));
  ASSERT_NE(recv.udp_port, 0);
  auto sut = start_collector(
      kCollectorBin, guard.prefix(),
      {"--udp", udp_to(recv.udp_port), "--dogstatsd", udp_to(statsd.port()), "--exporter-queue",
       std::to_string(kExporterQueue), "--shutdown-timeout", "1s"},
      {"SHMSTATS_COLLECTOR_FAULT_HANG_EXPORTER=dogstatsd"});
  ASSERT_NE(sut.http_port, 0);
  const auto started = Clock::now();
  auto producer = start_pace(guard.prefix(), "hung", kThreads, kRatePerThread,
                             {"--events", std::to_string(kEventsPerThread), "--ring-capacity",
                              "8192", "--overflow", "drop_newest"});
  const PaceReport report = read_report(producer, kThreads, kWait);
  ASSERT_TRUE(report.complete);
  ASSERT_EQ(producer.wait(kWait), 0);
  EXPECT_EQ(report.refused, 0U) << "the drain kept pace";
  const std::string hung = "exporter=\"dogstatsd\"";
  const std::string udp = "exporter=\"udp\"";
  std::string page;
  // The exporter counts a batch sent after its datagrams left, so the receiver may have the last
  // one before the collector's page shows it: wait for both.
  ASSERT_TRUE(wait_until(
      [&] {
        if (recv.metric("shmstats_recv_events_total") != static_cast<double>(report.accepted)) {
          return false;
        }
        page = sut.metrics();
        return testing::prom_value(page, "shmstats_exporter_events_sent_total", udp) ==
               static_cast<double>(report.accepted);
      },
      kWait, [&] { return recv.metrics() + page; }));
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();

  EXPECT_EQ(testing::prom_value(page, "shmstats_collector_events_received_total"), report.accepted);
  EXPECT_EQ(testing::prom_value(page, "shmstats_exporter_events_sent_total", udp), report.accepted);
  EXPECT_EQ(testing::prom_value(page, "shmstats_exporter_events_sent_total", hung), 0);
  EXPECT_EQ(testing::prom_value(page, "shmstats_exporter_queue_depth", hung), kExporterQueue);
  const double hung_dropped =
      testing::prom_value(page, "shmstats_exporter_queue_dropped_events_total", hung);
  EXPECT_GT(hung_dropped, 0);
  EXPECT_GT(testing::prom_value(page, "shmstats_exporter_queue_dropped_batches_total", hung), 0);
  // What the hung exporter neither sent nor dropped sits in its queue and in its stuck send.
  EXPECT_LT(hung_dropped, report.accepted);
  EXPECT_EQ(statsd.datagrams(), 0U);

  const auto term_at = Clock::now();
  sut.process.kill(SIGTERM);
  EXPECT_EQ(sut.process.wait(kShutdownTimeout + kExitSlack), 0);
  const double exit_seconds = std::chrono::duration<double>(Clock::now() - term_at).count();
  std::printf(
      "[ fault    ] hung dogstatsd: udp delivered %llu events in %.2f s (%.0f/s offered %d/s); "
      "dogstatsd dropped %.0f (queue full); exit %.2f s after SIGTERM\n",
      static_cast<unsigned long long>(report.accepted), seconds,
      static_cast<double>(report.accepted) / seconds, kThreads * kRatePerThread, hung_dropped,
      exit_seconds);
}

// --- The receiver's disk full ---------------------------------------------------------------

// shmstats-recv writing its JSON Lines to /dev/full (every write fails with ENOSPC, a real full
// device) keeps receiving, counts each failed write and every line it lost, still answers /metrics
// and exits 0 on SIGTERM. (A directory made read-only is no test here: the suite runs as root,
// whom chmod does not stop; RecvUnwritableTest covers an output that cannot be opened.)
TEST(ReceiverFaultTest, FullDiskCountsWriteErrorsAndLostLinesAndKeepsReceiving) {
  constexpr int kBursts = 2;
  constexpr int kEventsPerBurst = 2000;
  SegmentGuard guard(unique_prefix());
  auto sut = start_receiver(kRecvBin, "/dev/full");
  ASSERT_NE(sut.udp_port, 0);
  ASSERT_NE(sut.http_port, 0);
  auto collector = start_collector(kCollectorBin, guard.prefix(), {"--udp", udp_to(sut.udp_port)});
  ASSERT_NE(collector.http_port, 0);
  std::uint64_t accepted = 0;
  double write_errors = 0;
  for (int burst = 0; burst < kBursts; ++burst) {
    auto producer = start_pace(guard.prefix(), "burst" + std::to_string(burst), 1, 0,
                               {"--events", std::to_string(kEventsPerBurst)});
    const PaceReport report = read_report(producer, 1, kWait);
    ASSERT_TRUE(report.complete);
    ASSERT_EQ(producer.wait(kWait), 0);
    accepted += report.accepted;
    std::string page;
    ASSERT_TRUE(wait_until(
        [&] {
          page = sut.metrics();
          return testing::prom_value(page, "shmstats_recv_events_total") ==
                     static_cast<double>(accepted) &&
                 testing::prom_value(page, "shmstats_recv_write_failed_lines_total") ==
                     static_cast<double>(accepted) &&
                 testing::prom_value(page, "shmstats_recv_write_errors_total") > write_errors;
        },
        kWait, [&] { return page; }))
        << "burst " << burst << ": every line failed, and its write errors counted";
    write_errors = testing::prom_value(page, "shmstats_recv_write_errors_total");
    EXPECT_EQ(testing::prom_value(page, "shmstats_recv_lines_written_total"), 0);
    EXPECT_EQ(testing::prom_value(page, "shmstats_recv_lost_total"), 0);
  }
  sut.process.kill(SIGTERM);
  EXPECT_EQ(sut.process.wait(kWait), 0);
}

}  // namespace
}  // namespace shmstats
