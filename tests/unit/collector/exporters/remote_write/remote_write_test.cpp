#include "collector/exporters/remote_write/remote_write.h"

#include <gtest/gtest.h>
#include <snappy.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "collector/exporters/http_sender.h"
#include "proto/remote_write.pb.h"
#include "tests/unit/collector/batch_builder.h"

namespace shmstats::collector {
namespace {

using testing::BatchBuilder;

constexpr std::int64_t kTimestampMs = 1'796'000'000'000;

std::vector<remote::WriteRequest> decode(const std::vector<EncodedRequest>& requests) {
  std::vector<remote::WriteRequest> out;
  for (const auto& r : requests) {
    remote::WriteRequest parsed;
    EXPECT_TRUE(parsed.ParseFromString(r.body));
    EXPECT_EQ(static_cast<std::uint64_t>(parsed.timeseries_size()), r.samples);
    out.push_back(parsed);
  }
  return out;
}

std::vector<EncodedRequest> encode(const aggregate::Stage& stage, std::size_t max_samples = 1000,
                                   std::size_t max_bytes = 1 << 20) {
  std::uint64_t hidden[kHiddenReasonCount] = {};
  ViewOptions view;
  view.host = "h1";
  return encode_interval(stage, view, kTimestampMs, max_samples, max_bytes, hidden);
}

TEST(HttpUrlTest, ParsesHttpAndHttpsWithDefaultAndExplicitPorts) {
  auto plain = parse_http_url("http://127.0.0.1:9090/api/v1/write");
  auto secure = parse_http_url("https://metrics.example.net/api/v1/push?x=1");
  auto v6 = parse_http_url("http://[::1]:8428");

  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_FALSE(plain.value().tls);
  EXPECT_EQ(plain.value().port, 9090);
  EXPECT_EQ(plain.value().target, "/api/v1/write");
  ASSERT_TRUE(secure) << secure.error().message;
  EXPECT_TRUE(secure.value().tls);
  EXPECT_EQ(secure.value().port, 443);
  EXPECT_EQ(secure.value().target, "/api/v1/push?x=1");
  ASSERT_TRUE(v6) << v6.error().message;
  EXPECT_EQ(v6.value().host, "::1");
  EXPECT_EQ(v6.value().target, "/");
  EXPECT_EQ(v6.value().text(), "http://[::1]:8428/");
}

TEST(HttpUrlTest, RejectsWhatIsNotAnHttpUrl) {
  for (const char* text :
       {"", "ftp://h/x", "127.0.0.1:9090/api", "http://", "http://:80/", "http://h:0/",
        "http://h:65536/", "http://h:x/", "http://::1:80/", "http://u:p@h/", "http://h/a b"}) {
    const auto parsed = parse_http_url(text);
    ASSERT_FALSE(parsed) << text;
    EXPECT_EQ(parsed.error().code, shm::Errc::kInvalidOptions) << text;
  }
}

TEST(RemoteWriteHeadersTest, ParsesNameValuePairsAndRejectsBadOnes) {
  auto headers = parse_headers("X-Scope-OrgID: tenant-1; X-Extra:  two words ");
  ASSERT_TRUE(headers) << headers.error().message;
  ASSERT_EQ(headers.value().size(), 2U);
  EXPECT_EQ(headers.value()[0], (std::pair<std::string, std::string>{"X-Scope-OrgID", "tenant-1"}));
  EXPECT_EQ(headers.value()[1], (std::pair<std::string, std::string>{"X-Extra", "two words"}));
  EXPECT_TRUE(parse_headers("").value().empty());
  EXPECT_FALSE(parse_headers("no colon"));
  EXPECT_FALSE(parse_headers("Bad Name: x"));
  EXPECT_FALSE(parse_headers(std::string("X: a\x01") + "b"));
}

TEST(RemoteWriteEncodeTest, OneSamplePerSeriesWithSortedLabelsAndTheFlushTime) {
  aggregate::Stage stage({});
  BatchBuilder b;
  b.point(b.series("hits", model::Kind::kCounter, {{"route", "/a"}}, "shop"), 4)
      .point(b.series("depth", model::Kind::kGauge, {}, "shop"), 7);
  (void)stage.merge(b.batch());

  const auto requests = decode(encode(stage));

  ASSERT_EQ(requests.size(), 1U);
  ASSERT_EQ(requests[0].timeseries_size(), 2);
  const remote::TimeSeries& hits = requests[0].timeseries(1);  // families sorted: depth, hits
  ASSERT_EQ(hits.labels_size(), 4);
  EXPECT_EQ(hits.labels(0).name(), "__name__");
  EXPECT_EQ(hits.labels(0).value(), "hits_total");
  EXPECT_EQ(hits.labels(1).name(), "host");
  EXPECT_EQ(hits.labels(2).name(), "route");
  EXPECT_EQ(hits.labels(3).name(), "service");
  ASSERT_EQ(hits.samples_size(), 1);
  EXPECT_EQ(hits.samples(0).value(), 4);
  EXPECT_EQ(hits.samples(0).timestamp(), kTimestampMs);
}

TEST(RemoteWriteEncodeTest, HistogramBecomesCumulativeBucketsSumAndCount) {
  aggregate::StageOptions options;
  options.default_bounds = {0.1, 1};
  aggregate::Stage stage(options);
  BatchBuilder b;
  const auto* t = b.series("db", model::Kind::kTiming, {}, "s");
  b.point(t, 50).point(t, 500).point(t, 5000);
  (void)stage.merge(b.batch());

  const auto requests = decode(encode(stage));

  ASSERT_EQ(requests.size(), 1U);
  std::vector<std::pair<std::string, double>> got;
  for (const auto& ts : requests[0].timeseries()) {
    std::string key = ts.labels(0).value();
    for (const auto& l : ts.labels()) {
      if (l.name() == "le") key += "{le=" + l.value() + "}";
    }
    got.emplace_back(key, ts.samples(0).value());
  }
  EXPECT_EQ(got, (std::vector<std::pair<std::string, double>>{{"db_seconds_bucket{le=0.1}", 1},
                                                              {"db_seconds_bucket{le=1}", 2},
                                                              {"db_seconds_bucket{le=+Inf}", 3},
                                                              {"db_seconds_sum", 5.55},
                                                              {"db_seconds_count", 3}}));
}

TEST(RemoteWriteEncodeTest, RequestsAreSplitAtTheSampleAndByteCaps) {
  constexpr std::size_t kSeries = 25;
  constexpr std::size_t kMaxSamples = 10;
  aggregate::Stage stage({});
  BatchBuilder b;
  for (std::size_t i = 0; i < kSeries; ++i) {
    b.point(b.series("c" + std::to_string(i), model::Kind::kCounter), 1);
  }
  (void)stage.merge(b.batch());

  const auto by_samples = encode(stage, kMaxSamples);
  const auto by_bytes = encode(stage, 1000, 200);

  ASSERT_EQ(by_samples.size(), 3U);
  EXPECT_EQ(by_samples[0].samples, kMaxSamples);
  EXPECT_EQ(by_samples[2].samples, kSeries - 2 * kMaxSamples);
  EXPECT_GT(by_bytes.size(), 3U);
  std::uint64_t total = 0;
  for (const auto& r : by_bytes) total += r.samples;
  EXPECT_EQ(total, kSeries) << "splitting loses no sample";
}

TEST(RemoteWriteEncodeTest, EmptyStageMakesNoRequest) {
  aggregate::Stage stage({});
  EXPECT_TRUE(encode(stage).empty());
}

TEST(RemoteWriteExporterTest, RequestsCarryTheProtocolHeadersTheTokenAndTheExtraHeaders) {
  const std::string token_file = ::testing::TempDir() + "remote_write_token";
  std::ofstream(token_file) << "t0ken\n";
  RemoteWriteOptions options;
  options.url = "http://127.0.0.1:9/api/v1/write";
  options.bearer_token_file = token_file;
  options.headers = {{"X-Scope-OrgID", "team-a"}};

  auto sut = RemoteWriteExporter::create(options);
  std::remove(token_file.c_str());

  ASSERT_TRUE(sut) << sut.error().message;
  EXPECT_EQ(sut.value()->request_headers(),
            (HttpSender::Headers{{"Content-Encoding", "snappy"},
                                 {"Content-Type", "application/x-protobuf"},
                                 {"X-Prometheus-Remote-Write-Version", "0.1.0"},
                                 {"Authorization", "Bearer t0ken"},
                                 {"X-Scope-OrgID", "team-a"}}));
}

TEST(RemoteWriteExporterTest, BasicAuthIsEncodedAndBadSecretsAreRefused) {
  const std::string password_file = ::testing::TempDir() + "remote_write_password";
  std::ofstream(password_file) << "s3cret\n";
  RemoteWriteOptions options;
  options.url = "http://127.0.0.1:9/api/v1/write";
  options.basic_auth_user = "shmstats";
  options.basic_auth_password_file = password_file;
  RemoteWriteOptions missing = options;
  missing.basic_auth_password_file = "/proc/no-such-file";
  RemoteWriteOptions both = options;
  both.bearer_token_file = password_file;

  auto sut = RemoteWriteExporter::create(options);
  auto missing_file = RemoteWriteExporter::create(missing);
  auto two_kinds = RemoteWriteExporter::create(both);
  std::remove(password_file.c_str());

  ASSERT_TRUE(sut) << sut.error().message;
  // base64("shmstats:s3cret")
  EXPECT_EQ(sut.value()->request_headers().back(),
            (std::pair<std::string, std::string>{"Authorization", "Basic c2htc3RhdHM6czNjcmV0"}));
  ASSERT_FALSE(missing_file);
  EXPECT_NE(missing_file.error().message.find("cannot be read"), std::string::npos);
  ASSERT_FALSE(two_kinds);
  EXPECT_NE(two_kinds.error().message.find("cannot both be set"), std::string::npos);
}

}  // namespace
}  // namespace shmstats::collector
