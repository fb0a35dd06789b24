#include "collector/config.h"

#include <fmt/format.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>

#include "collector/exporters/registry.h"
#include "common/endpoint.h"

namespace shmstats::collector {
namespace {

using Setter = std::function<shm::Result<void>(Config&, const std::string&)>;

struct GlobalKey {
  Setter set;
  std::string help;
};

shm::Error bad(std::string_view key, std::string_view origin, std::string_view value,
               std::string_view why) {
  return shm::Error{
      shm::Errc::kInvalidOptions,
      fmt::format("invalid {} \"{}\" ({}): {}", key, common::shown(value, 200), origin, why)};
}

shm::Error invalid(std::string why) {
  return shm::Error{shm::Errc::kInvalidOptions, std::move(why)};
}

template <class T>
shm::Result<T> parse_number(const std::string& text, T max) {
  auto n = parse_uint(text, static_cast<std::uint64_t>(max));
  if (!n) return n.error();
  return static_cast<T>(n.value());
}

// A key every output has (registry.h), by name.
const OptionSpec& common_option(std::string_view key) {
  for (const auto& o : common_output_options()) {
    if (o.key == key) return o;
  }
  throw std::logic_error("no common output key " + std::string(key));
}

// Legacy spellings of output keys: the key as it was before outputs had their own keys.
const std::map<std::string, std::pair<std::string, std::string>>& legacy_output_keys() {
  static const std::map<std::string, std::pair<std::string, std::string>> keys = {
      {"max_datagram_bytes", {"udp", "max_datagram_bytes"}},
  };
  return keys;
}

// The global keys: how to apply a textual value, and the --help line.
const std::map<std::string, GlobalKey>& global_keys() {
  static const std::map<std::string, GlobalKey> keys = [] {
    std::map<std::string, GlobalKey> s;
    s["http"] = {
        [](Config& c, const std::string& v) -> shm::Result<void> {
          if (!v.empty()) {
            auto e = common::parse_listen_address(v);
            if (!e) return e.error();
          }
          c.http = v;
          return shm::success();
        },
        "self-telemetry (/metrics, /health) HOST:PORT, default 127.0.0.1:9102; empty: off"};
    s["flush_interval"] = {[](Config& c, const std::string& v) -> shm::Result<void> {
                             auto d = parse_duration(v);
                             if (!d) return d.error();
                             if (d.value().count() < 1 || d.value() > std::chrono::minutes(10)) {
                               return invalid("must be 1ms to 10m");
                             }
                             c.flush_interval = d.value();
                             return shm::success();
                           },
                           "seal a batch at most this long after its first event, default 5ms"};
    s["batch_size"] = {[](Config& c, const std::string& v) -> shm::Result<void> {
                         auto n = parse_number<std::size_t>(v, 1'000'000);
                         if (!n) return n.error();
                         if (n.value() < 1) return invalid("must be at least 1");
                         c.batch_size = n.value();
                         return shm::success();
                       },
                       "events per batch before it is sealed, default 4096"};
    s["shm_prefix"] = {
        [](Config& c, const std::string& v) -> shm::Result<void> {
          if (v.empty() || v.size() > 64 ||
              v.find_first_not_of(
                  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
                  std::string::npos) {
            return invalid("must be 1 to 64 characters of [A-Za-z0-9_-]");
          }
          c.shm_prefix = v;
          return shm::success();
        },
        "segment name prefix to collect, default shmstats"};
    s["log_level"] = {
        [](Config& c, const std::string& v) -> shm::Result<void> {
          for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
            if (v == level) {
              c.log_level = v;
              return shm::success();
            }
          }
          return invalid("must be trace, debug, info, warn, error, critical or off");
        },
        "trace|debug|info|warn|error|critical|off, default info"};
    s["allow_group_writable"] = {[](Config& c, const std::string& v) -> shm::Result<void> {
                                   auto b = parse_bool(v);
                                   if (!b) return b.error();
                                   c.allow_group_writable = b.value();
                                   return shm::success();
                                 },
                                 "collect group-writable (0660) segments, default false"};
    // The defaults of every output's breaker_failures, breaker_open and queue: checked by the
    // outputs' own declarations of those keys (registry.cpp), so the ranges are written once.
    const Config defaults;
    s["breaker_failures"] = {
        [](Config& c, const std::string& v) -> shm::Result<void> {
          if (auto r = check_option(common_option(kCommonBreakerFailuresKey), v); !r) return r;
          c.breaker_failures = static_cast<std::uint32_t>(parse_uint(v, 0xFFFFFFFFU).value());
          return shm::success();
        },
        fmt::format("consecutive send failures that open a circuit, default {} (every output's "
                    "default)",
                    defaults.breaker_failures)};
    s["breaker_open"] = {
        [](Config& c, const std::string& v) -> shm::Result<void> {
          if (auto r = check_option(common_option(kCommonBreakerOpenKey), v); !r) return r;
          c.breaker_open = parse_duration(v).value();
          return shm::success();
        },
        fmt::format("how long a circuit stays open before a probe, default {}ms (every output's "
                    "default)",
                    defaults.breaker_open.count())};
    s["exporter_queue"] = {
        [](Config& c, const std::string& v) -> shm::Result<void> {
          if (auto r = check_option(common_option(kCommonQueueKey), v); !r) return r;
          c.exporter_queue = static_cast<std::size_t>(parse_uint(v, ~std::uint64_t{0}).value());
          return shm::success();
        },
        fmt::format("batches an output may queue before it drops, default {} (every output's "
                    "default)",
                    defaults.exporter_queue)};
    s["shutdown_timeout"] = {[](Config& c, const std::string& v) -> shm::Result<void> {
                               auto d = parse_duration(v);
                               if (!d) return d.error();
                               if (d.value() > std::chrono::minutes(5)) {
                                 return invalid("must be at most 5m");
                               }
                               c.shutdown_timeout = d.value();
                               return shm::success();
                             },
                             "bound on drain and flush at SIGTERM, default 5s"};
    s["allowed_uids"] = {[](Config& c, const std::string& v) -> shm::Result<void> {
                           c.allowed_uids.clear();
                           std::size_t pos = 0;
                           while (pos <= v.size() && !v.empty()) {
                             const std::size_t comma = v.find(',', pos);
                             const std::string part = v.substr(
                                 pos, comma == std::string::npos ? std::string::npos : comma - pos);
                             auto uid = parse_number<uid_t>(part, 4'000'000'000U);
                             if (!uid) return invalid("expected uids like 1000,1001");
                             c.allowed_uids.push_back(uid.value());
                             if (comma == std::string::npos) break;
                             pos = comma + 1;
                           }
                           return shm::success();
                         },
                         "comma-separated uids whose segments are collected; default own uid"};
    s["sender_id"] = {[](Config& c, const std::string& v) -> shm::Result<void> {
                        auto n = parse_number<std::uint64_t>(v, ~std::uint64_t{0});
                        if (!n) return n.error();
                        c.sender_id = n.value();
                        return shm::success();
                      },
                      "64-bit sender id in datagrams; default derived from the host name"};
    s["host"] = {[](Config& c, const std::string& v) -> shm::Result<void> {
                   if (v.size() > 255) return invalid("at most 255 bytes");
                   c.host = v;
                   return shm::success();
                 },
                 "host name sent with each batch; default gethostname()"};
    s["max_drain_rate"] = {[](Config& c, const std::string& v) -> shm::Result<void> {
                             auto n = parse_number<std::uint64_t>(v, 1'000'000'000);
                             if (!n) return n.error();
                             c.max_drain_rate = n.value();
                             return shm::success();
                           },
                           "cap on events drained per second (caps CPU; 0: none), default 0"};
    s["health_latency_p99"] = {[](Config& c, const std::string& v) -> shm::Result<void> {
                                 auto d = parse_duration(v);
                                 if (!d) return d.error();
                                 c.health_latency_p99_seconds =
                                     static_cast<double>(d.value().count()) / 1000.0;
                                 return shm::success();
                               },
                               "end-to-end p99 above which /health is degraded, default 1s"};
    return s;
  }();
  return keys;
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

// An output key reachable at the top level: "<type>_<key>" (or a legacy spelling).
struct TypeWideKey {
  const ExporterType* type = nullptr;
  const OptionSpec* spec = nullptr;
};

// Every top-level spelling of a type-wide output key, e.g. "udp_max_datagram_bytes".
std::map<std::string, TypeWideKey> type_wide_keys() {
  std::map<std::string, TypeWideKey> keys;
  for (const ExporterType* t : exporter_types()) {
    auto add = [&](const OptionSpec& o) {
      if (o.key == kCommonNameKey || o.key == t->short_key) return;
      keys[t->type + "_" + o.key] = TypeWideKey{t, &o};
    };
    for (const auto& o : t->options) add(o);
    for (const auto& o : common_output_options()) add(o);
  }
  for (const auto& [legacy, target] : legacy_output_keys()) {
    const ExporterType* t = find_exporter_type(target.first);
    if (t == nullptr) continue;
    if (const OptionSpec* spec = find_output_option(*t, target.second)) keys[legacy] = {t, spec};
  }
  return keys;
}

// Applies one top-level key from any source. `list` carries the values of a repeatable short key
// (flags, TOML arrays, comma-separated variables); `text` the single value otherwise.
shm::Result<void> apply_key(Config& config, const std::string& key,
                            const std::vector<std::string>& list, std::string_view origin) {
  const std::string text = list.empty() ? std::string() : list.back();
  if (const auto it = global_keys().find(key); it != global_keys().end()) {
    if (list.size() > 1) return bad(key, origin, text, "takes one value");
    if (auto r = it->second.set(config, text); !r) return bad(key, origin, text, r.error().message);
    return shm::success();
  }
  if (const ExporterType* t = find_exporter_type(key); t != nullptr && !t->short_key.empty()) {
    OutputSettings::List entry{{}, std::string(origin)};
    const OptionSpec* spec = find_output_option(*t, t->short_key);
    for (const auto& v : list) {
      if (v.empty()) continue;  // "" turns the type off at this level
      if (spec != nullptr) {
        if (auto r = check_option(*spec, v); !r) return bad(key, origin, v, r.error().message);
      }
      entry.values.push_back(v);
    }
    config.output_settings.short_values[t->type] = std::move(entry);
    return shm::success();
  }
  const auto keys = type_wide_keys();
  if (const auto it = keys.find(key); it != keys.end()) {
    if (list.size() > 1) return bad(key, origin, text, "takes one value");
    if (auto r = check_option(*it->second.spec, text); !r) {
      return bad(key, origin, text, r.error().message);
    }
    config.output_settings.type_wide[it->second.type->type][it->second.spec->key] =
        OutputSettings::Setting{text, std::string(origin)};
    return shm::success();
  }
  return invalid(fmt::format("unknown key \"{}\" in {}", common::shown(key), origin));
}

// A TOML value as the text the setters take; arrays as a list.
shm::Result<std::vector<std::string>> node_values(const toml::node& node, const std::string& key,
                                                  std::string_view origin) {
  if (const auto* s = node.as_string()) return std::vector<std::string>{s->get()};
  if (const auto* i = node.as_integer()) return std::vector<std::string>{std::to_string(i->get())};
  if (const auto* b = node.as_boolean()) {
    return std::vector<std::string>{b->get() ? "true" : "false"};
  }
  if (const auto* arr = node.as_array()) {
    // Integers: one comma-separated value (allowed_uids); strings: a list (outputs).
    std::vector<std::string> strings;
    std::string joined;
    bool integers = false;
    for (const auto& el : *arr) {
      if (const auto* ii = el.as_integer()) {
        if (!joined.empty()) joined += ",";
        joined += std::to_string(ii->get());
        integers = true;
      } else if (const auto* ss = el.as_string()) {
        strings.push_back(ss->get());
      } else {
        return bad(key, origin, "?", "array elements must be strings or whole numbers");
      }
    }
    if (integers && !strings.empty()) return bad(key, origin, "?", "mixed array");
    if (integers) return std::vector<std::string>{joined};
    if (strings.empty()) return std::vector<std::string>{""};
    return strings;
  }
  return bad(key, origin, "?", "expected a string, number, boolean or array");
}

// One [[exporter]] table: its type and keys, checked now so errors name the table.
shm::Result<void> apply_exporter_table(Config& config, const toml::table& table, std::size_t index,
                                       std::string_view origin) {
  const std::string where = fmt::format("[[exporter]] #{} in {}", index + 1, origin);
  const auto* type_node = table.get("type");
  if (type_node == nullptr || !type_node->is_string()) {
    return invalid(fmt::format("{}: needs type = \"<output>\"", where));
  }
  const std::string type = type_node->as_string()->get();
  const ExporterType* t = find_exporter_type(type);
  if (t == nullptr) {
    std::string known;
    for (const ExporterType* e : exporter_types()) known += (known.empty() ? "" : ", ") + e->type;
    return invalid(fmt::format("{}: unknown output type \"{}\" (known: {})", where,
                               common::shown(type), known));
  }
  OutputSettings::Table entry{type, {}, where};
  for (const auto& [k, node] : table) {
    const std::string key(k.str());
    if (key == "type") continue;
    const OptionSpec* spec = find_output_option(*t, key);
    if (spec == nullptr) {
      return invalid(fmt::format("{}: unknown key \"{}\" for output type {}", where,
                                 common::shown(key), type));
    }
    auto values = node_values(node, key, where);
    if (!values) return values.error();
    if (values.value().size() != 1) return bad(key, where, "?", "takes one value");
    const std::string& text = values.value().front();
    if (auto r = check_option(*spec, text); !r) return bad(key, where, text, r.error().message);
    entry.values[key] = text;
  }
  config.output_settings.tables.push_back(std::move(entry));
  return shm::success();
}

shm::Result<void> apply_toml_table(const toml::table& doc, std::string_view origin,
                                   Config& config) {
  for (const auto& [k, node] : doc) {
    const std::string key(k.str());
    if (key == "exporter") {
      const auto* tables = node.as_array();
      if (tables == nullptr || !tables->is_array_of_tables()) {
        return invalid(
            fmt::format("exporter in {} must be an array of tables ([[exporter]])", origin));
      }
      for (std::size_t i = 0; i < tables->size(); ++i) {
        if (auto r = apply_exporter_table(config, *tables->get(i)->as_table(), i, origin); !r) {
          return r;
        }
      }
      continue;
    }
    auto values = node_values(node, key, origin);
    if (!values) return values.error();
    if (auto r = apply_key(config, key, values.value(), origin); !r) return r;
  }
  return shm::success();
}

shm::Error toml_error(std::string_view origin, const toml::parse_error& e) {
  return invalid(fmt::format("{}: {} (line {})", origin, e.description(), e.source().begin.line));
}

// Every top-level key with its help line: globals, then per output type its short key and
// type-wide keys, then legacy spellings.
std::vector<std::pair<std::string, std::string>> all_keys() {
  std::vector<std::pair<std::string, std::string>> keys;
  for (const auto& [key, g] : global_keys()) keys.emplace_back(key, g.help);
  for (const ExporterType* t : exporter_types()) {
    if (!t->short_key.empty()) {
      const OptionSpec* spec = find_output_option(*t, t->short_key);
      keys.emplace_back(t->type, fmt::format("{} output: {} (repeat for several; empty: off)",
                                             t->summary, spec != nullptr ? spec->help : ""));
    }
  }
  for (const auto& [key, w] : type_wide_keys()) {
    const bool legacy = legacy_output_keys().count(key) != 0;
    std::string help = w.spec->help;
    if (!w.spec->default_value.empty()) help += fmt::format(", default {}", w.spec->default_value);
    if (legacy) help += fmt::format(" (same as --{}-{})", w.type->type, w.spec->key);
    keys.emplace_back(key, fmt::format("{}: {}", w.type->type, help));
  }
  return keys;
}

}  // namespace

std::vector<GlobalKeyDoc> global_key_docs() {
  // The defaults come from a default Config, so they are written in one place only.
  const Config d;
  std::string uids;
  for (const uid_t uid : d.allowed_uids) uids += (uids.empty() ? "" : ",") + std::to_string(uid);
  const std::map<std::string, std::string> defaults = {
      {"http", d.http},
      {"flush_interval", fmt::format("{}ms", d.flush_interval.count())},
      {"batch_size", std::to_string(d.batch_size)},
      {"shm_prefix", d.shm_prefix},
      {"log_level", d.log_level},
      {"allow_group_writable", d.allow_group_writable ? "true" : "false"},
      {"breaker_failures", std::to_string(d.breaker_failures)},
      {"breaker_open", fmt::format("{}ms", d.breaker_open.count())},
      {"exporter_queue", std::to_string(d.exporter_queue)},
      {"shutdown_timeout", fmt::format("{}ms", d.shutdown_timeout.count())},
      {"allowed_uids", uids},
      {"sender_id", std::to_string(d.sender_id)},
      {"host", d.host},
      {"max_drain_rate", std::to_string(d.max_drain_rate)},
      {"health_latency_p99",
       fmt::format("{}ms", static_cast<std::uint64_t>(d.health_latency_p99_seconds * 1000.0))},
  };
  std::vector<GlobalKeyDoc> docs;
  for (const auto& [key, g] : global_keys()) {
    const auto it = defaults.find(key);
    docs.push_back({key, it != defaults.end() ? it->second : std::string(), g.help});
  }
  return docs;
}

shm::Result<void> resolve_outputs(Config& config) {
  config.outputs.clear();
  const OutputSettings& s = config.output_settings;
  // Names given in tables are taken first; generated ones (udp, udp-2, ...) step around them.
  std::set<std::string> taken;
  for (const auto& table : s.tables) {
    if (const auto it = table.values.find(kCommonNameKey); it != table.values.end()) {
      if (!taken.insert(it->second).second) {
        return invalid(
            fmt::format("{}: output name \"{}\" is used twice", table.origin, it->second));
      }
    }
  }
  auto make = [&](const ExporterType& t, const std::map<std::string, std::string>& own,
                  const std::string& origin) -> shm::Result<void> {
    OutputConfig out{t.type, {}, {}, origin};
    for (const auto& o : t.options) {
      if (!o.required) out.values.set(o.key, o.default_value);
    }
    out.values.set(kCommonQueueKey, std::to_string(config.exporter_queue));
    out.values.set(kCommonBreakerFailuresKey, std::to_string(config.breaker_failures));
    out.values.set(kCommonBreakerOpenKey, std::to_string(config.breaker_open.count()));
    if (const auto it = s.type_wide.find(t.type); it != s.type_wide.end()) {
      for (const auto& [key, setting] : it->second) out.values.set(key, setting.value);
    }
    for (const auto& [key, value] : own) out.values.set(key, value);
    for (const auto& o : t.options) {
      if (o.required && !out.values.has(o.key)) {
        return invalid(fmt::format("{} (type {}): {} is required", origin, t.type, o.key));
      }
    }
    if (!out.values.has(kCommonNameKey)) {
      std::string name = t.type;
      for (int n = 2; taken.count(name) != 0; ++n) name = fmt::format("{}-{}", t.type, n);
      taken.insert(name);
      out.values.set(kCommonNameKey, name);
    }
    out.name = out.values.text(kCommonNameKey);
    config.outputs.push_back(std::move(out));
    return shm::success();
  };
  for (const ExporterType* t : exporter_types()) {
    if (const auto it = s.short_values.find(t->type); it != s.short_values.end()) {
      for (const auto& v : it->second.values) {
        if (auto r = make(*t, {{t->short_key, v}}, it->second.origin); !r) return r;
      }
    }
    for (const auto& table : s.tables) {
      if (table.type != t->type) continue;
      if (auto r = make(*t, table.values, table.origin); !r) return r;
    }
  }
  return shm::success();
}

shm::Result<void> apply_toml(std::string_view text, std::string_view origin, Config& config) {
  try {
    if (auto r = apply_toml_table(toml::parse(text, origin), origin, config); !r) return r;
  } catch (const toml::parse_error& e) {
    return toml_error(origin, e);
  }
  return resolve_outputs(config);
}

shm::Result<Config> load_config(int argc, const char* const* argv, std::string& help) {
  Config config;
  const auto keys = all_keys();
  // Lowest precedence first; each layer overwrites the one before.
  for (const auto& [key, unused] : keys) {
    const char* v = std::getenv(env_name(key).c_str());
    if (v == nullptr) continue;
    std::vector<std::string> list{v};
    if (find_exporter_type(key) != nullptr) {
      // An output's short key may list several values, comma-separated.
      list.clear();
      std::string_view rest(v);
      for (;;) {
        const auto comma = rest.find(',');
        list.emplace_back(rest.substr(0, comma));
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    }
    if (auto r = apply_key(config, key, list, "environment variable " + env_name(key)); !r) {
      return r.error();
    }
  }
  CLI::App app{
      "shmstats-collector: drains every shmstats ring on this host and forwards the metrics.\n"
      "Precedence: flags, then the --config TOML file, then SHMSTATS_COLLECTOR_<KEY> "
      "environment variables, then defaults. TOML keys are the flag names with '_' for '-';\n"
      "[[exporter]] tables (type = \"udp\", ...) add outputs with keys of their own."};
  std::string config_file;
  app.add_option("--config", config_file, "TOML file with any of the keys below");
  std::map<std::string, std::vector<std::string>> flag_values;
  for (const auto& [key, text] : keys) {
    auto* option = app.add_option(flag_name(key), flag_values[key], text);
    if (find_exporter_type(key) == nullptr) {
      option->expected(1);
    } else {
      option->allow_extra_args(false);  // --udp A --udp B: each flag one value
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    help = app.help();
    return shm::Error{shm::Errc::kNotFound, ""};
  } catch (const CLI::ParseError& e) {
    return invalid(e.what());
  }
  if (!config_file.empty()) {
    try {
      if (auto r = apply_toml_table(toml::parse_file(config_file), config_file, config); !r) {
        return r.error();
      }
    } catch (const toml::parse_error& e) {
      return toml_error(config_file, e);
    }
  }
  for (const auto& [key, unused] : keys) {
    if (app.get_option(flag_name(key))->count() == 0) continue;
    auto& values = flag_values[key];
    if (values.empty()) values.emplace_back();
    if (auto r = apply_key(config, key, values, "flag " + flag_name(key)); !r) return r.error();
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
  if (auto r = resolve_outputs(config); !r) return r.error();
  return config;
}

}  // namespace shmstats::collector
