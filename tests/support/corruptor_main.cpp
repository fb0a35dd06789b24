// shmstats-test-corruptor: the hostile processes of the hostile-input and security tests (issue
// #5).
//
//   produce --prefix P --service S [--rate PUSHES_PER_S] [--events N] [--rings R]
//           [--ring-capacity C] [--series-capacity K] [--truncate-after M --truncate-to BYTES]
//       An ordinary producer (the producer library): prints "segment <name>", then one thread
//       pushes 0, 1, 2, ... into counter "seq" tagged thread:0 at R pushes/s (0: unpaced), each
//       refused push retried (after a pause), so every value enters a ring exactly once; N values
//       (0: until SIGTERM). Prints "done pushed=<n>" and waits for SIGTERM, then closes its segment
//       and exits 0. With --truncate-after M: after M values it ftruncates its own segment file to
//       BYTES, prints "truncated <BYTES>", pushes no more (its own next push would fault) and
//       exits 0 on SIGTERM without touching the segment again.
//   corrupt --segment NAME --seed S [--rounds N] [--interval-us U]
//           [--targets header,rings,counters,series,slots] [--finale header|ring|random|none]
//           [--verbose]
//       Attaches a live segment read-write and, in each of N rounds, rewrites 1 to 4 randomly
//       chosen fields of the chosen targets with random and extreme values (huge, 0, 2^63,
//       2^64-1, just past a limit, backwards, NaN and infinity bit patterns). Its own reads and
//       writes stay inside the geometry it validated at attach, whatever it writes into the
//       header. Prints "seed <S>" first and "done rounds=<n> writes=<n> finale=<what>" last;
//       --verbose prints each write. The finale is one last write that must get the segment
//       quarantined: an immutable header field changed ("header"), or the tail of the last ring
//       (which no producer thread owns, so none races the write) moved past head + capacity
//       ("ring"); "random" picks one of the two from the seed.
//   as-user --uid U --prefix P [--mode 0600|0640|0660]
//       Needs root. Drops every group and becomes uid and gid U, then creates a segment (small
//       geometry) as that user; prints "segment <name>" and waits for SIGTERM, then removes it.
//       Prints "error <step>: <reason>" and exits 3 if a step fails.
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "shm/layout.h"
#include "shm/segment.h"
#include "shmstats/shmstats.h"

namespace {

using shmstats::shm::Segment;

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

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// Blocks SIGTERM and SIGINT so that wait_for_stop takes them synchronously.
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

bool stop_requested(const sigset_t& set) {
  const timespec zero{0, 0};
  return sigtimedwait(&set, nullptr, &zero) > 0;
}

void wait_for_stop(const sigset_t& set) {
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
}

// --- produce -------------------------------------------------------------------------------

constexpr auto kRetryPause = std::chrono::microseconds(500);

int produce(int argc, char** argv) {
  const sigset_t stop = stop_signals();
  shmstats::Options options;
  options.shm_prefix = arg_value(argc, argv, "--prefix", "shmstats");
  options.service = arg_value(argc, argv, "--service", "corruptor");
  options.rings = static_cast<std::uint32_t>(std::stoul(arg_value(argc, argv, "--rings", "4")));
  options.ring_capacity =
      static_cast<std::uint32_t>(std::stoul(arg_value(argc, argv, "--ring-capacity", "1024")));
  options.series_capacity =
      static_cast<std::uint32_t>(std::stoul(arg_value(argc, argv, "--series-capacity", "64")));
  options.strings_bytes = 4096;
  options.overflow = shmstats::Overflow::kDropNewest;
  options.read_environment = false;
  const double rate = std::stod(arg_value(argc, argv, "--rate", "0"));
  const std::uint64_t events = std::stoull(arg_value(argc, argv, "--events", "0"));
  const std::uint64_t truncate_after = std::stoull(arg_value(argc, argv, "--truncate-after", "0"));
  const long truncate_to = std::stol(arg_value(argc, argv, "--truncate-to", "4096"));
  auto client = shmstats::Client::create(options);
  if (!client) {
    say("error creating the client: " + client.error().message);
    return 2;
  }
  const std::string name = client->segment_name();
  say("segment " + name);
  auto counter = client->counter("seq", {{"thread", "0"}});
  if (!counter) {
    say("error registering seq: " + counter.error().message);
    return 2;
  }
  const auto period = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(rate > 0 ? 1.0 / rate : 0.0));
  auto next = std::chrono::steady_clock::now();
  std::uint64_t pushed = 0;
  for (; events == 0 || pushed < events; ++pushed) {
    if (truncate_after != 0 && pushed == truncate_after) {
      const int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
      if (fd < 0 || ::ftruncate(fd, truncate_to) != 0) {
        say(std::string("error truncating: ") + std::strerror(errno));
        return 3;
      }
      ::close(fd);
      say("truncated " + std::to_string(truncate_to));
      wait_for_stop(stop);
      // The client's destructor would write to pages that are gone: leave without it.
      std::fflush(stdout);
      std::_Exit(0);
    }
    bool stopping = false;
    while (!counter->add(static_cast<double>(pushed))) {
      stopping = stop_requested(stop);
      if (stopping) break;
      // Not a spin: once a collector quarantines this segment nobody drains it again.
      std::this_thread::sleep_for(kRetryPause);
    }
    if (stopping || ((pushed & 255) == 0 && stop_requested(stop))) break;
    if (rate > 0) {
      next += period;
      std::this_thread::sleep_until(next);
    }
  }
  say("done pushed=" + std::to_string(pushed));
  if (events != 0) wait_for_stop(stop);
  return 0;
}

