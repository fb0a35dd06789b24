#include "collector/exporters/registry.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "collector/config.h"
#include "collector/exporters/udp/udp.h"
#include "proto/datagram.h"
#include "tests/unit/collector/receivers.h"

namespace shmstats::collector {
namespace {

// The outputs load_config makes of `args`, created through the registry as main does.
std::vector<std::unique_ptr<Exporter>> create_outputs(std::vector<std::string> args) {
  args.insert(args.begin(), "shmstats-collector");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::string help;
  auto config = load_config(static_cast<int>(argv.size()), argv.data(), help);
  EXPECT_TRUE(config) << config.error().message;
  std::vector<std::unique_ptr<Exporter>> out;
  if (!config) return out;
  for (const auto& o : config.value().outputs) {
    const ExporterType* type = find_exporter_type(o.type);
    EXPECT_NE(type, nullptr) << o.type;
    if (type == nullptr) continue;
    auto e = type->create(o.values, ExporterContext{o.name, 1, 2, "test-host"});
    EXPECT_TRUE(e) << e.error().message;
    if (e) out.push_back(std::move(e).value());
  }
  return out;
}

// Issue #13: the configuration default 1472 overrode the UDP output's own rule (0: 1452 on IPv6).
TEST(OutputRegistryTest, UdpDatagramLimitFollowsTheDestinationsFamily) {
  testing::UdpReceiver v4;
  const auto outputs =
      create_outputs({"--udp", v4.destination(), "--udp", "[::1]:9", "--udp", "unix:///tmp/x"});

  ASSERT_EQ(outputs.size(), 3U);
  const auto* ipv4 = dynamic_cast<const UdpExporter*>(outputs[0].get());
  const auto* ipv6 = dynamic_cast<const UdpExporter*>(outputs[1].get());
  const auto* unix_socket = dynamic_cast<const UdpExporter*>(outputs[2].get());
  ASSERT_NE(ipv4, nullptr);
  ASSERT_NE(ipv6, nullptr);
  ASSERT_NE(unix_socket, nullptr);
  EXPECT_EQ(ipv4->max_datagram_bytes(), proto::kMaxDatagramBytesIpv4);
  EXPECT_EQ(ipv6->max_datagram_bytes(), proto::kMaxDatagramBytesIpv6);
  EXPECT_EQ(unix_socket->max_datagram_bytes(), proto::kMaxDatagramBytesIpv4);
  EXPECT_EQ(outputs[1]->name(), "udp-2");
}

TEST(OutputRegistryTest, ExplicitDatagramLimitIsKeptOnIpv6) {
  constexpr std::size_t kLimit = 1400;
  const auto outputs =
      create_outputs({"--udp", "[::1]:9", "--udp-max-datagram-bytes", std::to_string(kLimit)});

  ASSERT_EQ(outputs.size(), 1U);
  const auto* udp = dynamic_cast<const UdpExporter*>(outputs[0].get());
  ASSERT_NE(udp, nullptr);
  EXPECT_EQ(udp->max_datagram_bytes(), kLimit);
}

TEST(OutputRegistryTest, EveryDeclarationIsWellFormed) {
  ASSERT_FALSE(exporter_types().empty());
  for (const ExporterType* t : exporter_types()) {
    SCOPED_TRACE(t->type);
    EXPECT_FALSE(t->summary.empty());
    EXPECT_TRUE(static_cast<bool>(t->create));
    EXPECT_EQ(find_exporter_type(t->type), t);
    EXPECT_EQ(t->type.find_first_not_of("abcdefghijklmnopqrstuvwxyz_"), std::string::npos);
    if (!t->short_key.empty()) {
      EXPECT_NE(find_output_option(*t, t->short_key), nullptr);
    }
    for (const auto& o : t->options) {
      SCOPED_TRACE(o.key);
      EXPECT_FALSE(o.help.empty());
      EXPECT_EQ(o.key.find_first_not_of("abcdefghijklmnopqrstuvwxyz_"), std::string::npos);
      if (!o.required) {
        EXPECT_TRUE(check_option(o, o.default_value)) << "the default passes its own check";
      }
      for (const auto& common : common_output_options()) EXPECT_NE(o.key, common.key);
    }
  }
}

}  // namespace
}  // namespace shmstats::collector
