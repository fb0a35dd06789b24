#include "common/endpoint.h"

#include <fmt/format.h>
#include <sys/un.h>

#include <charconv>

namespace shmstats::common {
namespace {

constexpr std::string_view kUnixScheme = "unix://";
constexpr std::size_t kMaxEndpointBytes = 1024;

}  // namespace

std::string shown(std::string_view text, std::size_t max_bytes) {
  std::string out;
  for (const char c : text.substr(0, max_bytes)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? c : '?';
  }
  if (text.size() > max_bytes) out += "...";
  return out;
}

std::string Endpoint::text() const {
  if (type == Type::kUnix) return fmt::format("unix://{}", path);
  if (ipv6_literal()) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

shm::Result<Endpoint> parse_endpoint(std::string_view text, const EndpointRules& rules) {
  const auto bad = [&](std::string_view why) -> shm::Error {
    return shm::Error{shm::Errc::kInvalidOptions,
                      fmt::format("{} \"{}\": {}", rules.what, shown(text), why)};
  };
  const char* expected = rules.allow_unix
                             ? "expected HOST:PORT, [IPV6]:PORT or unix:///path"
                             : (rules.listener ? "expected HOST:PORT, [IPV6]:PORT or PORT"
                                               : "expected HOST:PORT or [IPV6]:PORT");
  if (text.empty()) return bad(fmt::format("is empty; {}", expected));
  if (text.size() > kMaxEndpointBytes) {
    return bad(fmt::format("is {} bytes; the limit is {}", text.size(), kMaxEndpointBytes));
  }
  if (text.find('\0') != std::string_view::npos) return bad("contains a NUL byte");
  Endpoint ep;
  if (text.starts_with(kUnixScheme)) {
    if (!rules.allow_unix)
      return bad(fmt::format("a Unix socket is not allowed here; {}", expected));
    const std::string_view path = text.substr(kUnixScheme.size());
    if (!path.starts_with('/')) return bad("a Unix socket path must be absolute (unix:///path)");
    constexpr std::size_t kMaxPath = sizeof(sockaddr_un::sun_path) - 1;
    if (path.size() > kMaxPath) {
      return bad(fmt::format("the path is {} bytes; the limit is {}", path.size(), kMaxPath));
    }
    ep.type = Endpoint::Type::kUnix;
    ep.path = std::string(path);
    return ep;
  }

  std::string_view host;
  std::string_view port_text;
  if (text.find_first_not_of("0123456789") == std::string_view::npos) {
    if (!rules.listener) return bad(fmt::format("has no host; {}", expected));
    host = rules.default_host;
    port_text = text;
  } else if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']' after an IPv6 address");
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.starts_with(':')) return bad("expected ':PORT' after ']'");
    port_text = rest.substr(1);
    if (host.find(':') == std::string_view::npos) {
      return bad("brackets are for IPv6 addresses only");
    }
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad(fmt::format("has no ':PORT'; {}", expected));
    host = text.substr(0, colon);
    if (host.find(':') != std::string_view::npos) {
      return bad("an IPv6 address needs brackets: [ADDRESS]:PORT");
    }
    if (host.empty() && rules.listener) host = rules.default_host;
    port_text = text.substr(colon + 1);
  }
  if (host.empty()) return bad("the host is empty");
  unsigned port = 0;
  const char* end = port_text.data() + port_text.size();
  const auto [ptr, ec] = std::from_chars(port_text.data(), end, port);
  const unsigned min_port = rules.listener ? 0 : 1;
  if (port_text.empty() || ec != std::errc{} || ptr != end || port < min_port || port > 65535) {
    return bad(
        fmt::format("port \"{}\" is not a number from {} to 65535", shown(port_text), min_port));
  }
  ep.host = std::string(host);
  ep.port = static_cast<std::uint16_t>(port);
  return ep;
}

}  // namespace shmstats::common
