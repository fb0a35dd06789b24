// The Prometheus text exposition format (version 0.0.4): the one writer of the collector's and
// the receiver's /metrics pages, and the one parser of such pages for the tests and loadgen.
//
// Writer rules: each family is "# HELP name help" then "# TYPE name type", then its samples
// "name{k="v",...} value". HELP text escapes backslash and newline; label values escape
// backslash, double quote and newline, and every byte that is not part of valid UTF-8 becomes
// U+FFFD, so a page whose labels quote untrusted bytes (segment names) still parses. Values print
// in the shortest form that reads back exactly (integers exactly, whatever their size), and
// non-finite ones as +Inf, -Inf and NaN. Metric and label names are the caller's constants and
// are written as given.
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace shmstats::common::prometheus {

enum class MetricType { kCounter, kGauge, kHistogram, kSummary, kUntyped };
std::string_view to_string(MetricType type) noexcept;

struct Label {
  std::string_view name;
  std::string_view value;  // raw: the writer escapes it
};

// A sample's value: a double, or an integer written exactly.
class Value {
 public:
  Value(double v) noexcept : real_(v) {}  // NOLINT(google-explicit-constructor): a value
  template <std::integral T>
  Value(T v) noexcept  // NOLINT(google-explicit-constructor): a value
      : is_integer_(true), negative_(is_negative(v)), magnitude_(magnitude_of(v)) {}
  std::string text() const;

 private:
  template <std::integral T>
  static bool is_negative(T v) noexcept {
    if constexpr (std::is_signed_v<T>) {
      return v < 0;
    } else {
      return false;
    }
  }
  template <std::integral T>
  static std::uint64_t magnitude_of(T v) noexcept {
    // Through the unsigned type: well defined for the most negative value too.
    const auto bits = static_cast<std::uint64_t>(v);
    return is_negative(v) ? std::uint64_t{0} - bits : bits;
  }
  double real_ = 0;
  bool is_integer_ = false;
  bool negative_ = false;
  std::uint64_t magnitude_ = 0;
};

// `value` with every byte that is not part of valid UTF-8 replaced by U+FFFD, nothing escaped (for
// label values that go into protobuf, whose strings must be UTF-8).
std::string valid_utf8(std::string_view value);
// `value` escaped for the inside of a label value's quotes, invalid UTF-8 replaced by U+FFFD.
std::string escape_label_value(std::string_view value);
// `help` escaped for a HELP line (backslash and newline).
std::string escape_help(std::string_view help);
// A double as the format writes it: shortest round-trip form, +Inf, -Inf or NaN.
std::string format_value(double value);

class TextWriter {
 public:
  // "# HELP" and "# TYPE" of the family `name`; its samples follow.
  void family(std::string_view name, MetricType type, std::string_view help);
  void sample(std::string_view name, Value value) { sample(name, {}, value); }
  void sample(std::string_view name, std::initializer_list<Label> labels, Value value) {
    sample(name, std::span<const Label>(labels.begin(), labels.size()), value);
  }
  void sample(std::string_view name, std::span<const Label> labels, Value value);
  // A family of one unlabelled sample.
  void single(std::string_view name, MetricType type, std::string_view help, Value value);
  // The page so far; the writer is empty afterwards.
  std::string take() { return std::exchange(text_, std::string{}); }

 private:
  std::string text_;
};

// One sample line of a parsed page.
struct Sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // in page order, unescaped
  double value = 0;

  // The value of label `key`, if present.
  std::optional<std::string_view> label(std::string_view key) const;
};

// Parses a text page. Comment lines (HELP, TYPE, others), blank lines and malformed lines are
// skipped; a timestamp after the value is read and ignored.
std::vector<Sample> parse_text(std::string_view page);
// Sum of the values of every sample named `name`, whatever its labels; 0 if there is none.
double sum(const std::vector<Sample>& samples, std::string_view name);

}  // namespace shmstats::common::prometheus
