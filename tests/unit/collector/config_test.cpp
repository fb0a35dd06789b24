#include "collector/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace shmstats::collector {
namespace {

// argv for load_config, kept alive by the vector of strings.
struct Args {
  explicit Args(std::vector<std::string> a) : store(std::move(a)) {
    store.insert(store.begin(), "shmstats-collector");
    for (const auto& s : store) ptrs.push_back(s.c_str());
  }
  int argc() const { return static_cast<int>(ptrs.size()); }
  const char* const* argv() const { return ptrs.data(); }
  std::vector<std::string> store;
  std::vector<const char*> ptrs;
};

shm::Result<Config> load(std::vector<std::string> args) {
  Args a(std::move(args));
  std::string help;
  return load_config(a.argc(), a.argv(), help);
}

// A TOML file in a fresh temporary directory, removed with the object.
class TomlFile {
 public:
  explicit TomlFile(const std::string& text) {
    char tmpl[] = "/tmp/shmstats-config-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    std::ofstream(dir_ + "/c.toml") << text;
  }
  ~TomlFile() { std::filesystem::remove_all(dir_); }
  std::string path() const { return dir_ + "/c.toml"; }

 private:
  std::string dir_;
};

// Sets an environment variable for the scope of one test.
class EnvVar {
 public:
  EnvVar(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~EnvVar() { ::unsetenv(name_); }

 private:
  const char* name_;
};

TEST(CollectorConfigTest, DefaultsAreDocumentedValues) {
  const auto sut = load({});
  ASSERT_TRUE(sut) << sut.error().message;
  EXPECT_EQ(sut.value().http, "127.0.0.1:9102");
  EXPECT_EQ(sut.value().flush_interval, std::chrono::milliseconds(5));
  EXPECT_EQ(sut.value().shm_prefix, "shmstats");
  EXPECT_TRUE(sut.value().outputs.empty());
  EXPECT_NE(sut.value().sender_id, 0U);
}

TEST(CollectorConfigTest, FlagsBeatTomlWhichBeatsEnvironment) {
  const EnvVar env_batch("SHMSTATS_COLLECTOR_BATCH_SIZE", "11");
  const EnvVar env_prefix("SHMSTATS_COLLECTOR_SHM_PREFIX", "fromenv");
  const EnvVar env_udp("SHMSTATS_COLLECTOR_UDP", "127.0.0.1:1111");
  const TomlFile toml("batch_size = 22\nshm_prefix = \"fromtoml\"\nflush_interval = \"250ms\"\n");
  const auto sut = load({"--config", toml.path(), "--batch-size", "33"});
  ASSERT_TRUE(sut) << sut.error().message;
  EXPECT_EQ(sut.value().batch_size, 33U) << "flag wins";
  EXPECT_EQ(sut.value().shm_prefix, "fromtoml") << "TOML beats environment";
  ASSERT_EQ(sut.value().outputs.size(), 1U);
  EXPECT_EQ(sut.value().outputs[0].values.text("destination"), "127.0.0.1:1111")
      << "environment beats default";
  EXPECT_EQ(sut.value().flush_interval, std::chrono::milliseconds(250));
}

TEST(CollectorConfigTest, BadFlagValueNamesKeySourceAndValue) {
  const auto sut = load({"--flush-interval", "soon"});
  ASSERT_FALSE(sut);
  EXPECT_NE(sut.error().message.find("flush_interval"), std::string::npos) << sut.error().message;
  EXPECT_NE(sut.error().message.find("--flush-interval"), std::string::npos);
  EXPECT_NE(sut.error().message.find("\"soon\""), std::string::npos);
}

TEST(CollectorConfigTest, BadEnvironmentValueNamesTheVariable) {
  const EnvVar env("SHMSTATS_COLLECTOR_BATCH_SIZE", "-4");
  const auto sut = load({});
  ASSERT_FALSE(sut);
  EXPECT_NE(sut.error().message.find("SHMSTATS_COLLECTOR_BATCH_SIZE"), std::string::npos)
      << sut.error().message;
}

TEST(CollectorConfigTest, UnknownTomlKeyIsRefused) {
  const TomlFile toml("flush_intervall = \"1s\"\n");
  const auto sut = load({"--config", toml.path()});
  ASSERT_FALSE(sut);
  EXPECT_NE(sut.error().message.find("unknown key \"flush_intervall\""), std::string::npos)
      << sut.error().message;
}

TEST(CollectorConfigTest, MalformedTomlReportsTheLine) {
  const TomlFile toml("batch_size = 1\nudp = \"unterminated\n");
  const auto sut = load({"--config", toml.path()});
  ASSERT_FALSE(sut);
  EXPECT_NE(sut.error().message.find("line 2"), std::string::npos) << sut.error().message;
}

TEST(CollectorConfigTest, RejectsOutOfRangeValues) {
  EXPECT_FALSE(load({"--max-datagram-bytes", "2000"}));
  EXPECT_FALSE(load({"--max-datagram-bytes", "100"}));
  EXPECT_FALSE(load({"--udp", "nohostport"}));
  EXPECT_FALSE(load({"--udp", "127.0.0.1:70000"}));
  EXPECT_FALSE(load({"--shm-prefix", "../etc"}));
  EXPECT_FALSE(load({"--log-level", "loud"}));
  EXPECT_FALSE(load({"--no-such-flag"}));
  EXPECT_TRUE(load({"--udp", "[::1]:9125", "--dogstatsd", "unix:///run/dsd.sock"}));
}

TEST(CollectorConfigTest, ParsesDurationsAndUidLists) {
  EXPECT_EQ(parse_duration("250ms").value(), std::chrono::milliseconds(250));
  EXPECT_EQ(parse_duration("2s").value(), std::chrono::milliseconds(2000));
  EXPECT_EQ(parse_duration("1m").value(), std::chrono::milliseconds(60000));
  EXPECT_EQ(parse_duration("40").value(), std::chrono::milliseconds(40));
  EXPECT_FALSE(parse_duration("2h"));
  EXPECT_FALSE(parse_duration(""));
  const auto sut = load({"--allowed-uids", "1000,1001"});
  ASSERT_TRUE(sut);
  EXPECT_EQ(sut.value().allowed_uids, (std::vector<uid_t>{1000, 1001}));
}

TEST(CollectorConfigTest, ApplyTomlTakesTextLikeTheConfigFile) {
  Config sut;
  const auto applied = apply_toml("batch_size = 7\nallowed_uids = [5, 6]\n", "inline", sut);
  ASSERT_TRUE(applied) << applied.error().message;
  EXPECT_EQ(sut.batch_size, 7U);
  EXPECT_EQ(sut.allowed_uids, (std::vector<uid_t>{5, 6}));
  const auto unknown = apply_toml("no_such_key = 1\n", "inline", sut);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown key \"no_such_key\" in inline"),
            std::string::npos)
      << unknown.error().message;
  const auto malformed = apply_toml("batch_size = 1\nudp = \"open\n", "inline", sut);
  ASSERT_FALSE(malformed);
  EXPECT_NE(malformed.error().message.find("line 2"), std::string::npos)
      << malformed.error().message;
}

