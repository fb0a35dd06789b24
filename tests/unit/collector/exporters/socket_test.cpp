#include "collector/exporters/socket.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

#include "tests/support/support.h"
#include "tests/unit/collector/receivers.h"

namespace shmstats::collector {
namespace {

using std::chrono::milliseconds;
using testing::TempDir;
using testing::UdpReceiver;
using testing::UnixReceiver;
using testing::wait_until;

constexpr milliseconds kWait{10'000};

TEST(ExporterSocketTest, SendManyDeliversEveryDatagramInOrder) {
  constexpr std::size_t kCount = 150;  // more than one sendmmsg call
  UdpReceiver receiver;
  auto sut = DatagramSocket::open(receiver.destination());
  ASSERT_TRUE(sut) << sut.error().message;
  std::vector<std::string> datagrams;
  for (std::size_t i = 0; i < kCount; ++i) datagrams.push_back("d" + std::to_string(i));
  std::vector<int> errors(kCount, -1);

  const SendManyResult r = sut.value().send_many(datagrams, errors);

  EXPECT_EQ(r.sent, kCount);
  EXPECT_EQ(r.failed, 0U);
  EXPECT_EQ(errors, std::vector<int>(kCount, 0));
  const auto got = receiver.receive(kCount, kWait);
  EXPECT_EQ(got, datagrams);
}

TEST(ExporterSocketTest, ClosedUdpPortReportsConnectionRefused) {
  auto sut = DatagramSocket::open("127.0.0.1:" + std::to_string(testing::closed_udp_port()));
  ASSERT_TRUE(sut) << sut.error().message;
  int last = 0;

  // The ICMP port unreachable of one send shows up as the socket's pending error or as the
  // failure of the next send.
  EXPECT_TRUE(wait_until(
      [&] {
        last = sut.value().send_one("ping");
        if (last == 0) last = sut.value().take_pending_error();
        return last == ECONNREFUSED;
      },
      kWait, [&] { return "last errno " + std::to_string(last); }));
}

TEST(ExporterSocketTest, DeliversOverIpv6Loopback) {
  std::unique_ptr<UdpReceiver> receiver;
  try {
    receiver = std::make_unique<UdpReceiver>(0, /*ipv6=*/true);
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no IPv6 loopback on this machine: " << e.what();
  }
  auto sut = DatagramSocket::open("[::1]:" + std::to_string(receiver->port()));
  ASSERT_TRUE(sut) << sut.error().message;

  EXPECT_EQ(sut.value().send_one("six"), 0);

  EXPECT_EQ(sut.value().family(), AF_INET6);
  EXPECT_EQ(receiver->receive(1, kWait), std::vector<std::string>{"six"});
}

TEST(ExporterSocketTest, UnixSendFailsForEveryDatagramWithoutReceiver) {
  TempDir dir;
  auto sut = DatagramSocket::open("unix://" + (dir.path() / "absent.sock").string());
  ASSERT_TRUE(sut) << sut.error().message;
  const std::vector<std::string> datagrams{"a", "b", "c"};
  std::vector<int> errors(datagrams.size(), 0);

  const SendManyResult r = sut.value().send_many(datagrams, errors);

  EXPECT_EQ(r.sent, 0U);
  EXPECT_EQ(r.failed, datagrams.size());
  EXPECT_EQ(r.last_error, ENOENT);
  EXPECT_EQ(errors, std::vector<int>(datagrams.size(), ENOENT));
}

TEST(ExporterSocketTest, UnixSocketReconnectsAfterReceiverRestart) {
  TempDir dir;
  const auto path = dir.path() / "dsd.sock";
  auto receiver = std::make_unique<UnixReceiver>(path);
  auto sut = DatagramSocket::open(receiver->destination());
  ASSERT_TRUE(sut) << sut.error().message;
  ASSERT_EQ(sut.value().send_one("first"), 0);
  ASSERT_EQ(receiver->receive(1, kWait), std::vector<std::string>{"first"});

  receiver.reset();  // closes and unlinks
  const int while_gone = sut.value().send_one("lost");
  receiver = std::make_unique<UnixReceiver>(path);
  const int after_restart = sut.value().send_one("second");

  EXPECT_NE(while_gone, 0);
  EXPECT_EQ(after_restart, 0);
  EXPECT_EQ(receiver->receive(1, kWait), std::vector<std::string>{"second"});
}

}  // namespace
}  // namespace shmstats::collector
