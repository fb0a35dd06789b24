#include "collector/exporters/tally/tally.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/unit/collector/batch_builder.h"
#include "tests/unit/collector/receivers.h"

namespace shmstats::collector {
namespace {

using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
}

double sample(const std::vector<ExporterSample>& samples, const std::string& name,
              const std::string& label_value = "") {
  for (const auto& s : samples) {
    if (s.name != name) continue;
    if (!label_value.empty() && (s.labels.empty() || s.labels[0].second != label_value)) continue;
    return s.value;
  }
  return -1;
}

TEST(TallyExporterTest, MergesPointsAndFoldsAndWritesExactTotalsOnFlush) {
  testing::TempDir dir;
  auto sut = TallyExporter::create(TallyOptions{"tally", (dir.path() / "t.json").string()});
  ASSERT_TRUE(sut) << sut.error().message;
  testing::BatchBuilder b;
  const auto* hits = b.series("hits", shm::Kind::kCounter, {{"route", "/a"}});
  b.point(hits, 2).point(hits, 3).aggregate(hits, 10, 40, 1, 7, 7);

  const SendResult sent = sut.value()->send(b.batch());
  const SendResult flushed = sut.value()->flush();

  EXPECT_EQ(sent.events_merged, 3U);
  EXPECT_EQ(sent.events_sent, 0U);
  EXPECT_EQ(flushed.requests, 1U);
  const json doc = read_json((dir.path() / "t.json").string());
  ASSERT_FALSE(doc.is_discarded());
  ASSERT_EQ(doc["series"].size(), 1U);
  const json& s = doc["series"][0];
  EXPECT_EQ(s["name"], "hits");
  EXPECT_EQ(s["tags"]["route"], "/a");
  EXPECT_EQ(s["points"], 2);
  EXPECT_EQ(s["sum"], 5.0);
  EXPECT_EQ(s["folded_count"], 10);
  EXPECT_EQ(s["folded_sum"], 40.0);
  EXPECT_EQ(doc["flushes"], 1);
}

TEST(TallyExporterTest, SeriesBeyondTheCapAreDroppedAndCounted) {
  constexpr std::size_t kCap = 1;
  testing::TempDir dir;
  auto sut =
      TallyExporter::create(TallyOptions{"tally", (dir.path() / "t.json").string(), {}, kCap});
  ASSERT_TRUE(sut) << sut.error().message;
  testing::BatchBuilder b;
  const auto* first = b.series("first", shm::Kind::kCounter);
  const auto* second = b.series("second", shm::Kind::kCounter);
  b.point(first, 1).point(second, 1).point(second, 1);

  const SendResult r = sut.value()->send(b.batch());
  std::vector<ExporterSample> samples;
  sut.value()->describe_metrics(samples);

  EXPECT_EQ(r.events_merged, 1U);
  EXPECT_EQ(r.events_dropped, 2U);
  EXPECT_EQ(sample(samples, "shmstats_exporter_tally_dropped_events_total", "series_cap"), 2);
  EXPECT_EQ(sample(samples, "shmstats_exporter_tally_series"), 1);
}

TEST(TallyExporterTest, UnwritableFileIsASendErrorAndCounted) {
  auto sut = TallyExporter::create(TallyOptions{"tally", "/proc/no-such-dir/t.json"});
  ASSERT_TRUE(sut) << sut.error().message;

  const SendResult r = sut.value()->flush();
  std::vector<ExporterSample> samples;
  sut.value()->describe_metrics(samples);

  EXPECT_EQ(r.send_errors, 1U);
  EXPECT_EQ(r.requests, 0U);
  EXPECT_EQ(sample(samples, "shmstats_exporter_tally_writes_total", "failed"), 1);
  EXPECT_EQ(sample(samples, "shmstats_exporter_tally_writes_total", "ok"), 0);
}

}  // namespace
}  // namespace shmstats::collector
