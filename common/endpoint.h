// Endpoints: one set of rules for every address the collector, the receiver and the tools read.
//
//   HOST:PORT          a name or IPv4 literal and a port            127.0.0.1:8125, statsd:8125
//   [IPV6]:PORT        an IPv6 literal, always in brackets          [::1]:9125
//   unix:///PATH       a Unix datagram socket, absolute path unix:///var/run/datadog/dsd.socket
//   PORT, :PORT        listeners only: the default host             9125, :9125
//
// Ports are 1 to 65535 for a destination; a listener may also say 0 (any free port, read back
// after bind). A bare IPv6 literal without brackets (::1:9125) is refused: its port cannot be told
// from its address. An empty host, a port with anything but digits, a relative Unix path, a NUL
// byte or a path longer than sockaddr_un allows are refused. Every error names the text (escaped
// and cut to 64 bytes) and the rule it broke.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shm/result.h"

namespace shmstats::common {

struct Endpoint {
  enum class Type { kInet, kUnix };
  Type type = Type::kInet;
  std::string host;  // kInet: name or address literal, without brackets
  std::uint16_t port = 0;
  std::string path;  // kUnix
  // True when host is an IPv6 literal (the text had brackets).
  bool ipv6_literal() const noexcept { return host.find(':') != std::string::npos; }
  std::string text() const;  // canonical form, for logs: 127.0.0.1:8125, [::1]:9125, unix:///p
};

struct EndpointRules {
  bool listener = false;    // port 0 allowed; PORT and :PORT mean default_host
  bool allow_unix = false;  // unix:///path accepted
  std::string_view default_host = "127.0.0.1";
  std::string_view what = "address";  // names the value in errors: "destination", "listen address"
};

// Cold path. Errors carry Errc::kInvalidOptions.
shm::Result<Endpoint> parse_endpoint(std::string_view text, const EndpointRules& rules);

// Where datagrams and requests go: HOST:PORT, [IPV6]:PORT or unix:///path; port 1 to 65535.
inline shm::Result<Endpoint> parse_destination(std::string_view text) {
  return parse_endpoint(text, EndpointRules{.allow_unix = true, .what = "destination"});
}
// Where a server listens: HOST:PORT, [IPV6]:PORT, PORT or :PORT; port 0 picks a free one.
inline shm::Result<Endpoint> parse_listen_address(std::string_view text) {
  return parse_endpoint(text, EndpointRules{.listener = true, .what = "listen address"});
}

// Printable ASCII of `text`, other bytes as '?', cut to `max_bytes` with "..." after: for quoting
// untrusted text in error messages.
std::string shown(std::string_view text, std::size_t max_bytes = 64);

}  // namespace shmstats::common
