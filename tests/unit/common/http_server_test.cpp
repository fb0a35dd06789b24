// The HTTP server of the collector and the receiver over real TCP on 127.0.0.1 (port 0, read
// back): what it serves, what it refuses, its route table, and that a silent client can neither
// block another one nor stop() itself.
#include "common/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace shmstats::common {
namespace {

using namespace std::chrono_literals;

constexpr auto kReplyTimeout = 5s;

// A plain TCP connection to the server, so the test controls every byte sent.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ =
        fd_ >= 0 && ::connect(fd_, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) == 0;
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  void send(const std::string& bytes) {
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  // Reads until the peer closes or `timeout` passes; returns what arrived.
  std::string read_until_closed(std::chrono::milliseconds timeout) {
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd pfd{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
  }
  // Reads one whole response (its header, and a body as long as its Content-Length says).
  std::string read_response() {
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + kReplyTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      const auto end = got.find("\r\n\r\n");
      if (end != std::string::npos) {
        const auto at = got.find("Content-Length: ");
        if (at != std::string::npos) {
          const std::size_t length = std::stoul(got.substr(at + 16));
          if (got.size() >= end + 4 + length) return got;
        }
      }
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 100) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
  }
  bool closed() const { return closed_; }

 private:
  int fd_;
  bool connected_ = false;
  bool closed_ = false;
};

// The collector's table: /metrics and /health.
std::unique_ptr<HttpServer> start_server(std::atomic<int>* metrics_calls = nullptr) {
  auto started = HttpServer::start(
      "127.0.0.1", 0,
      {{"/metrics",
        [metrics_calls] {
          if (metrics_calls != nullptr) metrics_calls->fetch_add(1);
          return HttpResponse{200, "shmstats_up 1\n"};
        }},
       {"/health", [] {
          return HttpResponse{503, "{\"status\":\"unhealthy\"}\n", "application/json"};
        }}});
  EXPECT_TRUE(started) << started.error().message;
  return started ? std::move(started).value() : nullptr;
}

std::string get(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
}

TEST(HttpServerTest, ServesMetricsAndHealthWithTheirStatusAndType) {
  auto sut = start_server();
  ASSERT_NE(sut, nullptr);
  ASSERT_NE(sut->port(), 0);

  RawClient metrics(sut->port());
  ASSERT_TRUE(metrics.connected());
  metrics.send(get("/metrics"));
  const std::string metrics_reply = metrics.read_until_closed(kReplyTimeout);
  RawClient health(sut->port());
  health.send(get("/health?verbose=1"));
  const std::string health_reply = health.read_until_closed(kReplyTimeout);

  EXPECT_EQ(metrics_reply.rfind("HTTP/1.1 200", 0), 0U) << metrics_reply;
  EXPECT_NE(metrics_reply.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(metrics_reply.find("\r\n\r\nshmstats_up 1\n"), std::string::npos);
  EXPECT_EQ(health_reply.rfind("HTTP/1.1 503", 0), 0U) << health_reply;
  EXPECT_NE(health_reply.find("Content-Type: application/json"), std::string::npos);
}

TEST(HttpServerTest, UnknownPathIsNotFoundAndOtherMethodsAreRefused) {
  auto sut = start_server();
  ASSERT_NE(sut, nullptr);

  RawClient unknown(sut->port());
  unknown.send(get("/admin"));
  const std::string not_found = unknown.read_until_closed(kReplyTimeout);
  RawClient deleter(sut->port());
  deleter.send("DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string refused = deleter.read_until_closed(kReplyTimeout);

  EXPECT_EQ(not_found.rfind("HTTP/1.1 404", 0), 0U) << not_found;
  EXPECT_EQ(refused.rfind("HTTP/1.1 405", 0), 0U) << refused;
  EXPECT_TRUE(deleter.closed());
}

TEST(HttpServerTest, RequestWithABodyIsRefusedAndTheConnectionClosed) {
  std::atomic<int> metrics_calls{0};
  auto sut = start_server(&metrics_calls);
  ASSERT_NE(sut, nullptr);
  RawClient client(sut->port());

  client.send("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  const std::string reply = client.read_until_closed(kReplyTimeout);

  EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0U) << reply;
  EXPECT_TRUE(client.closed());
  EXPECT_EQ(metrics_calls.load(), 0);
}

TEST(HttpServerTest, OversizedHeaderIsRefusedNotBuffered) {
  auto sut = start_server();
  ASSERT_NE(sut, nullptr);
  RawClient client(sut->port());
  const std::string huge(HttpServer::kMaxHeaderBytes * 2, 'a');

  client.send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Junk: " + huge + "\r\n\r\n");
  const std::string reply = client.read_until_closed(kReplyTimeout);

  EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0U) << reply.substr(0, 200);
  EXPECT_TRUE(client.closed());
}

TEST(HttpServerTest, GarbageRequestGetsBadRequest) {
  auto sut = start_server();
  ASSERT_NE(sut, nullptr);
  RawClient client(sut->port());

  // A TLS ClientHello prefix with embedded NULs, then junk: the length comes from the literal.
  static constexpr char kGarbage[] =
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n";
  client.send(std::string(kGarbage, sizeof(kGarbage) - 1));
  const std::string reply = client.read_until_closed(kReplyTimeout);

  EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0U) << reply;
}

TEST(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  constexpr int kRequests = 3;
  std::atomic<int> metrics_calls{0};
  auto sut = start_server(&metrics_calls);
  ASSERT_NE(sut, nullptr);
  RawClient client(sut->port());

  for (int i = 0; i < kRequests; ++i) {
    client.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::string reply = client.read_response();
    ASSERT_EQ(reply.rfind("HTTP/1.1 200", 0), 0U) << "request " << i << ": " << reply;
  }

  EXPECT_EQ(metrics_calls.load(), kRequests);
  EXPECT_FALSE(client.closed());
}

TEST(HttpServerTest, SilentClientBlocksNeitherOthersNorStop) {
  auto sut = start_server();
  ASSERT_NE(sut, nullptr);
  // Connected, half a request line, then nothing: a slow-loris client.
  RawClient silent(sut->port());
  ASSERT_TRUE(silent.connected());
  silent.send("GET /met");

  RawClient other(sut->port());
  other.send(get("/metrics"));
  const std::string reply = other.read_until_closed(kReplyTimeout);
  const auto before_stop = std::chrono::steady_clock::now();
  sut->stop();
  const auto stop_took = std::chrono::steady_clock::now() - before_stop;

  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0U) << reply;
  // stop() closes the silent connection instead of waiting out its request timeout.
  EXPECT_LT(stop_took, HttpServer::kRequestTimeout);
  (void)silent.read_until_closed(1s);
  EXPECT_TRUE(silent.closed());
}

