// The Prometheus text writer (HELP/TYPE lines, samples, label-value escaping, invalid UTF-8
// replaced, exact integers, non-finite values) and the parser the tests and loadgen read pages
// with, alone and as a round trip.
#include "common/prometheus_text.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace shmstats::common::prometheus {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

TEST(PrometheusWriterTest, WritesHelpTypeAndSamplesWithAndWithoutLabels) {
  TextWriter sut;

  sut.family("x_total", MetricType::kCounter, "Things counted.");
  sut.sample("x_total", {{"reason", "a"}, {"ring", "2"}}, 3);
  sut.single("y", MetricType::kGauge, "A level.", 0.25);

  EXPECT_EQ(sut.take(),
            "# HELP x_total Things counted.\n"
            "# TYPE x_total counter\n"
            "x_total{reason=\"a\",ring=\"2\"} 3\n"
            "# HELP y A level.\n"
            "# TYPE y gauge\n"
            "y 0.25\n");
  EXPECT_EQ(sut.take(), "");
}

TEST(PrometheusWriterTest, EscapesBackslashQuoteAndNewlineInLabelValuesAndHelp) {
  TextWriter sut;

  sut.family("x", MetricType::kGauge, "back\\slash and\nnewline");
  sut.sample("x", {{"segment", "a\\b\"c\nd"}}, 1);

  EXPECT_EQ(sut.take(),
            "# HELP x back\\\\slash and\\nnewline\n"
            "# TYPE x gauge\n"
            "x{segment=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(PrometheusWriterTest, ReplacesEachInvalidUtf8SequenceAndKeepsValidOnes) {
  const std::string valid = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // e-acute, euro, emoji
  const std::string lone_continuation = "\x80";
  const std::string bad_lead = "\xFF";
  const std::string overlong_slash = "\xC0\xAF";
  const std::string surrogate = "\xED\xA0\x80";
  const std::string truncated_euro = "\xE2\x82";

  EXPECT_EQ(escape_label_value(valid), valid);
  EXPECT_EQ(escape_label_value("a" + lone_continuation + "b"),
            "a" + std::string(kReplacement) + "b");
  EXPECT_EQ(escape_label_value(bad_lead), kReplacement);
  EXPECT_EQ(escape_label_value(overlong_slash),
            std::string(kReplacement) + std::string(kReplacement));
  EXPECT_EQ(escape_label_value(surrogate),
            std::string(kReplacement) + std::string(kReplacement) + std::string(kReplacement));
  EXPECT_EQ(escape_label_value(truncated_euro + "x"), std::string(kReplacement) + "x");
}

TEST(PrometheusWriterTest, WritesIntegersExactlyAndNonFiniteValuesByName) {
  constexpr std::uint64_t kBeyondDoublePrecision = (std::uint64_t{1} << 60) + 1;
  TextWriter sut;

  sut.sample("big", kBeyondDoublePrecision);
  sut.sample("negative", std::int64_t{-5});
  sut.sample("real", 1.5);
  sut.sample("inf", std::numeric_limits<double>::infinity());
  sut.sample("ninf", -std::numeric_limits<double>::infinity());
  sut.sample("nan", std::nan(""));

  EXPECT_EQ(sut.take(),
            "big 1152921504606846977\n"
            "negative -5\n"
            "real 1.5\n"
            "inf +Inf\n"
            "ninf -Inf\n"
            "nan NaN\n");
}

TEST(PrometheusTextTest, WriterOutputParsesBackToTheSameSamples) {
  const std::string hostile = "seg\\1\"q\"\nnext,}{=";
  TextWriter writer;
  writer.family("a_total", MetricType::kCounter, "A.");
  writer.sample("a_total", {{"segment", hostile}, {"reason", "ring_full"}}, 7);
  writer.sample("a_total", {{"segment", "plain"}, {"reason", "bad\xFF"}}, 2.5);
  writer.single("b", MetricType::kGauge, "B.", 0.001);
  writer.sample("c_bucket", {{"le", "+Inf"}}, std::numeric_limits<double>::infinity());

  const auto sut = parse_text(writer.take());

  ASSERT_EQ(sut.size(), 4U);
  EXPECT_EQ(sut[0].name, "a_total");
  ASSERT_EQ(sut[0].labels.size(), 2U);
  EXPECT_EQ(sut[0].labels[0].first, "segment");
  EXPECT_EQ(sut[0].labels[0].second, hostile);
  EXPECT_EQ(sut[0].label("reason"), "ring_full");
  EXPECT_EQ(sut[0].value, 7);
  EXPECT_EQ(sut[1].label("reason"), "bad" + std::string(kReplacement));
  EXPECT_EQ(sut[1].value, 2.5);
  EXPECT_EQ(sut[2].name, "b");
  EXPECT_TRUE(sut[2].labels.empty());
  EXPECT_EQ(sut[2].value, 0.001);
  EXPECT_EQ(sut[3].label("le"), "+Inf");
  EXPECT_TRUE(std::isinf(sut[3].value));
}

TEST(PrometheusParserTest, SkipsCommentsAndMalformedLinesAndIgnoresTimestamps) {
  constexpr std::string_view kPage =
      "# HELP x_total X.\n"
      "# TYPE x_total counter\n"
      "x_total 1234\n"
      "\n"
      "y_total{reason=\"too_short\"} 2\n"
      "y_total{reason=\"bad_crc\"} 3\n"
      "broken line without a value\n"
      "unterminated{le=\"1} 4\n"
      "no_value{a=\"b\"}\n"
      "with_timestamp 7 1700000000000\n";

  const auto sut = parse_text(kPage);

  ASSERT_EQ(sut.size(), 4U);
  EXPECT_EQ(sum(sut, "x_total"), 1234);
  EXPECT_EQ(sum(sut, "y_total"), 5);
  EXPECT_EQ(sum(sut, "with_timestamp"), 7);
  EXPECT_EQ(sum(sut, "broken"), 0);
  EXPECT_EQ(sum(sut, "unterminated"), 0);
  EXPECT_EQ(sum(sut, "absent"), 0);
}

TEST(PrometheusParserTest, LabelIsFoundOnlyAsAWholeKey) {
  const auto sut = parse_text("m{xle=\"1\",le=\"0.5\",x=\"y\"} 1\n");

  ASSERT_EQ(sut.size(), 1U);
  EXPECT_EQ(sut[0].label("le"), "0.5");
  EXPECT_EQ(sut[0].label("x"), "y");
  EXPECT_EQ(sut[0].label("xl"), std::nullopt);
  EXPECT_EQ(sut[0].label("e"), std::nullopt);
}

}  // namespace
}  // namespace shmstats::common::prometheus
