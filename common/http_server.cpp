#include "common/http_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "common/rate_limited_log.h"

namespace shmstats::common {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpServer::Impl {
  // Open connections, so stop() can close them (a scraper's idle keep-alive among them). Declared
  // first so that it outlives `io`, whose destructor may destroy sessions that unregister here.
  std::set<std::shared_ptr<beast::tcp_stream>> streams;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::steady_timer accept_retry{io};  // the pause after a failed accept
  RateLimitedLog accept_log{1, std::chrono::seconds(1)};
  std::vector<HttpRoute> routes;
  std::string not_found;  // the 404 body, naming the routes

  const HttpRoute* find(std::string_view path) const {
    for (const auto& route : routes) {
      if (route.path == path) return &route;
    }
    return nullptr;
  }
};

namespace {

// One connection: read a request (bounded in time and size), answer, repeat while keep-alive.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer::Impl& server, tcp::socket socket)
      : server_(server), stream_(std::make_shared<beast::tcp_stream>(std::move(socket))) {
    server_.streams.insert(stream_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() { server_.streams.erase(stream_); }

  void read() {
    parser_.emplace();
    parser_->header_limit(HttpServer::kMaxHeaderBytes);
    parser_->body_limit(0);  // these endpoints take no body
    stream_->expires_after(HttpServer::kRequestTimeout);
    http::async_read(
        *stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

 private:
  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted) {
      close();
      return;
    }
    if (ec == http::error::body_limit) {
      reply(413, "a request body is not accepted here\n", "text/plain", false);
      return;
    }
    if (ec) {
      // Malformed request or an oversized header: answer once, then close.
      reply(400, fmt::format("bad request: {}\n", ec.message()), "text/plain", false);
      return;
    }
    const auto& request = parser_->get();
    const bool keep_alive = request.keep_alive();
    if (request.method() != http::verb::get) {
      reply(405, "only GET is served\n", "text/plain", false);
      return;
    }
    const std::string_view target(request.target().data(), request.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    const HttpRoute* route = server_.find(path);
    if (route == nullptr) {
      reply(404, server_.not_found, "text/plain", keep_alive);
      return;
    }
    try {
      HttpResponse r = route->handler();
      reply(r.status, std::move(r.body), r.content_type, keep_alive);
    } catch (const std::exception& e) {
      reply(500, fmt::format("internal error: {}\n", e.what()), "text/plain", false);
    }
  }

  void reply(int status, std::string body, const std::string& content_type, bool keep_alive) {
    auto response =
        std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), 11);
    response->set(http::field::content_type, content_type);
    response->keep_alive(keep_alive);
    response->body() = std::move(body);
    response->prepare_payload();
    stream_->expires_after(HttpServer::kRequestTimeout);
    http::async_write(
        *stream_, *response,
        [self = shared_from_this(), response, keep_alive](beast::error_code ec, std::size_t) {
          if (ec || !keep_alive) {
            self->close();
            return;
          }
          self->read();
        });
  }

  void close() {
    beast::error_code ignored;
    stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_->close();
  }

  HttpServer::Impl& server_;
  std::shared_ptr<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
};

shm::Result<void> check_routes(const std::vector<HttpRoute>& routes) {
  if (routes.empty()) {
    return shm::Error{shm::Errc::kInvalidOptions, "the HTTP route table is empty"};
  }
  std::set<std::string_view> seen;
  for (const auto& route : routes) {
    if (route.path.empty() || route.path.front() != '/') {
      return shm::Error{shm::Errc::kInvalidOptions,
                        fmt::format("HTTP route \"{}\" does not start with '/'", route.path)};
    }
    if (!seen.insert(route.path).second) {
      return shm::Error{shm::Errc::kInvalidOptions,
                        fmt::format("HTTP route \"{}\" appears twice", route.path)};
    }
    if (!route.handler) {
      return shm::Error{shm::Errc::kInvalidOptions,
                        fmt::format("HTTP route \"{}\" has no handler", route.path)};
    }
  }
  return shm::success();
}

// "not found: try /metrics or /health\n"
std::string not_found_text(const std::vector<HttpRoute>& routes) {
  std::string text = "not found: try ";
  for (std::size_t i = 0; i < routes.size(); ++i) {
    if (i > 0) text += i + 1 == routes.size() ? " or " : ", ";
    text += routes[i].path;
  }
  return text + "\n";
}

void accept(HttpServer::Impl& server) {
  server.acceptor.async_accept([&server](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !server.acceptor.is_open()) return;
    if (ec) {
      // The pending connection stays in the backlog: accepting again at once fails again (EMFILE
      // until a descriptor is freed), which spun a core and flooded the log.
      server.accept_log.log(spdlog::level::warn, "accept", "http: accept failed: {}", ec.message());
      server.accept_retry.expires_after(HttpServer::kAcceptRetryDelay);
      server.accept_retry.async_wait([&server](beast::error_code wait_ec) {
        if (!wait_ec && server.acceptor.is_open()) accept(server);
      });
      return;
    }
    if (server.streams.size() >= HttpServer::kMaxConnections) {
      server.accept_log.log(spdlog::level::warn, "limit",
                            "http: {} connections open; closing new ones",
                            HttpServer::kMaxConnections);
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      std::make_shared<Session>(server, std::move(socket))->read();
    }
    accept(server);
  });
}

}  // namespace

shm::Result<std::unique_ptr<HttpServer>> HttpServer::start(const std::string& host,
                                                           std::uint16_t port,
                                                           std::vector<HttpRoute> routes) {
  if (auto checked = check_routes(routes); !checked) return checked.error();
  std::unique_ptr<HttpServer> self(new HttpServer());
  self->impl_ = std::make_unique<Impl>();
  Impl& impl = *self->impl_;
  impl.not_found = not_found_text(routes);
  impl.routes = std::move(routes);
  beast::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) {
    return shm::Error{
        shm::Errc::kInvalidOptions,
        fmt::format("HTTP address \"{}\" is not an IP address: {}", host, ec.message())};
  }
  const tcp::endpoint endpoint(address, port);
  impl.acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl.acceptor.bind(endpoint, ec);
  if (!ec) impl.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return shm::Error{shm::Errc::kSystem,
                      fmt::format("cannot listen for HTTP on {}:{}: {}", host, port, ec.message())};
  }
  self->port_ = impl.acceptor.local_endpoint().port();
  accept(impl);
  self->thread_ = std::thread([&impl] {
    // A handler's exceptions are caught in the session; anything else is logged, not fatal.
    for (;;) {
      try {
        impl.io.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("http: {}", e.what());
      }
    }
  });
  return self;
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::stop() {
  if (!impl_) return;
  Impl& impl = *impl_;
  // On the server thread: close the listener and every connection, so run() runs out of work.
  asio::post(impl.io, [&impl] {
    beast::error_code ignored;
    impl.acceptor.close(ignored);
    impl.accept_retry.cancel();
    for (const auto& stream : impl.streams) stream->socket().close(ignored);
  });
  if (thread_.joinable()) thread_.join();
  impl_.reset();
}

}  // namespace shmstats::common