// --- corrupt -------------------------------------------------------------------------------

// Stores `v` into a plain field of the shared segment as one relaxed atomic store.
template <class T>
void poke(T& field, T v) {
  std::atomic_ref<T>(field).store(v, std::memory_order_relaxed);
}
template <class T>
T peek(T& field) {
  return std::atomic_ref<T>(field).load(std::memory_order_relaxed);
}

class Corruptor {
 public:
  Corruptor(Segment& segment, std::uint64_t seed, bool verbose)
      : seg_(segment), geo_(segment.geometry()), random_(seed), verbose_(verbose) {}

  std::uint64_t writes() const { return writes_; }

  std::uint64_t any64() { return random_(); }
  std::uint32_t any32() { return static_cast<std::uint32_t>(random_()); }
  std::size_t below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(random_() % n); }

  std::uint64_t extreme64() {
    const std::uint64_t values[] = {0,
                                    1,
                                    2,
                                    std::uint64_t{1} << 32,
                                    (std::uint64_t{1} << 63) - 1,
                                    std::uint64_t{1} << 63,
                                    ~std::uint64_t{0},
                                    ~std::uint64_t{0} - 1,
                                    ~std::uint64_t{0} - geo_.ring_capacity,
                                    any64()};
    return values[below(std::size(values))];
  }
  std::uint32_t extreme32() {
    const std::uint32_t values[] = {0,          1,          2,          0x7FFFFFFF,
                                    0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, any32()};
    return values[below(std::size(values))];
  }
  // A double's bits: NaNs (quiet, signalling, negative), infinities, extremes, random.
  std::uint64_t hostile_double_bits() {
    const std::uint64_t values[] = {
        0x7FF8000000000000ULL,  // quiet NaN
        0x7FF0000000000001ULL,  // signalling NaN
        0xFFF8000000000000ULL,  // negative NaN
        std::bit_cast<std::uint64_t>(std::numeric_limits<double>::infinity()),
        std::bit_cast<std::uint64_t>(-std::numeric_limits<double>::infinity()),
        std::bit_cast<std::uint64_t>(std::numeric_limits<double>::max()),
        std::bit_cast<std::uint64_t>(-0.0),
        std::bit_cast<std::uint64_t>(std::numeric_limits<double>::denorm_min()),
        any64()};
    return values[below(std::size(values))];
  }

  void header() {
    shmstats::shm::SegmentHeader& h = seg_.header();
    switch (below(21)) {
      case 0:
        return note("magic", set_atomic(h.magic, extreme64()));
      case 1:
        return note("layout_version", set(h.layout_version, extreme32()));
      case 2:
        return note("header_size", set(h.header_size, extreme32()));
      case 3:
        return note("total_size", set(h.total_size, extreme64()));
      case 4:
        return note("series_capacity", set(h.series_capacity, extreme32()));
      case 5:
        return note("strings_size", set(h.strings_size, extreme32()));
      case 6:
        return note("ring_count", set(h.ring_count, extreme32()));
      case 7:
        return note("ring_capacity", set(h.ring_capacity, extreme32()));
      case 8:
        return note("rings_offset", set(h.rings_offset, extreme64()));
      case 9:
        return note("ring_stride", set(h.ring_stride, extreme64()));
      case 10:
        return note("series_offset", set(h.series_offset, extreme64()));
      case 11:
        return note("owner_pid", set(h.owner_pid, static_cast<std::int32_t>(extreme32())));
      case 12:
        return note("owner_start_time", set(h.owner_start_time, extreme64()));
      case 13:
        return note("clock_source", set(h.clock_source, extreme32()));
      case 14:
        return note("service_name_len", set(h.service_name_len, extreme32()));
      case 15: {
        // Bytes that are no text: control characters, invalid UTF-8.
        const char bytes[] = {'\x1b', '[', '2', 'J', '\xff', '\xc0', '\x80', '\n', '\0'};
        for (char& c : h.service_name) poke(c, bytes[below(std::size(bytes))]);
        return note("service_name", 0);
      }
      case 16: {
        // Only states no producer writes: a valid "closed" is an ordinary close, and ends in a
        // reclaim rather than a quarantine (the fault tests cover that).
        const std::uint32_t states[] = {0, 4, 0x7FFFFFFF, 0xFFFFFFFF};
        return note("state", set_atomic(h.state, states[below(std::size(states))]));
      }
      case 17:
        return note("series_count", set_atomic(h.series_count, extreme32()));
      case 18:
        return note("strings_used", set_atomic(h.strings_used, extreme32()));
      case 19:
        return note("slots_offset", set(h.slots_offset, extreme64()));
      default:
        return note("sample_keep_one_in", set(h.sample_keep_one_in, extreme32()));
    }
  }

  void rings() {
    const std::uint32_t r = static_cast<std::uint32_t>(below(geo_.ring_count));
    shmstats::shm::RingHeader& ring = seg_.ring_header(r);
    const std::uint64_t head = ring.head.load(std::memory_order_relaxed);
    const std::uint64_t tail = ring.tail.load(std::memory_order_relaxed);
    switch (below(12)) {
      case 0:
        return note("tail huge", set_atomic(ring.tail, extreme64()), r);
      case 1:
        return note("head huge", set_atomic(ring.head, extreme64()), r);
      case 2:
        return note("tail backwards", set_atomic(ring.tail, tail - 1 - below(8)), r);
      case 3:
        return note("head backwards", set_atomic(ring.head, head - 1 - below(8)), r);
      case 4:
        return note("tail past capacity",
                    set_atomic(ring.tail, head + geo_.ring_capacity + 1 + below(1000)), r);
      case 5:
        return note("head past tail", set_atomic(ring.head, tail + 1 + below(1000)), r);
      case 6: {
        // Both near the 2^64 wrap, consistent: an honest reader copes (signed differences).
        const std::uint64_t at = ~std::uint64_t{0} - below(4);
        ring.head.store(at, std::memory_order_relaxed);
        return note("indices near wrap", set_atomic(ring.tail, at), r);
      }
      case 7:
        return note("state", set_atomic(ring.state, extreme32()), r);
      case 8:
        return note("owner_tid", set_atomic(ring.owner_tid, extreme64()), r);
      case 9:
        return note("claims", set_atomic(ring.claims, extreme64()), r);
      case 10:
        return note("high_water", set_atomic(ring.high_water, extreme64()), r);
      default:
        return note("cached_head", set(ring.cached_head, extreme64()), r);
    }
  }

  void counters() {
    shmstats::shm::SegmentHeader& h = seg_.header();
    const std::uint32_t r = static_cast<std::uint32_t>(below(geo_.ring_count));
    shmstats::shm::RingHeader& ring = seg_.ring_header(r);
    const std::size_t reason = below(shmstats::shm::kDropReasonCount);
    switch (below(7)) {
      case 0:
        return note("ring pushed", set_atomic(ring.pushed, extreme64()), r);
      case 1:
        return note("ring folded", set_atomic(ring.folded, extreme64()), r);
      case 2:
        return note("ring dropped", set_atomic(ring.dropped[reason], extreme64()), r);
      case 3:
        return note("segment dropped", set_atomic(h.dropped[reason], extreme64()));
      case 4:
        return note("folded_no_ring", set_atomic(h.folded_no_ring, extreme64()));
      case 5:
        return note(
            "series_rejected",
            set_atomic(h.series_rejected[below(std::size(h.series_rejected))], extreme64()));
      default:
        return note("ring pushed backwards",
                    set_atomic(ring.pushed, ring.pushed.load(std::memory_order_relaxed) / 2), r);
    }
  }

  void series() {
    const std::uint32_t published =
        std::min(seg_.header().series_count.load(std::memory_order_relaxed), geo_.series_capacity);
    // Mostly entries in use, sometimes any entry of the table.
    const auto id = static_cast<std::uint32_t>(
        below(4) != 0 && published > 0 ? below(published) : below(geo_.series_capacity));
    shmstats::shm::SeriesEntry& e = seg_.series_entry(id);
    switch (below(14)) {
      case 0:
        return note("state", set_atomic(e.state, extreme32()), id);
      case 1:
        return note("id", set(e.id, extreme32()), id);
      case 2:
        return note("kind", set(e.kind, static_cast<std::uint8_t>(any32())), id);
      case 3:
        return note("overflow", set(e.overflow, static_cast<std::uint8_t>(any32())), id);
      case 4:
        return note("text_offset", set(e.text_offset, extreme32()), id);
      case 5: {
        const std::uint16_t lens[] = {0, 1, 0xFFFF, static_cast<std::uint16_t>(geo_.strings_size),
                                      static_cast<std::uint16_t>(any32())};
        return note("text_len", set(e.text_len, lens[below(std::size(lens))]), id);
      }
      case 6:
        return note("name_len", set(e.name_len, static_cast<std::uint8_t>(any32())), id);
      case 7:
        return note("tag_count", set(e.tag_count, static_cast<std::uint8_t>(any32())), id);
      case 8:
        return note("fold_count", set_atomic(e.fold_count, extreme64()), id);
      case 9:
        return note("fold_sum", set_atomic(e.fold_sum_bits, hostile_double_bits()), id);
      case 10:
        return note("fold_min", set_atomic(e.fold_min_bits, hostile_double_bits()), id);
      case 11:
        return note("fold_max", set_atomic(e.fold_max_bits, hostile_double_bits()), id);
      case 12:
        return note("fold_last", set_atomic(e.fold_last_bits, hostile_double_bits()), id);
      default: {
        // The entry's text: separators, control bytes and broken UTF-8 where a name should be.
        const char bytes[] = {'|', '#', ':', ',', '\n', '\0', '\xff', '\xc3', ' '};
        const std::uint32_t offset = peek(e.text_offset);
        const std::uint32_t len = peek(e.text_len);
        if (std::uint64_t{offset} + len <= geo_.strings_size && len > 0) {
          poke(seg_.strings()[offset + below(len)], bytes[below(std::size(bytes))]);
        }
        return note("text byte", offset, id);
      }
    }
  }

  void slots() {
    const std::uint32_t r = static_cast<std::uint32_t>(below(geo_.ring_count));
    shmstats::shm::RingHeader& ring = seg_.ring_header(r);
    shmstats::shm::Event* slots = seg_.ring_slots(r);
    const std::uint64_t mask = geo_.ring_capacity - 1;
    const std::uint64_t head = ring.head.load(std::memory_order_relaxed);
    const std::uint64_t tail = ring.tail.load(std::memory_order_relaxed);
    // Mostly a slot that waits to be read, else any slot.
    const std::uint64_t fill = tail - head <= geo_.ring_capacity ? tail - head : 0;
    const std::uint64_t pos = fill > 0 && below(4) != 0 ? head + below(fill) : below(mask + 1);
    auto* words = reinterpret_cast<std::uint64_t*>(&slots[pos & mask]);
    const std::uint32_t ids[] = {0,          1,      geo_.series_capacity - 1, geo_.series_capacity,
                                 0xFFFFFFFF, any32()};
    const std::uint32_t rate_bits[] = {
        std::bit_cast<std::uint32_t>(std::numeric_limits<float>::quiet_NaN()),
        std::bit_cast<std::uint32_t>(0.0F),
        std::bit_cast<std::uint32_t>(-1.0F),
        std::bit_cast<std::uint32_t>(2.0F),
        std::bit_cast<std::uint32_t>(std::numeric_limits<float>::infinity()),
        std::bit_cast<std::uint32_t>(std::numeric_limits<float>::denorm_min()),
        std::bit_cast<std::uint32_t>(1.0F)};
    const std::uint64_t times[] = {
        0, 1, std::uint64_t{1} << 63, ~std::uint64_t{0}, (std::uint64_t{1} << 63) - 1, any64()};
    switch (below(5)) {
      case 0: {
        const std::uint64_t kind = below(4) == 0 ? below(256) : 1 + below(6);
        return note("series id and kind",
                    set_word(words[0], std::uint64_t{ids[below(std::size(ids))]} | kind << 32), r);
      }
      case 1:
        return note("sample rate", set_word(words[1], rate_bits[below(std::size(rate_bits))]), r);
      case 2:
        return note("value", set_word(words[2], hostile_double_bits()), r);
      case 3:
        return note("ts", set_word(words[3], times[below(std::size(times))]), r);
      default: {
        // Publish garbage: move tail forward over slots nobody wrote, staying within capacity.
        if (fill >= geo_.ring_capacity) return note("publish (full)", 0, r);
        const std::uint64_t more = 1 + below(geo_.ring_capacity - fill);
        return note("publish", set_atomic(ring.tail, tail + more), r);
      }
    }
  }

  // The last write: one that a reader must treat as corruption.
  std::string finale(const std::string& kind) {
    if (kind == "header") {
      shmstats::shm::SegmentHeader& h = seg_.header();
      switch (below(4)) {
        case 0:
          set_atomic(h.magic, h.magic.load() ^ (1 + below(255)));
          return "header magic";
        case 1:
          set(h.ring_count, peek(h.ring_count) + 1 + static_cast<std::uint32_t>(below(7)));
          return "header ring_count";
        case 2:
          set(h.owner_pid, peek(h.owner_pid) ^ static_cast<std::int32_t>(1 + below(1000)));
          return "header owner_pid";
        default:
          set(h.total_size, peek(h.total_size) + 4096);
          return "header total_size";
      }
    }
    if (kind == "ring") {
      // The last ring: no producer thread owns it (the producer has one thread), so no push
      // writes its tail back over ours.
      shmstats::shm::RingHeader& ring = seg_.ring_header(geo_.ring_count - 1);
      const std::uint64_t head = ring.head.load();
      ring.tail.store(head + geo_.ring_capacity + 1 + below(1000));
      return "ring tail past head + capacity";
    }
    return "none";
  }

 private:
  template <class T>
  std::uint64_t set(T& field, T v) {
    poke(field, v);
    return static_cast<std::uint64_t>(v);
  }
  template <class T>
  std::uint64_t set_atomic(std::atomic<T>& field, T v) {
    field.store(v, std::memory_order_relaxed);
    return static_cast<std::uint64_t>(v);
  }
  std::uint64_t set_word(std::uint64_t& word, std::uint64_t v) {
    poke(word, v);
    return v;
  }
  void note(const char* what, std::uint64_t value, std::uint64_t index = 0) {
    ++writes_;
    if (verbose_) {
      std::printf("write %s [%llu] = %llu\n", what, static_cast<unsigned long long>(index),
                  static_cast<unsigned long long>(value));
    }
  }

  Segment& seg_;
  const shmstats::shm::Geometry geo_;
  std::mt19937_64 random_;
  bool verbose_;
  std::uint64_t writes_ = 0;
};

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const auto end = comma == std::string::npos ? text.size() : comma;
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

