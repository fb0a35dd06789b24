#include "collector/config_print.h"

#include <fmt/format.h>

#include <map>
#include <string_view>

#include "collector/config.h"
#include "collector/exporters/registry.h"
#include "collector/options.h"

namespace shmstats::collector {
namespace {

// The global key an output's common key takes its default from (registry.h).
const std::map<std::string, std::string>& common_key_globals() {
  static const std::map<std::string, std::string> keys = {
      {kCommonQueueKey, "exporter_queue"},
      {kCommonBreakerFailuresKey, "breaker_failures"},
      {kCommonBreakerOpenKey, "breaker_open"},
  };
  return keys;
}

std::string toml_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

bool all_digits(std::string_view text) {
  return !text.empty() && text.size() <= 18 &&
         text.find_first_not_of("0123456789") == std::string_view::npos;
}

// A value as TOML: whole numbers and booleans bare (where the kind says so, or for the global
// keys, which have no kind, when the text is one), everything else a string.
std::string toml_value(std::string_view text, const OptionSpec* spec) {
  const bool is_bool = text == "true" || text == "false";
  if (spec == nullptr) {
    if (all_digits(text) || is_bool) return std::string(text);
    return toml_string(text);
  }
  if (spec->kind == OptionKind::kUint && all_digits(text)) return std::string(text);
  if (spec->kind == OptionKind::kBool && is_bool) return std::string(text);
  // A bare number of milliseconds is accepted too; the unit makes the file readable.
  if (spec->kind == OptionKind::kDuration && all_digits(text))
    return toml_string(std::string(text) + "ms");
  return toml_string(text);
}

void key_block(std::string& out, const std::string& key, const std::string& help,
               const std::string& value) {
  out += fmt::format("\n# {}\n#{} = {}\n", help, key, value);
}

}  // namespace

std::string example_config_toml() {
  std::string out = fmt::format(
      "# shmstats-collector configuration (shmstats {}): every key with its default.\n"
      "# Written by `shmstats-collector --print-config`; use it with --config FILE.\n"
      "# Precedence: command-line flags (--flush-interval), then this file (flush_interval),\n"
      "# then environment variables (SHMSTATS_COLLECTOR_FLUSH_INTERVAL), then the defaults.\n"
      "# Every assignment below is commented out: remove the '#' to change one.\n"
      "\n# ---- Global keys\n",
      SHMSTATS_VERSION);
  std::map<std::string, std::string> global_defaults;
  for (const GlobalKeyDoc& g : global_key_docs()) {
    global_defaults[g.key] = g.default_value;
    key_block(out, g.key, g.help, toml_value(g.default_value, nullptr));
  }
  out +=
      "\n# ---- Outputs\n"
      "# Each output type is configured in one of two ways:\n"
      "#   <type> = \"VALUE\" or [\"A\", \"B\"]: one output per value (an empty list: none), each\n"
      "#     with the type-wide keys <type>_<key> below;\n"
      "#   [[exporter]] tables: one output each, with any of its type's keys (without the\n"
      "#     <type>_ prefix), which win over the type-wide values for that output.\n";
  for (const ExporterType* t : exporter_types()) {
    out += fmt::format("\n# ---- {}: {}\n", t->type, t->summary);
    if (!t->short_key.empty()) {
      const OptionSpec* spec = find_output_option(*t, t->short_key);
      key_block(out, t->type,
                fmt::format("{} outputs, one per value: {}", t->type,
                            spec != nullptr ? spec->help : t->short_key),
                "[]");
    }
    auto add = [&](const OptionSpec& o) {
      if (o.key == kCommonNameKey || o.key == t->short_key) return;
      const std::string key = t->type + "_" + o.key;
      if (o.required) {
        out += fmt::format("\n# {}\n# {}: required, no default\n", o.help, key);
        return;
      }
      std::string value = o.default_value;
      if (value.empty()) {
        if (const auto it = common_key_globals().find(o.key); it != common_key_globals().end()) {
          value = global_defaults[it->second];
        }
      }
      key_block(out, key, o.help, toml_value(value, &o));
    };
    for (const OptionSpec& o : t->options) add(o);
    for (const OptionSpec& o : common_output_options()) add(o);
  }
  out +=
      "\n# ---- An output as a table (one per [[exporter]]; type-wide keys above still apply)\n"
      "# [[exporter]]\n"
      "# type = \"udp\"\n"
      "# name = \"udp-primary\"\n"
      "# destination = \"127.0.0.1:9125\"\n";
  return out;
}

}  // namespace shmstats::collector