TEST(HttpServerTest, HandlerExceptionBecomesInternalError) {
  auto started = HttpServer::start(
      "127.0.0.1", 0,
      {{"/metrics", []() -> HttpResponse { throw std::runtime_error("scrape exploded"); }},
       {"/health", [] { return HttpResponse{}; }}});
  ASSERT_TRUE(started) << started.error().message;
  auto sut = std::move(started).value();
  RawClient client(sut->port());

  client.send(get("/metrics"));
  const std::string reply = client.read_until_closed(kReplyTimeout);

  EXPECT_EQ(reply.rfind("HTTP/1.1 500", 0), 0U) << reply;
  EXPECT_NE(reply.find("scrape exploded"), std::string::npos);
}

TEST(HttpServerTest, StartRejectsANonAddressAndAPortInUse) {
  auto first = start_server();
  ASSERT_NE(first, nullptr);

  auto bad_host = HttpServer::start("not-an-ip", 0, {{"/health", [] { return HttpResponse{}; }}});
  auto taken =
      HttpServer::start("127.0.0.1", first->port(), {{"/health", [] { return HttpResponse{}; }}});

  ASSERT_FALSE(bad_host);
  EXPECT_EQ(bad_host.error().code, shm::Errc::kInvalidOptions);
  EXPECT_NE(bad_host.error().message.find("not-an-ip"), std::string::npos);
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, shm::Errc::kSystem);
}

TEST(HttpServerTest, RouteTableServesEachPathWithItsOwnHandler) {
  std::atomic<int> first_calls{0};
  std::atomic<int> second_calls{0};
  auto started =
      HttpServer::start("127.0.0.1", 0,
                        {{"/first",
                          [&first_calls] {
                            first_calls.fetch_add(1);
                            return HttpResponse{200, "one\n", "text/plain"};
                          }},
                         {"/second/path", [&second_calls] {
                            second_calls.fetch_add(1);
                            return HttpResponse{202, "{\"two\":2}\n", "application/json"};
                          }}});
  ASSERT_TRUE(started) << started.error().message;
  auto sut = std::move(started).value();

  RawClient first(sut->port());
  first.send(get("/first?x=1"));
  const std::string first_reply = first.read_until_closed(kReplyTimeout);
  RawClient second(sut->port());
  second.send(get("/second/path"));
  const std::string second_reply = second.read_until_closed(kReplyTimeout);
  RawClient other(sut->port());
  other.send(get("/metrics"));
  const std::string other_reply = other.read_until_closed(kReplyTimeout);

  EXPECT_EQ(first_reply.rfind("HTTP/1.1 200", 0), 0U) << first_reply;
  EXPECT_NE(first_reply.find("Content-Type: text/plain\r\n"), std::string::npos) << first_reply;
  EXPECT_NE(first_reply.find("\r\n\r\none\n"), std::string::npos) << first_reply;
  EXPECT_EQ(second_reply.rfind("HTTP/1.1 202", 0), 0U) << second_reply;
  EXPECT_NE(second_reply.find("Content-Type: application/json"), std::string::npos);
  EXPECT_NE(second_reply.find("\r\n\r\n{\"two\":2}\n"), std::string::npos) << second_reply;
  EXPECT_EQ(first_calls.load(), 1);
  EXPECT_EQ(second_calls.load(), 1);
  // A path outside the table: 404 naming the routes there are.
  EXPECT_EQ(other_reply.rfind("HTTP/1.1 404", 0), 0U) << other_reply;
  EXPECT_NE(other_reply.find("try /first or /second/path"), std::string::npos) << other_reply;
}