int corrupt(int argc, char** argv) {
  const std::string name = arg_value(argc, argv, "--segment", "");
  const std::uint64_t seed = std::stoull(arg_value(argc, argv, "--seed", "1"));
  const std::uint64_t rounds = std::stoull(arg_value(argc, argv, "--rounds", "100"));
  const auto interval =
      std::chrono::microseconds(std::stoll(arg_value(argc, argv, "--interval-us", "10000")));
  const auto targets =
      split(arg_value(argc, argv, "--targets", "header,rings,counters,series,slots"));
  std::string finale = arg_value(argc, argv, "--finale", "random");
  say("seed " + std::to_string(seed));
  auto seg = Segment::attach(name, Segment::Access::kReadWrite);
  if (!seg) {
    say("error attaching: " + seg.error().message);
    return 2;
  }
  Corruptor sut(seg.value(), seed, has_flag(argc, argv, "--verbose"));
  std::vector<std::function<void()>> writers;
  for (const auto& t : targets) {
    if (t == "header") writers.emplace_back([&] { sut.header(); });
    if (t == "rings") writers.emplace_back([&] { sut.rings(); });
    if (t == "counters") writers.emplace_back([&] { sut.counters(); });
    if (t == "series") writers.emplace_back([&] { sut.series(); });
    if (t == "slots") writers.emplace_back([&] { sut.slots(); });
  }
  if (writers.empty()) {
    say("error no known target in --targets");
    return 64;
  }
  auto next = std::chrono::steady_clock::now();
  for (std::uint64_t round = 0; round < rounds; ++round) {
    const std::size_t n = 1 + sut.below(4);
    for (std::size_t i = 0; i < n; ++i) writers[sut.below(writers.size())]();
    next += interval;
    std::this_thread::sleep_until(next);
  }
  if (finale == "random") finale = sut.below(2) == 0 ? "header" : "ring";
  const std::string done = sut.finale(finale);
  say("done rounds=" + std::to_string(rounds) + " writes=" + std::to_string(sut.writes()) +
      " finale=" + done);
  return 0;
}