TEST(CollectorConfigTest, HelpIsReturnedNotAnError) {
  Args a({"--help"});
  std::string help;
  const auto sut = load_config(a.argc(), a.argv(), help);
  EXPECT_FALSE(sut);
  EXPECT_NE(help.find("Precedence"), std::string::npos);
  EXPECT_NE(help.find("--dogstatsd"), std::string::npos);
}

// The outputs of a configuration, by instance name.
std::map<std::string, const OutputConfig*> by_name(const Config& config) {
  std::map<std::string, const OutputConfig*> out;
  for (const auto& o : config.outputs) out[o.name] = &o;
  return out;
}

TEST(CollectorConfigTest, LegacyOutputFlagsKeepTheirMeaning) {
  const auto sut = load({"--udp", "127.0.0.1:9125", "--max-datagram-bytes", "1400", "--dogstatsd",
                         "127.0.0.1:8125", "--dogstatsd-max-bytes", "8192",
                         "--dogstatsd-multi-value", "true", "--dogstatsd-service-tag", "false"});
  ASSERT_TRUE(sut) << sut.error().message;
  const auto outputs = by_name(sut.value());
  ASSERT_EQ(outputs.size(), 2U);
  ASSERT_EQ(outputs.count("udp"), 1U);
  ASSERT_EQ(outputs.count("dogstatsd"), 1U);
  EXPECT_EQ(outputs.at("udp")->values.uint("max_datagram_bytes"), 1400U);
  EXPECT_EQ(outputs.at("dogstatsd")->values.uint("max_bytes"), 8192U);
  EXPECT_TRUE(outputs.at("dogstatsd")->values.boolean("multi_value"));
  EXPECT_FALSE(outputs.at("dogstatsd")->values.boolean("service_tag"));
}

