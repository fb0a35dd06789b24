#include "collector/exporters/http_sender.h"

#include <fmt/format.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <optional>

#include "common/endpoint.h"

namespace shmstats::collector {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

std::string HttpUrl::text() const {
  const bool v6 = host.find(':') != std::string::npos;
  return fmt::format("{}://{}{}{}:{}{}", tls ? "https" : "http", v6 ? "[" : "", host, v6 ? "]" : "",
                     port, target);
}

shm::Result<HttpUrl> parse_http_url(std::string_view text) {
  const auto bad = [&](std::string_view why) -> shm::Error {
    return shm::Error{shm::Errc::kInvalidOptions,
                      fmt::format("URL \"{}\": {}", common::shown(text), why)};
  };
  HttpUrl url;
  std::string_view rest = text;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    url.tls = true;
    rest.remove_prefix(8);
  } else {
    return bad("must start with http:// or https://");
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  url.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (url.target.find_first_of(" \r\n\t") != std::string::npos || text.find('\0') != text.npos) {
    return bad("the path holds a space, a control character or NUL");
  }
  if (authority.find('@') != std::string_view::npos) {
    return bad("user:password@ is not taken in the URL; use the basic-auth keys");
  }
  unsigned port = url.tls ? 443 : 80;
  std::string_view port_text;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("missing ']' after an IPv6 address");
    url.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) return bad("expected ':PORT' after ']'");
      port_text = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    if (url.host.find(':') != std::string::npos) {
      return bad("an IPv6 address needs brackets: [ADDRESS]:PORT");
    }
  }
  if (url.host.empty()) return bad("the host is empty");
  if (!port_text.empty() || authority.ends_with(':')) {
    const char* end = port_text.data() + port_text.size();
    const auto [ptr, ec] = std::from_chars(port_text.data(), end, port);
    if (port_text.empty() || ec != std::errc() || ptr != end || port == 0 || port > 65535) {
      return bad(
          fmt::format("port \"{}\" is not a number from 1 to 65535", common::shown(port_text)));
    }
  }
  url.port = static_cast<std::uint16_t>(port);
  return url;
}

struct HttpSender::Impl {
  asio::io_context ioc;
  std::optional<asio::ssl::context> ssl;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  bool connected = false;

  beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

  void close() {
    connected = false;
    if (secure) beast::get_lowest_layer(*secure).socket().close();
    if (plain) plain->socket().close();
    secure.reset();
    plain.reset();
    buffer.clear();
  }

  // Runs one asynchronous operation started by `start` until it completes or `deadline`
  // passes; on the deadline the connection is closed and the result is timed_out.
  template <class Start>
  beast::error_code run(Start&& start, Clock::time_point deadline) {
    std::optional<beast::error_code> result;
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run_until(deadline);
    if (!result) {
      close();
      ioc.restart();
      ioc.run();  // the cancelled operation's handler
      return asio::error::timed_out;
    }
    return *result;
  }
};

HttpSender::HttpSender(HttpUrl url, std::string user_agent)
    : url_(std::move(url)), user_agent_(std::move(user_agent)), impl_(std::make_unique<Impl>()) {}

HttpSender::~HttpSender() = default;

shm::Result<std::unique_ptr<HttpSender>> HttpSender::create(HttpUrl url, const TlsOptions& tls,
                                                            std::string user_agent) {
  std::unique_ptr<HttpSender> sender(new HttpSender(std::move(url), std::move(user_agent)));
  if (sender->url_.tls) {
    auto& ctx = sender->impl_->ssl.emplace(asio::ssl::context::tls_client);
    ctx.set_verify_mode(asio::ssl::verify_peer);
    beast::error_code ec;
    if (tls.ca_file.empty()) {
      ctx.set_default_verify_paths(ec);
    } else {
      ctx.load_verify_file(tls.ca_file, ec);
    }
    if (ec) {
      return shm::Error{
          shm::Errc::kInvalidOptions,
          fmt::format("CA file \"{}\": {}", common::shown(tls.ca_file), ec.message())};
    }
  }
  return sender;
}

HttpSender::Reply HttpSender::post(const Headers& headers, const std::string& body,
                                   std::chrono::milliseconds timeout) {
  Impl& s = *impl_;
  const auto deadline = Clock::now() + timeout;
  Reply reply;
  const auto fail = [&](std::string_view step, const beast::error_code& ec) {
    s.close();
    reply.status = 0;
    reply.error = fmt::format("{} {}: {}", step, url_.text(), ec.message());
    return reply;
  };
  if (!s.connected) {
    tcp::resolver resolver(s.ioc);
    tcp::resolver::results_type found;
    beast::error_code ec = s.run(
        [&](auto handler) {
          resolver.async_resolve(url_.host, std::to_string(url_.port),
                                 [&found, handler](beast::error_code e, auto results) mutable {
                                   found = results;
                                   handler(e);
                                 });
        },
        deadline);
    if (ec) return fail("resolving", ec);
    if (url_.tls) {
      s.secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(s.ioc, *s.ssl);
      // SNI, and the name (or address) the certificate must carry.
      // SSL_set_tlsext_host_name is a macro with a C cast in it; this is its expansion.
      if (SSL_ctrl(s.secure->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                   TLSEXT_NAMETYPE_host_name, const_cast<char*>(url_.host.c_str())) != 1) {
        return fail("setting the TLS server name for",
                    beast::error_code(static_cast<int>(::ERR_get_error()),
                                      asio::error::get_ssl_category()));
      }
      s.secure->set_verify_callback(asio::ssl::host_name_verification(url_.host));
    } else {
      s.plain = std::make_unique<beast::tcp_stream>(s.ioc);
    }
    ec = s.run([&](auto handler) { s.lowest().async_connect(found, handler); }, deadline);
    if (ec) return fail("connecting to", ec);
    if (url_.tls) {
      ec = s.run(
          [&](auto handler) { s.secure->async_handshake(asio::ssl::stream_base::client, handler); },
          deadline);
      if (ec) return fail("TLS handshake with", ec);
    }
    s.connected = true;
    ++connects_;
  }
  http::request<http::string_body> request{http::verb::post, url_.target, 11};
  request.set(http::field::host, url_.host);
  request.set(http::field::user_agent, user_agent_);
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = body;
  request.prepare_payload();
  beast::error_code ec;
  if (s.secure) {
    ec = s.run([&](auto handler) { http::async_write(*s.secure, request, handler); }, deadline);
  } else {
    ec = s.run([&](auto handler) { http::async_write(*s.plain, request, handler); }, deadline);
  }
  if (ec) return fail("sending to", ec);
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxReplyBytes);
  if (s.secure) {
    ec = s.run([&](auto handler) { http::async_read(*s.secure, s.buffer, parser, handler); },
               deadline);
  } else {
    ec = s.run([&](auto handler) { http::async_read(*s.plain, s.buffer, parser, handler); },
               deadline);
  }
  if (ec && ec != http::error::body_limit) return fail("reading the answer of", ec);
  const auto& response = parser.get();
  reply.status = static_cast<int>(response.result_int());
  reply.body = response.body();
  if (const auto it = response.find(http::field::retry_after); it != response.end()) {
    reply.retry_after = std::string(it->value());
  }
  if (!response.keep_alive() || ec) s.close();
  return reply;
}

}  // namespace shmstats::collector