TEST(HttpServerTest, StartRejectsAnEmptyOrMalformedRouteTable) {
  const auto ok = [] { return HttpResponse{}; };

  auto empty = HttpServer::start("127.0.0.1", 0, {});
  auto relative = HttpServer::start("127.0.0.1", 0, {{"metrics", ok}});
  auto twice = HttpServer::start("127.0.0.1", 0, {{"/health", ok}, {"/health", ok}});
  auto no_handler = HttpServer::start("127.0.0.1", 0, {{"/health", nullptr}});

  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, shm::Errc::kInvalidOptions);
  ASSERT_FALSE(relative);
  EXPECT_EQ(relative.error().code, shm::Errc::kInvalidOptions);
  EXPECT_NE(relative.error().message.find("\"metrics\""), std::string::npos);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, shm::Errc::kInvalidOptions);
  EXPECT_NE(twice.error().message.find("twice"), std::string::npos);
  ASSERT_FALSE(no_handler);
  EXPECT_EQ(no_handler.error().code, shm::Errc::kInvalidOptions);
}

TEST(HttpServerTest, ConnectionsBeyondTheLimitAreClosedAndTheOthersStillServed) {
  auto sut = start_server();
  ASSERT_NE(sut, nullptr);
  std::vector<std::unique_ptr<RawClient>> open;
  for (std::size_t i = 0; i < HttpServer::kMaxConnections; ++i) {
    open.push_back(std::make_unique<RawClient>(sut->port()));
    ASSERT_TRUE(open.back()->connected());
  }

  RawClient extra(sut->port());
  const std::string refused = extra.read_until_closed(kReplyTimeout);
  open.front()->send(get("/metrics"));
  const std::string served = open.front()->read_until_closed(kReplyTimeout);

  EXPECT_TRUE(extra.closed());
  EXPECT_TRUE(refused.empty()) << refused;
  EXPECT_EQ(served.rfind("HTTP/1.1 200", 0), 0U) << served;
}

// The lowest free descriptor number: what the next socket or accept gets.
int lowest_free_fd() {
  const int fd = ::dup(STDIN_FILENO);
  if (fd >= 0) ::close(fd);
  return fd;
}

std::size_t count_lines_with(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
    ++n;
  }
  return n;
}

// Collects the text of each log line under the sink's own lock (the server thread writes them,
// the test reads them). Only the message text is kept: no formatter, whose fmt buffer the
// sanitizer builds cannot share with Debian's compiled spdlog.
class LinesSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string text() {
    std::lock_guard lock(mutex_);
    return text_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    text_.append(msg.payload.data(), msg.payload.size());
    text_ += '\n';
  }
  void flush_() override {}

 private:
  std::string text_;
};

// An accept that fails for lack of descriptors (EMFILE) used to be retried at once, forever: one
// core spun and the log took about 300000 lines a second until a descriptor was freed.
TEST(HttpServerTest, AcceptOutOfDescriptorsPausesAndLogsOnceThenRecovers) {
  auto sink = std::make_shared<LinesSink>();
  const auto logged_text = [&sink] { return sink->text(); };
  auto logger = std::make_shared<spdlog::logger>("http_server_test", sink);
  logger->set_pattern("%v");
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  auto sut = start_server();
  ASSERT_NE(sut, nullptr);
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  const int free_fd = lowest_free_fd();
  ASSERT_GE(free_fd, 0);
  // Room for exactly the client's socket: the server's accept of it gets EMFILE.
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(free_fd) + 1;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  RawClient client(sut->port());
  constexpr std::string_view kFailed = "accept failed";
  const auto deadline = std::chrono::steady_clock::now() + kReplyTimeout;
  while (logged_text().find(kFailed) == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  // Not a synchronisation: the window in which a spinning accept would write many lines.
  constexpr auto kObserved = 500ms;
  std::this_thread::sleep_for(kObserved);
  const std::string logged = logged_text();
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);

  client.send(get("/metrics"));
  const std::string reply = client.read_until_closed(kReplyTimeout);
  sut->stop();
  spdlog::set_default_logger(previous);

  ASSERT_TRUE(client.connected());
  EXPECT_EQ(count_lines_with(logged, std::string(kFailed)), 1U) << logged.substr(0, 400);
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0U) << reply;
}

}  // namespace
}  // namespace shmstats::common
