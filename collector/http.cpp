#include "collector/http.h"

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

namespace shmstats::collector {

shm::Result<std::unique_ptr<HttpServer>> HttpServer::start(const std::string& host,
                                                           std::uint16_t port, Handler metrics,
                                                           Handler health) {
  std::unique_ptr<HttpServer> self(new HttpServer());
  self->server_ = std::make_unique<httplib::Server>();
  auto serve = [](Handler handler) {
    return [handler = std::move(handler)](const httplib::Request&, httplib::Response& res) {
      try {
        HttpResponse r = handler();
        res.status = r.status;
        res.set_content(r.body, r.content_type.c_str());
      } catch (const std::exception& e) {
        res.status = 500;
        res.set_content(fmt::format("internal error: {}\n", e.what()), "text/plain");
      }
    };
  };
  self->server_->Get("/metrics", serve(std::move(metrics)));
  self->server_->Get("/health", serve(std::move(health)));
  // Bodies are not accepted on these endpoints; keep request size small.
  self->server_->set_payload_max_length(4096);
  self->server_->set_read_timeout(5, 0);
  self->server_->set_write_timeout(5, 0);
  int bound = -1;
  if (port == 0) {
    bound = self->server_->bind_to_any_port(host.c_str());
  } else if (self->server_->bind_to_port(host.c_str(), port)) {
    bound = port;
  }
  if (bound <= 0) {
    return shm::Error{shm::Errc::kSystem,
                      fmt::format("cannot listen for HTTP on {}:{} (in use, or not a local "
                                  "address)",
                                  host, port)};
  }
  self->port_ = static_cast<std::uint16_t>(bound);
  httplib::Server* server = self->server_.get();
  self->thread_ = std::thread([server] { server->listen_after_bind(); });
  return self;
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace shmstats::collector