// --- as-user -------------------------------------------------------------------------------

int as_user(int argc, char** argv) {
  const sigset_t stop = stop_signals();
  const auto uid = static_cast<uid_t>(std::stoul(arg_value(argc, argv, "--uid", "65534")));
  const auto mode =
      static_cast<std::uint32_t>(std::stoul(arg_value(argc, argv, "--mode", "0600"), nullptr, 8));
  auto fail = [](const char* step) {
    say(std::string("error ") + step + ": " + std::strerror(errno));
    return 3;
  };
  // Groups first: once the uid is dropped they can no longer be changed.
  if (::setgroups(0, nullptr) != 0) return fail("setgroups");
  if (::setresgid(uid, uid, uid) != 0) return fail("setresgid");
  if (::setresuid(uid, uid, uid) != 0) return fail("setresuid");
  shmstats::shm::SegmentOptions options;
  options.prefix = arg_value(argc, argv, "--prefix", "shmstats");
  options.service = "as-user";
  options.ring_count = 2;
  options.ring_capacity = 64;
  options.series_capacity = 16;
  options.strings_size = 4096;
  options.mode = mode;
  auto seg = Segment::create(options);
  if (!seg) {
    say("error creating: " + seg.error().message);
    return 3;
  }
  say("segment " + seg.value().name());
  wait_for_stop(stop);
  (void)shmstats::shm::unlink_segment(seg.value().name());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: shmstats-test-corruptor produce|corrupt|as-user [options]\n");
    return 64;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "produce") return produce(argc, argv);
    if (cmd == "corrupt") return corrupt(argc, argv);
    if (cmd == "as-user") return as_user(argc, argv);
  } catch (const std::exception& e) {
    say(std::string("error ") + e.what());
    return 2;
  }
  std::fprintf(stderr, "shmstats-test-corruptor: unknown command '%s'\n", cmd.c_str());
  return 64;
}
