// The HTTP endpoint of the collector and of the receiver: a table of GET routes (/metrics,
// /health), served by Boost.Beast on one thread of its own.
//
// Why Beast and not cpp-httplib: Debian builds cpp-httplib with OpenSSL, and loading libssl and
// libcrypto cost the collector 3.5 MB of its 11.4 MB resident set while idle (measured from
// /proc/<pid>/status when this was chosen). Beast and Asio are headers of Boost, which both
// daemons already need.
//
// Every connection is handled asynchronously on the server thread, so a slow or silent client
// never holds up another one: a request must arrive within kRequestTimeout, its header may be at
// most kMaxHeaderBytes and a body is refused (413). Other methods get 405, paths outside the
// route table 404 (the query string is ignored). A handler's exception becomes a 500 with its
// message. stop() closes the listener and every open connection and joins the thread.
//
// The process's file descriptors are shared with what the server is beside (segments, sockets of
// the outputs), so clients cannot take them all: beyond kMaxConnections open connections a new
// one is closed at once. When accept fails (e.g. EMFILE, the process is out of descriptors), the
// server waits kAcceptRetryDelay before it accepts again, and logs at most one line a second.
//
// Concurrency: the handlers run on the server thread (one request at a time); start() and stop()
// belong to the owner.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "shm/result.h"

namespace shmstats::common {

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain; version=0.0.4; charset=utf-8";  // Prometheus text
};

// One entry of the route table: GET `path` (exact match, starting with '/') answered by `handler`.
struct HttpRoute {
  std::string path;
  std::function<HttpResponse()> handler;
};

class HttpServer {
 public:
  static constexpr std::chrono::seconds kRequestTimeout{5};
  static constexpr std::size_t kMaxHeaderBytes = 8192;
  static constexpr std::size_t kMaxConnections = 256;
  static constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

  // Binds host:port (host an IPv4 or IPv6 address; port 0: any free port) and serves `routes` in
  // a thread. Errc::kInvalidOptions for a host that is not an address, an empty table, a path
  // that does not start with '/', a path twice or a route without a handler; kSystem when the
  // bind or listen fails.
  static shm::Result<std::unique_ptr<HttpServer>> start(const std::string& host, std::uint16_t port,
                                                        std::vector<HttpRoute> routes);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  std::uint16_t port() const noexcept { return port_; }
  void stop();

  struct Impl;  // public for the session code in http_server.cpp; not part of the interface

 private:
  HttpServer() = default;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

}  // namespace shmstats::common
