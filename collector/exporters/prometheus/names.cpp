#include "collector/exporters/prometheus/names.h"

#include <array>
#include <cctype>

namespace shmstats::collector::prometheus {
namespace {

bool is_lower_or_digit(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_upper(char c) noexcept { return c >= 'A' && c <= 'Z'; }
bool is_alnum(char c) noexcept { return is_lower_or_digit(c) || is_upper(c); }

bool ends_with_word(std::string_view text, std::string_view word) noexcept {
  if (text.size() == word.size()) return text == word;
  return text.size() > word.size() && text.ends_with(word) &&
         text[text.size() - word.size() - 1] == '_';
}

std::string_view drop_word(std::string_view text, std::string_view word) noexcept {
  if (text.size() == word.size()) return {};
  return text.substr(0, text.size() - word.size() - 1);
}

}  // namespace

std::string snake_case(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 4);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (!is_alnum(c)) {
      if (!out.empty() && out.back() != '_') out += '_';
      continue;
    }
    if (is_upper(c) && !out.empty() && out.back() != '_') {
      // A word starts at an upper-case letter after a lower-case one or a digit ("cacheHits"), or
      // at the last capital of an acronym before a lower-case letter ("HTTPErrors").
      const char prev = text[i - 1];
      const bool after_lower = is_lower_or_digit(prev);
      const bool acronym_end =
          is_upper(prev) && i + 1 < text.size() && text[i + 1] >= 'a' && text[i + 1] <= 'z';
      if (after_lower || acronym_end) out += '_';
    }
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

std::string metric_name(std::string_view name, model::Kind kind) {
  std::string base = snake_case(name);
  if (kind == model::Kind::kTiming) {
    static constexpr std::array<std::string_view, 8> kUnits = {
        "milliseconds", "millis", "msec", "ms", "seconds", "secs", "sec", "s"};
    std::string_view trimmed = base;
    for (const auto unit : kUnits) {
      if (ends_with_word(trimmed, unit)) {
        trimmed = drop_word(trimmed, unit);
        break;
      }
    }
    base = std::string(trimmed);
  }
  if (base.empty()) base = "unnamed";
  if (base.front() >= '0' && base.front() <= '9') base = "n_" + base;
  switch (kind) {
    case model::Kind::kCounter:
      // "_total" as a word after the name: a counter named "total" becomes "total_total".
      if (base == "total" || !ends_with_word(base, "total")) base += "_total";
      break;
    case model::Kind::kTiming:
      base += "_seconds";
      break;
    default:
      break;
  }
  return base;
}

std::string label_name(std::string_view key) {
  std::string out = snake_case(key);
  if (out.empty() || (out.front() >= '0' && out.front() <= '9') || key.starts_with("__") ||
      out == "le" || out == "quantile") {
    out = out.empty() ? "tag" : "tag_" + out;
  }
  return out;
}

}  // namespace shmstats::collector::prometheus
