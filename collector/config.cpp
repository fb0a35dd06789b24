#include "collector/config.h"

#include <fmt/format.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdlib>
#include <functional>
#include <map>

namespace shmstats::collector {
namespace {

using Setter = std::function<shm::Result<void>(Config&, const std::string&)>;

shm::Error bad(std::string_view key, std::string_view origin, std::string_view value,
               std::string_view why) {
  return shm::Error{shm::Errc::kInvalidOptions,
                    fmt::format("invalid {} \"{}\" ({}): {}", key, value, origin, why)};
}

template <class T>
shm::Result<T> parse_uint(const std::string& text, T max) {
  std::uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || ptr != end || text.empty() || v > static_cast<std::uint64_t>(max)) {
    return shm::Error{shm::Errc::kInvalidOptions,
                      fmt::format("expected a whole number from 0 to {}", max)};
  }
  return static_cast<T>(v);
}

shm::Result<bool> parse_bool(const std::string& text) {
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  return shm::Error{shm::Errc::kInvalidOptions, "expected true or false"};
}

// One entry per key: how to apply a textual value to the config.
std::map<std::string, Setter> setters() {
  std::map<std::string, Setter> s;
  auto endpoint_or_empty = [](std::string Config::*field) {
    return [field](Config& c, const std::string& v) -> shm::Result<void> {
      if (!v.empty() && v.rfind("unix://", 0) != 0) {
        auto e = parse_endpoint(v);
        if (!e) return e.error();
      }
      c.*field = v;
      return shm::success();
    };
  };
  s["udp"] = endpoint_or_empty(&Config::udp);
  s["dogstatsd"] = endpoint_or_empty(&Config::dogstatsd);
  s["http"] = endpoint_or_empty(&Config::http);
  s["flush_interval"] = [](Config& c, const std::string& v) -> shm::Result<void> {
    auto d = parse_duration(v);
    if (!d) return d.error();
    if (d.value().count() < 1 || d.value() > std::chrono::minutes(10)) {
      return shm::Error{shm::Errc::kInvalidOptions, "must be 1ms to 10m"};
    }
    c.flush_interval = d.value();
    return shm::success();
  };
  s["batch_size"] = [](Config& c, const std::string& v) -> shm::Result<void> {
    auto n = parse_uint<std::size_t>(v, 1'000'000);
    if (!n) return n.error();
    if (n.value() < 1) return shm::Error{shm::Errc::kInvalidOptions, "must be at least 1"};
    c.batch_size = n.value();
    return shm::success();
  };
  s["shm_prefix"] = [](Config& c, const std::string& v) -> shm::Result<void> {
    if (v.empty() || v.size() > 64 ||
        v.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
            std::string::npos) {
      return shm::Error{shm::Errc::kInvalidOptions, "must be 1 to 64 characters of [A-Za-z0-9_-]"};
    }
    c.shm_prefix = v;
    return shm::success();
  };
  s["log_level"] = [](Config& c, const std::string& v) -> shm::Result<void> {
    for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
      if (v == level) {
        c.log_level = v;
        return shm::success();
      }
    }
    return shm::Error{shm::Errc::kInvalidOptions,
                      "must be trace, debug, info, warn, error, critical or off"};
  };
  s["max_datagram_bytes"] = [](Config& c, const std::string& v) -> shm::Result<void> {
    auto n = parse_uint<std::size_t>(v, 1472);
    if (!n || n.value() < 512) {
      return shm::Error{shm::Errc::kInvalidOptions, "must be 512 to 1472 (1452 for IPv6 paths)"};
    }
    c.max_datagram_bytes = n.value();
    return shm::success();
  };
  s["dogstatsd_max_bytes"] = [](Config& c, const std::string& v) -> shm::Result<void> {
    auto n = parse_uint<std::size_t>(v, 65000);
    if (!n || n.value() < 256)
      return shm::Error{shm::Errc::kInvalidOptions, "must be 256 to 65000"};
    c.dogstatsd_max_bytes = n.value();
    return shm::success();
  };
  auto flag = [](bool Config::*field) {
    return [field](Config& c, const std::string& v) -> shm::Result<void> {
      auto b = parse_bool(v);
      if (!b) return b.error();
      c.*field = b.value();
      return shm::success();
    };
  };
  s["dogstatsd_multi_value"] = flag(&Config::dogstatsd_multi_value);
  s["dogstatsd_service_tag"] = flag(&Config::dogstatsd_service_tag);
  s["allow_group_writable"] = flag(&Config::allow_group_writable);
  s["breaker_failures"] = [](Config& c, const std::string& v) -> shm::Result<void> {
    auto n = parse_uint<std::uint32_t>(v, 1000);
    if (!n || n.value() < 1) return shm::Error{shm::Errc::kInvalidOptions, "must be 1 to 1000"};
    c.breaker_failures = n.value();
    return shm::success();
  };
  s["breaker_open"] = [](Config& c, const std::string& v) -> shm::Result<void> {
    auto d = parse_duration(v);
    if (!d) return d.error();
    c.breaker_open = d.value();
    return shm::success();
  };
  s["exporter_queue"] = [](Config& c, const std::string& v) -> shm::Result<void> {
    auto n = parse_uint<std::size_t>(v, 100000);
    if (!n || n.value() < 1) return shm::Error{shm::Errc::kInvalidOptions, "must be 1 to 100000"};
    c.exporter_queue = n.value();
    return shm::success();
  };
  s["shutdown_timeout"] = [](Config& c, const std::string& v) -> shm::Result<void> {
    auto d = parse_duration(v);
    if (!d) return d.error();
    if (d.value() > std::chrono::minutes(5)) {
      return shm::Error{shm::Errc::kInvalidOptions, "must be at most 5m"};
    }
    c.shutdown_timeout = d.value();
    return shm::success();
  };
  s["allowed_uids"] = [](Config& c, const std::string& v) -> shm::Result<void> {
    c.allowed_uids.clear();
    std::size_t pos = 0;
    while (pos <= v.size() && !v.empty()) {
      const std::size_t comma = v.find(',', pos);
      const std::string part =
          v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      auto uid = parse_uint<uid_t>(part, 4'000'000'000U);
      if (!uid) return shm::Error{shm::Errc::kInvalidOptions, "expected uids like 1000,1001"};
      c.allowed_uids.push_back(uid.value());
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    return shm::success();
  };
  s["sender_id"] = [](Config& c, const std::string& v) -> shm::Result<void> {
    auto n = parse_uint<std::uint64_t>(v, ~std::uint64_t{0});
    if (!n) return n.error();
    c.sender_id = n.value();
    return shm::success();
  };
  s["host"] = [](Config& c, const std::string& v) -> shm::Result<void> {
    if (v.size() > 255) return shm::Error{shm::Errc::kInvalidOptions, "at most 255 bytes"};
    c.host = v;
    return shm::success();
  };
  s["max_drain_rate"] = [](Config& c, const std::string& v) -> shm::Result<void> {
    auto n = parse_uint<std::uint64_t>(v, 1'000'000'000);
    if (!n) return n.error();
    c.max_drain_rate = n.value();
    return shm::success();
  };
  s["health_latency_p99"] = [](Config& c, const std::string& v) -> shm::Result<void> {
    auto d = parse_duration(v);
    if (!d) return d.error();
    c.health_latency_p99_seconds = static_cast<double>(d.value().count()) / 1000.0;
    return shm::success();
  };
  return s;
}

std::string flag_name(const std::string& key) {
  std::string f = "--" + key;
  for (auto& ch : f) {
    if (ch == '_') ch = '-';
  }
  return f;
}

std::string env_name(const std::string& key) {
  std::string e = "SHMSTATS_COLLECTOR_";
  for (const char ch : key) e += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return e;
}

// Applies every key of a parsed TOML document; `origin` names the document in errors.
shm::Result<void> apply_toml_table(const toml::table& doc, std::string_view origin,
                                   const std::map<std::string, Setter>& table, Config& config) {
  for (const auto& [k, node] : doc) {
    const std::string key(k.str());
    const auto it = table.find(key);
    if (it == table.end()) {
      return shm::Error{shm::Errc::kInvalidOptions,
                        fmt::format("unknown key \"{}\" in {}", key, origin)};
    }
    std::string text;
    if (const auto* s = node.as_string()) {
      text = s->get();
    } else if (const auto* i = node.as_integer()) {
      text = std::to_string(i->get());
    } else if (const auto* b = node.as_boolean()) {
      text = b->get() ? "true" : "false";
    } else if (const auto* arr = node.as_array()) {
      for (const auto& el : *arr) {
        if (!text.empty()) text += ",";
        if (const auto* ii = el.as_integer()) text += std::to_string(ii->get());
      }
    } else {
      return bad(key, origin, "?", "expected a string, number, boolean or array");
    }
    if (auto r = it->second(config, text); !r) return bad(key, origin, text, r.error().message);
  }
  return shm::success();
}

shm::Error toml_error(std::string_view origin, const toml::parse_error& e) {
  return shm::Error{
      shm::Errc::kInvalidOptions,
      fmt::format("{}: {} (line {})", origin, e.description(), e.source().begin.line)};
}

}  // namespace

shm::Result<HostPort> parse_endpoint(const std::string& text) {
  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find("]:");
    if (close == std::string::npos) {
      return shm::Error{shm::Errc::kInvalidOptions, fmt::format("\"{}\" is not [IPv6]:PORT", text)};
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return shm::Error{shm::Errc::kInvalidOptions, fmt::format("\"{}\" is not HOST:PORT", text)};
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  auto p = parse_uint<std::uint16_t>(port, 65535);
  if (!p) {
    return shm::Error{shm::Errc::kInvalidOptions,
                      fmt::format("port \"{}\" in \"{}\" is not 0 to 65535", port, text)};
  }
  return HostPort{host, p.value()};
}

shm::Result<std::chrono::milliseconds> parse_duration(const std::string& text) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  const std::string unit = text.substr(digits);
  auto n = parse_uint<std::uint64_t>(text.substr(0, digits), 86'400'000);
  std::uint64_t scale = 0;
  if (unit.empty() || unit == "ms") scale = 1;
  if (unit == "s") scale = 1000;
  if (unit == "m") scale = 60'000;
  if (!n || scale == 0) {
    return shm::Error{shm::Errc::kInvalidOptions,
                      "expected a duration like 250ms, 2s, 1m or a number of milliseconds"};
  }
  return std::chrono::milliseconds(n.value() * scale);
}

shm::Result<void> apply_toml(std::string_view text, std::string_view origin, Config& config) {
  try {
    return apply_toml_table(toml::parse(text, origin), origin, setters(), config);
  } catch (const toml::parse_error& e) {
    return toml_error(origin, e);
  }
}

shm::Result<Config> load_config(int argc, const char* const* argv, std::string& help) {
  const auto table = setters();
  Config config;
  // Lowest precedence first; each layer overwrites the one before.
  for (const auto& [key, set] : table) {
    if (const char* v = std::getenv(env_name(key).c_str())) {
      if (auto r = set(config, v); !r) {
        return bad(key, "environment variable " + env_name(key), v, r.error().message);
      }
    }
  }
  CLI::App app{
      "shmstats-collector: drains every shmstats ring on this host and forwards the metrics.\n"
      "Precedence: flags, then the --config TOML file, then SHMSTATS_COLLECTOR_<KEY> "
      "environment variables, then defaults. TOML keys are the flag names with '_' for '-'."};
  std::string config_file;
  app.add_option("--config", config_file, "TOML file with any of the keys below");
  std::map<std::string, std::string> flag_values;
  const std::map<std::string, std::string> descriptions = {
      {"udp", "native protobuf datagram output HOST:PORT (off if empty)"},
      {"dogstatsd", "DogStatsD output HOST:PORT or unix:///path (off if empty)"},
      {"http", "self-telemetry (/metrics, /health) HOST:PORT, default 127.0.0.1:9102; empty: off"},
      {"flush_interval", "seal a batch at most this long after its first event, default 5ms"},
      {"batch_size", "events per batch before it is sealed, default 4096"},
      {"shm_prefix", "segment name prefix to collect, default shmstats"},
      {"log_level", "trace|debug|info|warn|error|critical|off, default info"},
      {"max_datagram_bytes", "native datagram size limit, 512-1472, default 1472"},
      {"dogstatsd_max_bytes", "DogStatsD datagram payload limit, default 1432"},
      {"dogstatsd_multi_value",
       "pack name:1:2:3 multi-value lines (peer must accept), default false"},
      {"dogstatsd_service_tag", "add a service:<name> tag to DogStatsD lines, default true"},
      {"breaker_failures", "consecutive send failures that open a circuit, default 5"},
      {"breaker_open", "how long a circuit stays open before a probe, default 2s"},
      {"exporter_queue", "batches an exporter may queue before it drops, default 64"},
      {"shutdown_timeout", "bound on drain and flush at SIGTERM, default 5s"},
      {"allowed_uids", "comma-separated uids whose segments are collected; default own uid"},
      {"allow_group_writable", "collect group-writable (0660) segments, default false"},
      {"sender_id", "64-bit sender id in datagrams; default derived from the host name"},
      {"host", "host name sent with each batch; default gethostname()"},
      {"health_latency_p99", "end-to-end p99 above which /health is degraded, default 1s"},
      {"max_drain_rate", "cap on events drained per second (caps CPU; 0: none), default 0"},
  };
  for (const auto& [key, set] : table) {
    const auto it = descriptions.find(key);
    app.add_option(flag_name(key), flag_values[key], it == descriptions.end() ? key : it->second);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    help = app.help();
    return shm::Error{shm::Errc::kNotFound, ""};
  } catch (const CLI::ParseError& e) {
    return shm::Error{shm::Errc::kInvalidOptions, e.what()};
  }
  if (!config_file.empty()) {
    try {
      if (auto r = apply_toml_table(toml::parse_file(config_file), config_file, table, config);
          !r) {
        return r.error();
      }
    } catch (const toml::parse_error& e) {
      return toml_error(config_file, e);
    }
  }
  for (const auto& [key, set] : table) {
    if (app.get_option(flag_name(key))->count() == 0) continue;
    if (auto r = set(config, flag_values[key]); !r) {
      return bad(key, "flag " + flag_name(key), flag_values[key], r.error().message);
    }
  }
  if (config.host.empty()) {
    char name[256] = {};
    if (::gethostname(name, sizeof(name) - 1) == 0) config.host = name;
  }
  if (config.sender_id == 0) {
    // FNV-1a of host and prefix: stable across restarts (the epoch tells restarts apart).
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const char ch : config.host + "/" + config.shm_prefix) {
      h = (h ^ static_cast<unsigned char>(ch)) * 0x100000001b3ULL;
    }
    config.sender_id = h;
  }
  return config;
}

}  // namespace shmstats::collector
