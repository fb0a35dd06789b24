#include "collector/options.h"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <stdexcept>

#include "common/endpoint.h"

namespace shmstats::collector {
namespace {

shm::Error expected(std::string why) {
  return shm::Error{shm::Errc::kInvalidOptions, std::move(why)};
}

}  // namespace

shm::Result<std::uint64_t> parse_uint(std::string_view text, std::uint64_t max) {
  std::uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || ptr != end || text.empty() || v > max) {
    return expected(fmt::format("expected a whole number from 0 to {}", max));
  }
  return v;
}

shm::Result<bool> parse_bool(std::string_view text) {
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  return expected("expected true or false");
}

shm::Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  const std::string_view unit = text.substr(digits);
  auto n = parse_uint(text.substr(0, digits), 86'400'000);
  std::uint64_t scale = 0;
  if (unit.empty() || unit == "ms") scale = 1;
  if (unit == "s") scale = 1000;
  if (unit == "m") scale = 60'000;
  if (!n || scale == 0) {
    return expected("expected a duration like 250ms, 2s, 1m or a number of milliseconds");
  }
  return std::chrono::milliseconds(n.value() * scale);
}

std::string duration_text(std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; }

shm::Result<void> check_option(const OptionSpec& spec, const std::string& text) {
  if (auto r = check_kind(spec, text); !r) return r;
  if (spec.check) return spec.check(text);
  return shm::success();
}

shm::Result<void> check_kind(const OptionSpec& spec, const std::string& text) {
  switch (spec.kind) {
    case OptionKind::kText:
      if (text.size() > spec.max) return expected(fmt::format("at most {} bytes", spec.max));
      return shm::success();
    case OptionKind::kName:
      if (text.empty() || text.size() > spec.max ||
          text.find_first_not_of(
              "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
              std::string::npos) {
        return expected(fmt::format("must be 1 to {} characters of [A-Za-z0-9_.-]", spec.max));
      }
      return shm::success();
    case OptionKind::kDestination: {
      auto ep = common::parse_destination(text);
      if (!ep) return ep.error();
      return shm::success();
    }
    case OptionKind::kListen: {
      auto ep = common::parse_listen_address(text);
      if (!ep) return ep.error();
      return shm::success();
    }
    case OptionKind::kUint: {
      auto n = parse_uint(text, std::numeric_limits<std::uint64_t>::max());
      const bool zero_ok = !spec.zero_means.empty() && n && n.value() == 0;
      if (!n || (!zero_ok && (n.value() < spec.min || n.value() > spec.max))) {
        return expected(spec.zero_means.empty()
                            ? fmt::format("must be {} to {}", spec.min, spec.max)
                            : fmt::format("must be {} to {}, or 0 for {}", spec.min, spec.max,
                                          spec.zero_means));
      }
      return shm::success();
    }
    case OptionKind::kBool: {
      auto b = parse_bool(text);
      if (!b) return b.error();
      return shm::success();
    }
    case OptionKind::kDuration: {
      auto d = parse_duration(text);
      if (!d) return d.error();
      const auto ms = static_cast<std::uint64_t>(d.value().count());
      if (ms < spec.min || ms > spec.max) {
        return expected(fmt::format("must be {}ms to {}ms", spec.min, spec.max));
      }
      return shm::success();
    }
  }
  return expected("unknown option kind");
}

const std::string& OptionValues::text(const std::string& key) const {
  const auto it = values_.find(key);
  if (it == values_.end()) throw std::logic_error("option \"" + key + "\" is not declared");
  return it->second;
}

std::uint64_t OptionValues::uint(const std::string& key) const {
  auto n = parse_uint(text(key), std::numeric_limits<std::uint64_t>::max());
  if (!n) throw std::logic_error("option \"" + key + "\" is not a number: " + text(key));
  return n.value();
}

bool OptionValues::boolean(const std::string& key) const {
  auto b = parse_bool(text(key));
  if (!b) throw std::logic_error("option \"" + key + "\" is not a boolean: " + text(key));
  return b.value();
}

std::chrono::milliseconds OptionValues::duration(const std::string& key) const {
  auto d = parse_duration(text(key));
  if (!d) throw std::logic_error("option \"" + key + "\" is not a duration: " + text(key));
  return d.value();
}

}  // namespace shmstats::collector
