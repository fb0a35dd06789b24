// The GET client against the real HTTP server on 127.0.0.1 (port 0, read back), against a port
// nothing listens on, and against a listener that accepts connections but never answers.
#include "common/http_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/http_server.h"

namespace shmstats::common {
namespace {

using namespace std::chrono_literals;

constexpr auto kTimeout = 5s;

// A TCP socket on 127.0.0.1, bound to a port the kernel picked; listening or not.
class LoopbackSocket {
 public:
  explicit LoopbackSocket(bool listening) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_GE(fd_, 0);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    // The kernel completes the handshakes into the backlog; nothing ever accepts or reads.
    if (listening) {
      EXPECT_EQ(::listen(fd_, SOMAXCONN), 0);
    }
  }
  LoopbackSocket(const LoopbackSocket&) = delete;
  LoopbackSocket& operator=(const LoopbackSocket&) = delete;
  ~LoopbackSocket() { close(); }
  std::uint16_t port() const { return port_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  std::uint16_t port_ = 0;
};

std::unique_ptr<HttpServer> start_server() {
  auto started = HttpServer::start(
      "127.0.0.1", 0,
      {{"/metrics",
        [] {
          return HttpResponse{200, "shmstats_up 1\n"};
        }},
       {"/health", [] {
          return HttpResponse{503, "{\"status\":\"unhealthy\"}\n", "application/json"};
        }}});
  EXPECT_TRUE(started) << started.error().message;
  return started ? std::move(started).value() : nullptr;
}

TEST(HttpClientTest, GetReturnsEachRouteStatusAndBody) {
  auto server = start_server();
  ASSERT_NE(server, nullptr);

  const auto metrics = http_get("127.0.0.1", server->port(), "/metrics", kTimeout);
  const auto health = http_get("127.0.0.1", server->port(), "/health?verbose=1", kTimeout);
  const auto missing = http_get("127.0.0.1", server->port(), "/admin", kTimeout);

  ASSERT_TRUE(metrics) << metrics.error().message;
  EXPECT_EQ(metrics.value().status, 200);
  EXPECT_EQ(metrics.value().body, "shmstats_up 1\n");
  ASSERT_TRUE(health) << health.error().message;
  EXPECT_EQ(health.value().status, 503);
  EXPECT_EQ(health.value().body, "{\"status\":\"unhealthy\"}\n");
  ASSERT_TRUE(missing) << missing.error().message;
  EXPECT_EQ(missing.value().status, 404);
}

TEST(HttpClientTest, GetTimesOutAgainstAListenerThatNeverAnswers) {
  constexpr auto kShortTimeout = 200ms;
  LoopbackSocket silent(/*listening=*/true);
  const auto before = std::chrono::steady_clock::now();

  const auto sut = http_get("127.0.0.1", silent.port(), "/metrics", kShortTimeout);
  const auto took = std::chrono::steady_clock::now() - before;

  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, shm::Errc::kSystem);
  EXPECT_NE(sut.error().message.find("no whole response within 200 ms"), std::string::npos)
      << sut.error().message;
  EXPECT_NE(sut.error().message.find("/metrics"), std::string::npos) << sut.error().message;
  EXPECT_GE(took, kShortTimeout);
}

TEST(HttpClientTest, GetFailsWhenNothingListens) {
  LoopbackSocket closed(/*listening=*/false);
  const std::uint16_t port = closed.port();
  closed.close();

  const auto sut = http_get("127.0.0.1", port, "/metrics", kTimeout);

  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, shm::Errc::kSystem);
  EXPECT_NE(sut.error().message.find("connect failed"), std::string::npos) << sut.error().message;
}

TEST(HttpClientTest, GetRejectsAPathWithoutALeadingSlash) {
  const auto sut = http_get("127.0.0.1", 1, "metrics", kTimeout);

  ASSERT_FALSE(sut);
  EXPECT_EQ(sut.error().code, shm::Errc::kInvalidOptions);
}

}  // namespace
}  // namespace shmstats::common
