#include "common/prometheus_text.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <iterator>

namespace shmstats::common::prometheus {
namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// The length of the valid UTF-8 sequence at the start of `s` (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 if it does not start with one. `*bad` is then how
// many bytes make up the invalid start (its maximal subpart: one U+FFFD replaces them).
std::size_t utf8_sequence(std::string_view s, std::size_t* bad) {
  const auto byte = [&s](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(0);
  *bad = 1;
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80;  // bounds of the second byte
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // overlong
    if (lead == 0xED) high = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // overlong
    if (lead == 0xF4) high = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  for (std::size_t i = 1; i < length; ++i) {
    if (i >= s.size()) return 0;
    const unsigned char lo = i == 1 ? low : 0x80;
    const unsigned char hi = i == 1 ? high : 0xBF;
    if (byte(i) < lo || byte(i) > hi) return 0;
    *bad = i + 1;
  }
  return length;
}

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
bool is_blank(char c) { return c == ' ' || c == '\t'; }

void skip_blanks(std::string_view& s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
}

// A metric name (colons allowed) or label name (`metric` false: no colons) at the start of `s`.
std::string_view take_name(std::string_view& s, bool metric) {
  std::size_t n = 0;
  while (n < s.size() && is_name_char(s[n]) && (metric || s[n] != ':')) ++n;
  if (n == 0 || !is_name_start(s[0])) return {};
  const std::string_view name = s.substr(0, n);
  s.remove_prefix(n);
  return name;
}

// A quoted label value at the start of `s`, unescaped; nullopt when it is not well formed.
std::optional<std::string> take_quoted(std::string_view& s) {
  if (s.empty() || s.front() != '"') return std::nullopt;
  std::string out;
  for (std::size_t i = 1; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '"') {
      s.remove_prefix(i + 1);
      return out;
    }
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i == s.size()) return std::nullopt;
    switch (s[i]) {
      case 'n':
        out += '\n';
        break;
      case '\\':
      case '"':
        out += s[i];
        break;
      default:  // not an escape of the format: kept as written
        out += '\\';
        out += s[i];
    }
  }
  return std::nullopt;
}

// The {...} label set at the start of `s` into `labels`; false when it is not well formed.
bool take_labels(std::string_view& s, std::vector<std::pair<std::string, std::string>>& labels) {
  s.remove_prefix(1);  // '{'
  for (;;) {
    skip_blanks(s);
    if (!s.empty() && s.front() == '}') break;
    const std::string_view name = take_name(s, false);
    if (name.empty()) return false;
    skip_blanks(s);
    if (s.empty() || s.front() != '=') return false;
    s.remove_prefix(1);
    skip_blanks(s);
    auto value = take_quoted(s);
    if (!value) return false;
    labels.emplace_back(std::string(name), std::move(*value));
    skip_blanks(s);
    if (!s.empty() && s.front() == ',') {
      s.remove_prefix(1);
      continue;
    }
    if (s.empty() || s.front() != '}') return false;
  }
  s.remove_prefix(1);  // '}'
  return true;
}

std::optional<double> parse_value(std::string_view token) {
  if (token == "+Inf") return HUGE_VAL;
  if (token == "-Inf") return -HUGE_VAL;
  if (token == "NaN") return std::nan("");
  if (!token.empty() && token.front() == '+') token.remove_prefix(1);
  double value = 0;
  const auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  if (ec != std::errc{} || ptr != token.data() + token.size() || token.empty()) return std::nullopt;
  return value;
}

std::string_view take_token(std::string_view& s) {
  std::size_t n = 0;
  while (n < s.size() && !is_blank(s[n])) ++n;
  const std::string_view token = s.substr(0, n);
  s.remove_prefix(n);
  return token;
}

std::optional<Sample> parse_line(std::string_view line) {
  Sample sample;
  const std::string_view name = take_name(line, true);
  if (name.empty()) return std::nullopt;
  sample.name = name;
  if (!line.empty() && line.front() == '{' && !take_labels(line, sample.labels)) {
    return std::nullopt;
  }
  if (line.empty() || !is_blank(line.front())) return std::nullopt;
  skip_blanks(line);
  const auto value = parse_value(take_token(line));
  if (!value) return std::nullopt;
  sample.value = *value;
  skip_blanks(line);
  const std::string_view timestamp = take_token(line);
  if (!timestamp.empty()) {
    std::int64_t ms = 0;
    const auto [ptr, ec] =
        std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ms);
    if (ec != std::errc{} || ptr != timestamp.data() + timestamp.size()) return std::nullopt;
  }
  skip_blanks(line);
  if (!line.empty()) return std::nullopt;
  return sample;
}

}  // namespace

std::string_view to_string(MetricType type) noexcept {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
    case MetricType::kSummary:
      return "summary";
    case MetricType::kUntyped:
      break;
  }
  return "untyped";
}

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", value);
}

std::string Value::text() const {
  if (!is_integer_) return format_value(real_);
  return negative_ ? fmt::format("-{}", magnitude_) : fmt::format("{}", magnitude_);
}

std::string valid_utf8(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  while (!value.empty()) {
    std::size_t bad = 0;
    const std::size_t length = utf8_sequence(value, &bad);
    if (length == 0) {
      out += kReplacementCharacter;
      value.remove_prefix(bad);
      continue;
    }
    out += value.substr(0, length);
    value.remove_prefix(length);
  }
  return out;
}

std::string escape_label_value(std::string_view value) {
  const std::string valid = valid_utf8(value);
  std::string out;
  out.reserve(valid.size());
  for (const char c : valid) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void TextWriter::family(std::string_view name, MetricType type, std::string_view help) {
  fmt::format_to(std::back_inserter(text_), "# HELP {} {}\n# TYPE {} {}\n", name, escape_help(help),
                 name, to_string(type));
}

void TextWriter::sample(std::string_view name, std::span<const Label> labels, Value value) {
  text_ += name;
  if (labels.size() > 0) {
    text_ += '{';
    bool first = true;
    for (const Label& label : labels) {
      if (!first) text_ += ',';
      first = false;
      text_ += label.name;
      text_ += "=\"";
      text_ += escape_label_value(label.value);
      text_ += '"';
    }
    text_ += '}';
  }
  text_ += ' ';
  text_ += value.text();
  text_ += '\n';
}

void TextWriter::single(std::string_view name, MetricType type, std::string_view help,
                        Value value) {
  family(name, type, help);
  sample(name, value);
}

std::optional<std::string_view> Sample::label(std::string_view key) const {
  for (const auto& [k, v] : labels) {
    if (k == key) return std::string_view(v);
  }
  return std::nullopt;
}

std::vector<Sample> parse_text(std::string_view page) {
  std::vector<Sample> out;
  while (!page.empty()) {
    const auto nl = page.find('\n');
    std::string_view line = page.substr(0, nl);
    page = nl == std::string_view::npos ? std::string_view{} : page.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    skip_blanks(line);
    if (line.empty() || line.front() == '#') continue;
    if (auto sample = parse_line(line)) out.push_back(std::move(*sample));
  }
  return out;
}

double sum(const std::vector<Sample>& samples, std::string_view name) {
  double total = 0;
  for (const auto& s : samples) {
    if (s.name == name) total += s.value;
  }
  return total;
}

}  // namespace shmstats::common::prometheus
