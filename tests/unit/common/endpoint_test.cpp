#include "common/endpoint.h"

#include <gtest/gtest.h>

#include <string>

namespace shmstats::common {
namespace {

void expect_invalid(const shm::Result<Endpoint>& sut, std::string_view text,
                    std::string_view message_part) {
  ASSERT_FALSE(sut) << text;
  EXPECT_EQ(sut.error().code, shm::Errc::kInvalidOptions);
  EXPECT_NE(sut.error().message.find(message_part), std::string::npos) << sut.error().message;
}

void expect_bad_destination(std::string_view text, std::string_view message_part) {
  expect_invalid(parse_destination(text), text, message_part);
}

void expect_bad_listen_address(std::string_view text, std::string_view message_part) {
  expect_invalid(parse_listen_address(text), text, message_part);
}

TEST(EndpointTest, DestinationParsesHostAndPort) {
  auto sut = parse_destination("localhost:8125");

  ASSERT_TRUE(sut) << sut.error().message;
  EXPECT_EQ(sut.value().type, Endpoint::Type::kInet);
  EXPECT_EQ(sut.value().host, "localhost");
  EXPECT_EQ(sut.value().port, 8125);
  EXPECT_FALSE(sut.value().ipv6_literal());
  EXPECT_EQ(sut.value().text(), "localhost:8125");
}

TEST(EndpointTest, DestinationTakesBothEndsOfThePortRange) {
  constexpr std::uint16_t kLowest = 1;
  constexpr std::uint16_t kHighest = 65535;

  const auto lowest = parse_destination("localhost:1");
  const auto highest = parse_destination("localhost:65535");

  ASSERT_TRUE(lowest) << lowest.error().message;
  ASSERT_TRUE(highest) << highest.error().message;
  EXPECT_EQ(lowest.value().port, kLowest);
  EXPECT_EQ(highest.value().port, kHighest);
}

TEST(EndpointTest, DestinationParsesBracketedIpv6) {
  auto sut = parse_destination("[::1]:9000");

  ASSERT_TRUE(sut) << sut.error().message;
  EXPECT_EQ(sut.value().host, "::1");
  EXPECT_EQ(sut.value().port, 9000);
  EXPECT_TRUE(sut.value().ipv6_literal());
  EXPECT_EQ(sut.value().text(), "[::1]:9000");
}

TEST(EndpointTest, DestinationParsesUnixPath) {
  auto sut = parse_destination("unix:///var/run/datadog/dsd.socket");

  ASSERT_TRUE(sut) << sut.error().message;
  EXPECT_EQ(sut.value().type, Endpoint::Type::kUnix);
  EXPECT_EQ(sut.value().path, "/var/run/datadog/dsd.socket");
  EXPECT_EQ(sut.value().text(), "unix:///var/run/datadog/dsd.socket");
}

TEST(EndpointTest, DestinationRejectsMalformedText) {
  constexpr std::size_t kLongPath = 200;
  expect_bad_destination("", "empty");
  expect_bad_destination("localhost", "has no ':PORT'");
  expect_bad_destination("localhost:", "port \"\"");
  expect_bad_destination("localhost:0", "port \"0\" is not a number from 1");
  expect_bad_destination("localhost:65536", "port \"65536\"");
  expect_bad_destination("localhost:81x", "port \"81x\"");
  expect_bad_destination("localhost:+81", "port \"+81\"");
  expect_bad_destination(":8125", "host is empty");
  expect_bad_destination("8125", "has no host");
  expect_bad_destination("::1:8125", "needs brackets");
  expect_bad_destination("[::1:8125", "missing ']'");
  expect_bad_destination("[::1]8125", "expected ':PORT'");
  expect_bad_destination("[127.0.0.1]:8125", "IPv6 addresses only");
  expect_bad_destination("unix://relative/path", "must be absolute");
  expect_bad_destination("unix:///" + std::string(kLongPath, 'p'), "the limit is 107");
  expect_bad_destination(std::string("a\0b:1", 5), "NUL byte");
}

TEST(EndpointTest, ListenAddressTakesPortZeroAndTheDefaultHost) {
  auto any_port = parse_listen_address("127.0.0.1:0");
  auto bare_port = parse_listen_address("9102");
  auto colon_port = parse_listen_address(":9102");
  auto v6 = parse_listen_address("[::1]:0");

  ASSERT_TRUE(any_port) << any_port.error().message;
  EXPECT_EQ(any_port.value().port, 0);
  ASSERT_TRUE(bare_port) << bare_port.error().message;
  EXPECT_EQ(bare_port.value().host, "127.0.0.1");
  EXPECT_EQ(bare_port.value().port, 9102);
  ASSERT_TRUE(colon_port) << colon_port.error().message;
  EXPECT_EQ(colon_port.value().host, "127.0.0.1");
  EXPECT_EQ(colon_port.value().port, 9102);
  ASSERT_TRUE(v6) << v6.error().message;
  EXPECT_EQ(v6.value().host, "::1");
}

TEST(EndpointTest, ListenAddressRejectsMalformedText) {
  for (const char* text : {"", "host", "host:", "host:65536", "host:-1", "host:8x", "::1:80",
                           "[::1]80", "[::1]", ":"}) {
    const auto parsed = parse_listen_address(text);
    ASSERT_FALSE(parsed) << text;
    EXPECT_EQ(parsed.error().code, shm::Errc::kInvalidOptions) << text;
  }
}

TEST(EndpointTest, ListenAddressRejectsUnixAndBadPorts) {
  expect_bad_listen_address("unix:///tmp/x", "not allowed here");
  expect_bad_listen_address("127.0.0.1:65536", "port \"65536\" is not a number from 0");
  expect_bad_listen_address("::1:80", "needs brackets");
  expect_bad_listen_address("", "empty");
}

TEST(EndpointTest, ErrorsQuoteOnlyPrintableBytesAndCapTheirLength) {
  constexpr std::size_t kLong = 500;
  auto sut = parse_destination(std::string(kLong, 'h') + "\x01:x");

  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().message.find('\x01'), std::string::npos);
  EXPECT_NE(sut.error().message.find("..."), std::string::npos);
  EXPECT_LT(sut.error().message.size(), 200U);
}

}  // namespace
}  // namespace shmstats::common
