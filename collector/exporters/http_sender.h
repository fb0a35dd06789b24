// HttpSender: POSTs request bodies to one http:// or https:// URL over one kept-alive HTTP/1.1
// connection (Boost.Beast; TLS with OpenSSL through Boost.Asio), for the outputs that speak HTTP
// (remote-write now, OTLP next). It connects on the first post and again after the server closed
// the connection or a post failed; every step has the post's deadline.
//
// TLS: the server's certificate is verified (chain and host name or IP address) against the CA
// file given, or the system's CAs when none is. A failed handshake or verification is a transport
// error, like a refused connection: the caller decides whether to retry.
//
// Concurrency: not thread-safe; one output's sending thread owns an HttpSender.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shm/result.h"

namespace shmstats::collector {

struct HttpUrl {
  bool tls = false;
  std::string host;  // name or address, without brackets
  std::uint16_t port = 0;
  std::string target;  // path and query, starting with '/'
  std::string text() const;
};

// "http://HOST[:PORT]/PATH" or "https://..." (port 80 / 443 by default; [IPV6] in brackets).
// Errors name the text and the rule.
shm::Result<HttpUrl> parse_http_url(std::string_view text);

struct TlsOptions {
  std::string ca_file;  // PEM bundle to verify the server with; empty: the system's CAs
};

class HttpSender {
 public:
  using Headers = std::vector<std::pair<std::string, std::string>>;
  struct Reply {
    int status = 0;           // the HTTP status; 0: no answer (see error)
    std::string body;         // at most kMaxReplyBytes of it
    std::string retry_after;  // the Retry-After header, if any
    std::string error;        // why there was no answer (connect, TLS, timeout, ...)
  };
  static constexpr std::size_t kMaxReplyBytes = 64 * 1024;

  static shm::Result<std::unique_ptr<HttpSender>> create(HttpUrl url, const TlsOptions& tls,
                                                         std::string user_agent);
  ~HttpSender();
  HttpSender(const HttpSender&) = delete;
  HttpSender& operator=(const HttpSender&) = delete;

  // POSTs `body` with `headers` (Host, User-Agent and Content-Length are added) and waits for the
  // answer, at most `timeout` in all.
  Reply post(const Headers& headers, const std::string& body, std::chrono::milliseconds timeout);
  const HttpUrl& url() const noexcept { return url_; }
  std::uint64_t connects() const noexcept { return connects_; }

  struct Impl;  // public for the helpers in http_sender.cpp; not part of the interface

 private:
  HttpSender(HttpUrl url, std::string user_agent);
  HttpUrl url_;
  std::string user_agent_;
  std::unique_ptr<Impl> impl_;
  std::uint64_t connects_ = 0;
};

}  // namespace shmstats::collector