TEST(CollectorConfigTest, RepeatedShortFlagMakesOneOutputEach) {
  const auto sut = load({"--udp", "127.0.0.1:9125", "--udp", "127.0.0.1:9126"});
  ASSERT_TRUE(sut) << sut.error().message;
  const auto outputs = by_name(sut.value());
  ASSERT_EQ(outputs.size(), 2U);
  EXPECT_EQ(outputs.at("udp")->values.text("destination"), "127.0.0.1:9125");
  EXPECT_EQ(outputs.at("udp-2")->values.text("destination"), "127.0.0.1:9126");
}

TEST(CollectorConfigTest, ExporterTablesAddOutputsWithTheirOwnKeys) {
  const TomlFile toml(R"(
udp_max_datagram_bytes = 1000
breaker_failures = 7
[[exporter]]
type = "udp"
name = "primary"
destination = "127.0.0.1:9125"
[[exporter]]
type = "udp"
destination = "127.0.0.1:9126"
max_datagram_bytes = 1200
breaker_failures = 9
[[exporter]]
type = "dogstatsd"
destination = "unix:///run/dsd.sock"
max_bytes = 8192
)");
  const auto sut = load({"--config", toml.path()});
  ASSERT_TRUE(sut) << sut.error().message;
  const auto outputs = by_name(sut.value());
  ASSERT_EQ(outputs.size(), 3U);
  EXPECT_EQ(outputs.at("primary")->values.uint("max_datagram_bytes"), 1000U) << "type-wide";
  EXPECT_EQ(outputs.at("primary")->values.uint("breaker_failures"), 7U) << "global default";
  EXPECT_EQ(outputs.at("udp")->values.uint("max_datagram_bytes"), 1200U) << "table wins";
  EXPECT_EQ(outputs.at("udp")->values.uint("breaker_failures"), 9U) << "table wins";
  EXPECT_EQ(outputs.at("dogstatsd")->values.uint("max_bytes"), 8192U);
  EXPECT_EQ(outputs.at("dogstatsd")->values.uint("queue"), 64U) << "global exporter_queue";
}

TEST(CollectorConfigTest, GlobalBreakerAndQueueKeysAreEveryOutputsDefaults) {
  constexpr std::uint64_t kFailures = 3;
  constexpr std::uint64_t kOpenMs = 7000;
  constexpr std::uint64_t kQueue = 9;
  const auto sut =
      load({"--udp", "127.0.0.1:9125", "--dogstatsd", "127.0.0.1:8125", "--breaker-failures", "3",
            "--breaker-open", "7s", "--exporter-queue", "9"});
  ASSERT_TRUE(sut) << sut.error().message;
  ASSERT_EQ(sut.value().outputs.size(), 2U);
  for (const auto& output : sut.value().outputs) {
    EXPECT_EQ(output.values.uint("breaker_failures"), kFailures) << output.name;
    EXPECT_EQ(static_cast<std::uint64_t>(output.values.duration("breaker_open").count()), kOpenMs)
        << output.name;
    EXPECT_EQ(output.values.uint("queue"), kQueue) << output.name;
  }
}

TEST(CollectorConfigTest, TableKeyWinsOverTypeWideFlag) {
  const TomlFile toml(R"(
[[exporter]]
type = "udp"
destination = "127.0.0.1:9125"
max_datagram_bytes = 1200
[[exporter]]
type = "udp"
destination = "127.0.0.1:9126"
)");
  const auto sut = load({"--config", toml.path(), "--udp-max-datagram-bytes", "900"});
  ASSERT_TRUE(sut) << sut.error().message;
  const auto outputs = by_name(sut.value());
  EXPECT_EQ(outputs.at("udp")->values.uint("max_datagram_bytes"), 1200U);
  EXPECT_EQ(outputs.at("udp-2")->values.uint("max_datagram_bytes"), 900U);
}

