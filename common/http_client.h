// A small synchronous HTTP/1.1 GET client on Boost.Beast, for what scrapes the daemons' /metrics
// and /health: the tests and the load scenarios. One request per connection (Connection: close);
// no redirects, no TLS.
//
// Concurrency: each call runs its own io_context on the calling thread; calls from several
// threads are independent.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "shm/result.h"

namespace shmstats::common {

struct HttpReply {
  int status = 0;
  std::string body;
};

// The largest response body http_get() accepts.
inline constexpr std::size_t kMaxHttpReplyBodyBytes = std::size_t{64} << 20;

// GET http://host:port<path>, the whole exchange (resolve, connect, send, read) bounded by
// `timeout`. `host`: an IPv4 or IPv6 address or a name. Any status is a reply; the caller decides
// what a 404 or a 503 means. Errc::kInvalidOptions when `path` does not start with '/';
// kSystem when the host does not resolve, the connection fails, the response is malformed or
// larger than kMaxHttpReplyBodyBytes, or no whole response came within `timeout`. The message
// names the URL and the reason.
shm::Result<HttpReply> http_get(const std::string& host, std::uint16_t port, std::string_view path,
                                std::chrono::milliseconds timeout);

}  // namespace shmstats::common
