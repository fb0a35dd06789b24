#include "collector/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
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
  EXPECT_TRUE(sut.value().udp.empty());
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
  EXPECT_EQ(sut.value().udp, "127.0.0.1:1111") << "environment beats default";
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

}  // namespace
}  // namespace shmstats::collector