TEST(CollectorConfigTest, OutputKeysComeFromTheEnvironmentToo) {
  const EnvVar udp("SHMSTATS_COLLECTOR_UDP", "127.0.0.1:1111,127.0.0.1:2222");
  const EnvVar bytes("SHMSTATS_COLLECTOR_UDP_MAX_DATAGRAM_BYTES", "1300");
  const EnvVar queue("SHMSTATS_COLLECTOR_UDP_QUEUE", "5");
  const auto sut = load({});
  ASSERT_TRUE(sut) << sut.error().message;
  const auto outputs = by_name(sut.value());
  ASSERT_EQ(outputs.size(), 2U);
  EXPECT_EQ(outputs.at("udp-2")->values.text("destination"), "127.0.0.1:2222");
  EXPECT_EQ(outputs.at("udp-2")->values.uint("max_datagram_bytes"), 1300U);
  EXPECT_EQ(outputs.at("udp")->values.uint("queue"), 5U);
}

TEST(CollectorConfigTest, FlagListReplacesTheLowerSourcesList) {
  const EnvVar udp("SHMSTATS_COLLECTOR_UDP", "127.0.0.1:1111");
  const auto replaced = load({"--udp", "127.0.0.1:3333"});
  const auto turned_off = load({"--udp", ""});
  ASSERT_TRUE(replaced) << replaced.error().message;
  ASSERT_EQ(replaced.value().outputs.size(), 1U);
  EXPECT_EQ(replaced.value().outputs[0].values.text("destination"), "127.0.0.1:3333");
  ASSERT_TRUE(turned_off) << turned_off.error().message;
  EXPECT_TRUE(turned_off.value().outputs.empty());
}

TEST(CollectorConfigTest, BadOutputTablesNameTheTableAndTheKey) {
  const auto expect_error = [](const char* text, const char* part) {
    Config sut;
    const auto r = apply_toml(text, "inline", sut);
    ASSERT_FALSE(r) << text;
    EXPECT_NE(r.error().message.find(part), std::string::npos) << r.error().message;
  };
  expect_error("[[exporter]]\ndestination = \"127.0.0.1:1\"\n", "needs type");
  expect_error("[[exporter]]\ntype = \"carrier-pigeon\"\n",
               "unknown output type \"carrier-pigeon\"");
  expect_error("[[exporter]]\ntype = \"udp\"\ndestination = \"127.0.0.1:1\"\ncolour = 1\n",
               "[[exporter]] #1 in inline: unknown key \"colour\"");
  expect_error("[[exporter]]\ntype = \"udp\"\n", "destination is required");
  expect_error("[[exporter]]\ntype = \"udp\"\ndestination = \"127.0.0.1:0\"\n", "destination");
  expect_error(
      "[[exporter]]\ntype = \"udp\"\ndestination = \"127.0.0.1:1\"\nmax_datagram_bytes = 1473\n",
      "must be 512 to 1472, or 0 for");
  expect_error(
      "[[exporter]]\ntype = \"udp\"\nname = \"a\"\ndestination = \"127.0.0.1:1\"\n"
      "[[exporter]]\ntype = \"dogstatsd\"\nname = \"a\"\ndestination = \"127.0.0.1:2\"\n",
      "output name \"a\" is used twice");
  expect_error("udp_colour = 1\n", "unknown key \"udp_colour\"");
  expect_error("exporter = 1\n", "array of tables");
}

TEST(CollectorConfigTest, GeneratedNamesStepAroundGivenOnes) {
  Config sut;
  const auto r = apply_toml(
      "udp = \"127.0.0.1:1\"\n[[exporter]]\ntype = \"udp\"\nname = \"udp\"\n"
      "destination = \"127.0.0.1:2\"\n",
      "inline", sut);
  ASSERT_TRUE(r) << r.error().message;
  const auto outputs = by_name(sut);
  ASSERT_EQ(outputs.size(), 2U);
  EXPECT_EQ(outputs.at("udp")->values.text("destination"), "127.0.0.1:2");
  EXPECT_EQ(outputs.at("udp-2")->values.text("destination"), "127.0.0.1:1");
}

TEST(CollectorConfigTest, HelpListsEveryOutputsKeys) {
  Args a({"--help"});
  std::string help;
  (void)load_config(a.argc(), a.argv(), help);
  for (const char* flag : {"--udp", "--udp-max-datagram-bytes", "--udp-queue",
                           "--dogstatsd-max-bytes", "--tally", "--tally-flush-interval"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace shmstats::collector
