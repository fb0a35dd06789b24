// Typed configuration keys, declared once with their default, range and help text: the global
// keys' parsers and every output's keys (collector/exporters/<type>/register.cpp) use these, so a
// default or a range is written in exactly one place and the flag, TOML and environment forms of a
// key all go through the same check.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "shm/result.h"

namespace shmstats::collector {

enum class OptionKind {
  kText,         // any text up to max bytes
  kName,         // 1 to max bytes of [A-Za-z0-9_.-]
  kDestination,  // HOST:PORT, [IPV6]:PORT or unix:///path (common/endpoint.h)
  kListen,       // HOST:PORT, [IPV6]:PORT or PORT; port 0 picks a free one (common/endpoint.h)
  kUint,         // a whole number in [min, max]
  kBool,         // true/false, 1/0, yes/no, on/off
  kDuration,     // 250ms, 2s, 1m or a number of milliseconds, in [min, max] ms
};

struct OptionSpec {
  std::string key;  // snake_case; the flag is --<type>-<key with '-'>, TOML <key>
  OptionKind kind = OptionKind::kText;
  std::string default_value;  // as text (may be empty); ignored with `required`: must be given
  std::string help;
  std::uint64_t min = 0;
  std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  std::string zero_means;  // kUint: when not empty, 0 is accepted too and means this
  bool required = false;
  // A further check of the text after the kind's (e.g. a list of bucket bounds); its error says
  // what was expected.
  std::function<shm::Result<void>(const std::string&)> check;
};

// Checks `text` against the spec; the error says what was expected (without the key or where it
// came from: the caller adds those).
shm::Result<void> check_option(const OptionSpec& spec, const std::string& text);
// The kind's part of check_option alone.
shm::Result<void> check_kind(const OptionSpec& spec, const std::string& text);

// One output's validated values: every key of its type, defaults filled in. The typed getters
// parse what check_option accepted, so they cannot fail for a key of the type.
class OptionValues {
 public:
  void set(const std::string& key, std::string text) { values_[key] = std::move(text); }
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  const std::string& text(const std::string& key) const;
  std::uint64_t uint(const std::string& key) const;
  bool boolean(const std::string& key) const;
  std::chrono::milliseconds duration(const std::string& key) const;
  const std::map<std::string, std::string>& all() const noexcept { return values_; }

 private:
  std::map<std::string, std::string> values_;
};

// A duration as a kDuration key's text ("2500ms"): for declaring defaults from the options
// structs the factories fill.
std::string duration_text(std::chrono::milliseconds d);

// The parsers behind the kinds, for the global keys too.
shm::Result<std::uint64_t> parse_uint(std::string_view text, std::uint64_t max);
shm::Result<bool> parse_bool(std::string_view text);
// "250ms", "2s", "1m" or a bare number of milliseconds.
shm::Result<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace shmstats::collector
