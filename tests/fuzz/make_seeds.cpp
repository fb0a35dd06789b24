// Writes the seed inputs of the fuzzers into <corpus>/{segment,datagram,config}/seed-*:
//   shmstats-fuzz-seeds tests/fuzz/corpus
// Segments use the smallest geometries the validator accepts (about 2 KB) and are made with
// Segment::create, then copied out with the fields that vary per run (pid, times) fixed, so the
// output is the same on every run. Datagrams come from the Encoder. Inputs the fuzzers found are
// kept next to the seeds under other names; this program never touches them.
#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "proto/datagram.h"
#include "shm/segment.h"
#include "shm/series.h"

namespace {

using namespace shmstats;
namespace fs = std::filesystem;

void write_seed(const fs::path& dir, std::string_view name, std::string_view bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / fmt::format("seed-{}", name), std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A segment made in /dev/shm and unlinked again; the caller fills it, then takes its bytes.
class SeedSegment {
 public:
  SeedSegment(std::uint32_t rings, std::uint32_t ring_capacity, std::uint32_t series) {
    shm::SegmentOptions o;
    o.prefix = "shmstats-fuzz-seed";
    o.service = "fuzz-seed";
    o.ring_count = rings;
    o.ring_capacity = ring_capacity;
    o.series_capacity = series;
    o.strings_size = static_cast<std::uint32_t>(shm::kMaxSeriesTextBytes);  // the minimum
    auto created = shm::Segment::create(o, sequence_++);
    if (!created) throw std::runtime_error(created.error().message);
    segment_.emplace(std::move(created).value());
    (void)shm::unlink_segment(segment_->name());
  }
  shm::Segment& segment() { return *segment_; }

  // As the producer registers a series (producer/src/client.cpp publish_entry).
  void publish(std::string_view name, std::vector<shm::TagView> tags, shm::Kind kind) {
    shm::Segment& s = segment();
    const std::string text = shm::encode_series_text(name, tags);
    const std::uint32_t id = s.header().series_count.load();
    std::memcpy(s.strings() + strings_used_, text.data(), text.size());
    shm::SeriesEntry& e = s.series_entry(id);
    e.id = id;
    e.hash = shm::series_hash(name, tags);
    e.text_offset = strings_used_;
    e.text_len = static_cast<std::uint16_t>(text.size());
    e.name_len = static_cast<std::uint8_t>(name.size());
    e.kind = static_cast<std::uint8_t>(kind);
    e.tag_count = static_cast<std::uint8_t>(tags.size());
    strings_used_ += static_cast<std::uint32_t>(text.size());
    s.header().strings_used.store(strings_used_);
    e.state.store(shm::kSeriesPublished);
    s.header().series_count.store(id + 1);
  }

  void push(std::uint32_t ring, std::uint32_t series_id, shm::Kind kind, double value) {
    shm::RingWriter writer = segment().ring_writer(ring);
    const shm::Event ev{series_id, static_cast<std::uint8_t>(kind), 0, 0, 1.0F, 0,
                        value,     1'000'000 + value_ticks_++};
    if (!writer.try_push(ev, writer.capacity())) throw std::runtime_error("seed ring is full");
  }

  // The mapping's bytes with the per-run fields fixed.
  std::string bytes() {
    shm::Segment& s = segment();
    shm::SegmentHeader& h = s.header();
    h.owner_pid = 4242;
    h.owner_uid = 1000;
    h.owner_start_time = 1'000;
    h.created_realtime_ns = 1'800'000'000'000'000'000;
    h.created_monotonic_ns = 1'000'000;
    h.created_ticks = 1'000'000;
    h.clock_source = static_cast<std::uint32_t>(shm::ClockSource::kTsc);
    for (std::uint32_t r = 0; r < s.geometry().ring_count; ++r) {
      s.ring_header(r).rng_state = r + 1;
    }
    return std::string(static_cast<const char*>(static_cast<void*>(&h)), s.mapped_size());
  }

 private:
  static inline std::uint32_t sequence_ = 0;
  std::optional<shm::Segment> segment_;
  std::uint32_t strings_used_ = 0;
  std::uint64_t value_ticks_ = 0;
};

void segment_seeds(const fs::path& dir) {
  {
    SeedSegment s(1, 2, 1);  // the smallest geometry the validator accepts
    write_seed(dir, "min-empty", s.bytes());
    s.publish("http.requests", {{"code", "200"}, {"route", "/api"}}, shm::Kind::kCounter);
    s.push(0, 0, shm::Kind::kCounter, 1.0);
    const std::string one_event = s.bytes();
    write_seed(dir, "min-one-event", one_event);
    // Only the header: the segment claims more bytes than the mapping has.
    write_seed(dir, "min-truncated", std::string_view(one_event).substr(0, 1024));
  }
  {
    SeedSegment s(2, 4, 2);
    s.publish("queue.depth", {}, shm::Kind::kGauge);
    s.publish("latency", {{"op", "read"}}, shm::Kind::kTiming);
    s.push(0, 0, shm::Kind::kGauge, 3.0);
    s.push(0, 0, shm::Kind::kGaugeDelta, -1.0);
    s.push(0, 1, shm::Kind::kTiming, 0.25);
    // Wrap ring 1: drain two events, then fill it.
    s.push(1, 1, shm::Kind::kTiming, 1.0);
    s.push(1, 1, shm::Kind::kTiming, 2.0);
    std::array<shm::Event, 2> drained{};
    (void)s.segment().ring_reader(1).poll(drained);
    for (int i = 0; i < 4; ++i) s.push(1, 1, shm::Kind::kTiming, 3.0 + i);
    auto& r1 = s.segment().ring_header(1);
    r1.state.store(static_cast<std::uint32_t>(shm::RingState::kOwned));
    r1.claims.store(1);
    r1.dropped[static_cast<std::size_t>(shm::DropReason::kRingFull)].store(3);
    write_seed(dir, "two-rings", s.bytes());
    // Indices that break 0 <= tail - head <= capacity: a reader quarantines the ring.
    r1.tail.store(r1.head.load() + 100);
    write_seed(dir, "two-rings-corrupt-tail", s.bytes());
  }
}

std::string with_fixups(std::uint8_t fixups, const std::string& datagram) {
  return std::string(1, static_cast<char>(fixups)) + datagram;
}

void datagram_seeds(const fs::path& dir) {
  constexpr std::int64_t kT0 = 1'800'000'000'000'000'000;
  const model::SeriesDef counter{
      "checkout", "http.requests", {{"code", "200"}}, shm::Kind::kCounter};
  const model::SeriesDef gauge{"checkout", "queue.depth", {}, shm::Kind::kGauge};
  const model::SeriesDef timing{
      "db", "query.time", {{"op", "read"}, {"table", "users"}}, shm::Kind::kTiming};
  model::SeriesDef large{"svc", std::string(200, 'n'), {}, shm::Kind::kHistogram};
  for (int t = 0; t < 16; ++t) {
    large.tags.emplace_back(fmt::format("key{:02d}{}", t, std::string(20, 'k')),
                            std::string(25, 'v'));
  }
  auto encode = [](std::string host, std::vector<model::Point> points,
                   std::vector<model::Aggregate> aggregates) {
    auto encoder = proto::Encoder::create(7, 8, proto::kMaxDatagramBytesIpv4, std::move(host));
    if (!encoder) throw std::runtime_error(encoder.error().message);
    std::vector<std::string> out;
    (void)encoder.value().encode(points, aggregates, 1'800'000'000'000'000'000, out);
    return out;
  };
  const auto simple = encode("host-a",
                             {{&counter, shm::Kind::kCounter, 1, 1.0F, kT0},
                              {&counter, shm::Kind::kCounter, 2, 1.0F, kT0 + 1000},
                              {&gauge, shm::Kind::kGauge, 42.5, 1.0F, kT0 + 1500}},
                             {{&timing, 3, 1.5, 0.25, 1.0, 0.25, kT0 + 2000}});
  write_seed(dir, "events-and-aggregate", with_fixups(0, simple.at(0)));
  write_seed(dir, "events-and-aggregate-fix-crc", with_fixups(1, simple.at(0)));
  // Sample rates and a gauge delta fill the optional columns; times go backwards.
  const auto columns = encode("",
                              {{&gauge, shm::Kind::kGaugeDelta, -3, 0.5F, kT0},
                               {&timing, shm::Kind::kTiming, 0.125, 0.01F, -kT0},
                               {&gauge, shm::Kind::kGauge, 7, 1.0F, 0}},
                              {});
  write_seed(dir, "optional-columns", with_fixups(3, columns.at(0)));
  write_seed(
      dir, "large-series",
      with_fixups(1, encode("h", {{&large, shm::Kind::kHistogram, 9, 1.0F, kT0}}, {}).at(0)));
  std::vector<model::Point> many;
  for (int i = 0; i < 150; ++i) {
    many.push_back({i % 2 == 0 ? &counter : &timing,
                    i % 2 == 0 ? shm::Kind::kCounter : shm::Kind::kTiming, static_cast<double>(i),
                    1.0F, kT0 + i});
  }
  const auto full = encode("host-b", many, {});
  write_seed(dir, "full-datagram", with_fixups(1, full.at(0)));
  write_seed(dir, "bad-crc", with_fixups(0, simple.at(0).substr(0, simple.at(0).size() - 1) + "x"));
  write_seed(dir, "header-only", with_fixups(3, simple.at(0).substr(0, proto::kHeaderBytes)));
}

void config_seeds(const fs::path& dir) {
  // Byte 0 picks the path (fuzz_inputs.h): '0' TOML, '1' argv, '2' argv + --config file, '3' env.
  write_seed(dir, "toml-every-key",
             "0udp = \"127.0.0.1:9125\"\n"
             "dogstatsd = \"unix:///run/dsd.sock\"\n"
             "http = \"[::1]:9102\"\n"
             "flush_interval = \"250ms\"\n"
             "batch_size = 4096\n"
             "shm_prefix = \"shmstats\"\n"
             "log_level = \"debug\"\n"
             "max_datagram_bytes = 1452\n"
             "dogstatsd_max_bytes = 1432\n"
             "dogstatsd_multi_value = true\n"
             "dogstatsd_service_tag = false\n"
             "breaker_failures = 5\n"
             "breaker_open = \"2s\"\n"
             "exporter_queue = 64\n"
             "shutdown_timeout = \"1m\"\n"
             "allowed_uids = [1000, 1001]\n"
             "allow_group_writable = \"yes\"\n"
             "sender_id = 18446744073709551615\n"
             "host = \"web-1\"\n"
             "health_latency_p99 = \"1s\"\n"
             "max_drain_rate = 1000000\n");
  write_seed(dir, "toml-syntax-error", "0udp = \"127.0.0.1:9125\nbatch_size = = 3\n[table\n");
  write_seed(dir, "toml-unknown-key", "0udp = \"127.0.0.1:9125\"\nno_such_key = 1\n");
  write_seed(dir, "toml-wrong-types",
             "0batch_size = -1\nflush_interval = 1.5\n[host]\nname = \"x\"\n");
  write_seed(dir, "toml-bad-values",
             "0udp = \"nohost\"\nallowed_uids = [1, \"x\", 99999999999]\nlog_level = \"loud\"\n");
  write_seed(dir, "argv-flags",
             "1--udp\n127.0.0.1:9125\n--flush-interval=2s\n--batch-size\n100\n--log-level\nwarn\n"
             "--allowed-uids\n0,1,2\n--dogstatsd-multi-value\non\n");
  write_seed(dir, "argv-bad", "1--batch-size\n0\n--nope\n--udp\n");
  write_seed(dir, "argv-help", "1--help\n");
  write_seed(dir, "argv-and-file",
             std::string("2--batch-size\n10\n") + '\0' + "batch_size = 20\nhost = \"h\"\n");
  write_seed(dir, "env-and-argv", "3FLUSH_INTERVAL=5s\n--max-drain-rate\n10\n");
  write_seed(dir, "env-bad", "3BREAKER_FAILURES=0\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (e.g. tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  try {
    const fs::path corpus(argv[1]);
    segment_seeds(corpus / "segment");
    datagram_seeds(corpus / "datagram");
    config_seeds(corpus / "config");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmstats-fuzz-seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
