// The collector's HTTP endpoint (cpp-httplib): GET /metrics and GET /health, on its own thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "shm/result.h"

namespace httplib {
class Server;
}

namespace shmstats::collector {

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain; version=0.0.4; charset=utf-8";
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse()>;
  // Binds host:port (port 0: any free port) and serves in a thread.
  static shm::Result<std::unique_ptr<HttpServer>> start(const std::string& host, std::uint16_t port,
                                                        Handler metrics, Handler health);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  std::uint16_t port() const noexcept { return port_; }
  void stop();

 private:
  HttpServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

}  // namespace shmstats::collector
