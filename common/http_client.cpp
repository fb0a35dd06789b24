#include "common/http_client.h"

#include <fmt/format.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <utility>

namespace shmstats::common {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

shm::Result<HttpReply> http_get(const std::string& host, std::uint16_t port, std::string_view path,
                                std::chrono::milliseconds timeout) {
  const bool v6_literal = host.find(':') != std::string::npos;
  const std::string authority =
      v6_literal ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
  const std::string url = fmt::format("http://{}{}", authority, path);
  if (path.empty() || path.front() != '/') {
    return shm::Error{shm::Errc::kInvalidOptions,
                      fmt::format("GET {}: the path must start with '/'", url)};
  }

  asio::io_context io{1};
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  http::request<http::empty_body> request{http::verb::get, std::string(path), 11};
  request.set(http::field::host, authority);
  request.keep_alive(false);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxHttpReplyBodyBytes);

  // resolve -> connect -> send -> read, each step started by the previous one's completion.
  const char* step = "resolve";
  beast::error_code failure;
  bool done = false;
  const auto fail = [&](beast::error_code ec) {
    failure = ec;
    done = true;
  };
  resolver.async_resolve(
      host, std::to_string(port), tcp::resolver::numeric_service,
      [&](beast::error_code ec, const tcp::resolver::results_type& addresses) {
        if (ec) return fail(ec);
        step = "connect";
        stream.async_connect(addresses, [&](beast::error_code connect_ec, const tcp::endpoint&) {
          if (connect_ec) return fail(connect_ec);
          step = "send";
          http::async_write(stream, request, [&](beast::error_code write_ec, std::size_t) {
            if (write_ec) return fail(write_ec);
            step = "read";
            http::async_read(stream, buffer, parser,
                             [&](beast::error_code read_ec, std::size_t) { fail(read_ec); });
          });
        });
      });
  io.run_for(timeout);
  if (!done) {
    // Out of time: abandon whatever step is pending and let its handler run (aborted).
    resolver.cancel();
    stream.close();
    io.restart();
    io.run();
    return shm::Error{shm::Errc::kSystem,
                      fmt::format("GET {}: no whole response within {} ms ({} pending)", url,
                                  timeout.count(), step)};
  }
  if (failure) {
    return shm::Error{shm::Errc::kSystem,
                      fmt::format("GET {}: {} failed: {}", url, step, failure.message())};
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  auto response = parser.release();
  return HttpReply{static_cast<int>(response.result_int()), std::move(response.body())};
}

}  // namespace shmstats::common
