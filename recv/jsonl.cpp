#include "recv/jsonl.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <iterator>
#include <limits>
#include <vector>

#include "shm/layout.h"

namespace shmstats::recv {
namespace {

constexpr std::int64_t kNsPerSecond = 1'000'000'000;
constexpr std::int64_t kSecondsPerDay = 86'400;
constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Length of the valid UTF-8 sequence at the start of `s` (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF), or 0 if it is not one.
std::size_t utf8_sequence_length(std::string_view s) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  auto cont = [&](std::size_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    if (i >= s.size()) return false;
    const auto b = static_cast<unsigned char>(s[i]);
    return b >= lo && b <= hi;
  };
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if (b0 == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (b0 >= 0xE1 && b0 <= 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (b0 == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xF1 && b0 <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

template <class T>
void append_number(std::string& out, T value) {
  // Whole numbers below 2^53 (counters, most gauges and every sample rate of 1) print the same
  // digits as the shortest form below, through integer formatting, which is several times faster
  // than the shortest-float search: that search was the receive thread's largest cost at 1 M
  // events/s (perf). -0 keeps its sign through the float path.
  constexpr T kExactIntegers = static_cast<T>(std::uint64_t{1} << std::numeric_limits<T>::digits);
  if (std::fabs(value) < kExactIntegers && std::trunc(value) == value &&
      !(value == 0 && std::signbit(value))) {
    const fmt::format_int digits(static_cast<std::int64_t>(value));
    out.append(digits.data(), digits.size());
    return;
  }
  if (std::isnan(value)) {
    out += "\"NaN\"";
  } else if (std::isinf(value)) {
    out += value > 0 ? "\"+Inf\"" : "\"-Inf\"";
  } else {
    // fmt's "{}" is the shortest representation that round-trips, and always valid JSON
    // ("3", "0.1", "1e+20", "-0").
    fmt::format_to(std::back_inserter(out), "{}", value);
  }
}

}  // namespace

void append_rfc3339_ns(std::string& out, std::int64_t unix_ns) {
  // Quotient and remainder rather than `x - q * d`: the product overflows at the int64 extremes.
  std::int64_t seconds = unix_ns / kNsPerSecond;
  std::int64_t fraction_ns = unix_ns % kNsPerSecond;
  if (fraction_ns < 0) {
    fraction_ns += kNsPerSecond;
    --seconds;
  }
  // The events of a datagram mostly share their second: the date and time of day are formatted
  // once per second (per thread), and only the nine fraction digits per event. This took the
  // timestamp from the largest share of the receive thread's time to a small one (callgrind,
  // when this was written).
  thread_local std::int64_t cached_seconds = std::numeric_limits<std::int64_t>::min();
  thread_local std::string cached_prefix;
  if (seconds != cached_seconds) {
    std::int64_t days = seconds / kSecondsPerDay;
    std::int64_t second_of_day = seconds % kSecondsPerDay;
    if (second_of_day < 0) {
      second_of_day += kSecondsPerDay;
      --days;
    }
    const std::chrono::year_month_day date{
        std::chrono::sys_days{std::chrono::days{static_cast<std::chrono::days::rep>(days)}}};
    cached_prefix.clear();
    fmt::format_to(std::back_inserter(cached_prefix), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                   static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                   static_cast<unsigned>(date.day()), second_of_day / 3600, second_of_day / 60 % 60,
                   second_of_day % 60);
    cached_seconds = seconds;
  }
  out += cached_prefix;
  char digits[9];
  auto f = static_cast<std::uint32_t>(fraction_ns);
  for (int i = 8; i >= 0; --i) {
    digits[i] = static_cast<char>('0' + f % 10);
    f /= 10;
  }
  out.append(digits, sizeof(digits));
  out += 'Z';
}

std::string format_rfc3339_ns(std::int64_t unix_ns) {
  std::string out;
  append_rfc3339_ns(out, unix_ns);
  return out;
}

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence_length(text.substr(i));
      if (n == 0) {
        out += kReplacementChar;
        ++i;
      } else {
        out.append(text.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}

void append_json_number(std::string& out, double value) { append_number(out, value); }
void append_json_number(std::string& out, float value) { append_number(out, value); }

std::size_t append_lines(std::string& out, const proto::DecodedDatagram& datagram) {
  const auto& header = datagram.header;
  // Per series, once per datagram: the fields after "time" up to "kind", and the trailing fields.
  std::vector<std::string> heads(datagram.series.size());
  std::vector<std::string> tails(datagram.series.size());
  std::string sender_fields;
  sender_fields += ",\"host\":";
  append_json_string(sender_fields, datagram.host);
  fmt::format_to(std::back_inserter(sender_fields),
                 ",\"sender\":\"{:016x}\",\"epoch\":{},\"sequence\":{}}}\n", header.sender_id,
                 header.sender_epoch, header.sequence);
  for (std::size_t i = 0; i < datagram.series.size(); ++i) {
    const auto& def = datagram.series[i];
    auto& head = heads[i];
    head += ",\"name\":";
    append_json_string(head, def.name);
    head += ",\"tags\":{";
    bool first = true;
    for (const auto& [key, value] : def.tags) {
      if (!first) head += ',';
      first = false;
      append_json_string(head, key);
      head += ':';
      append_json_string(head, value);
    }
    head += "},\"kind\":";
    auto& tail = tails[i];
    tail += ",\"service\":";
    append_json_string(tail, def.service);
    tail += sender_fields;
  }
  for (const auto& event : datagram.points) {
    out += "{\"time\":\"";
    append_rfc3339_ns(out, event.time_unix_ns);
    out += '"';
    out += heads[datagram.series_index(event.series)];
    append_json_string(out, shm::to_string(event.kind));
    out += ",\"value\":";
    append_json_number(out, event.value);
    out += ",\"sample_rate\":";
    append_json_number(out, event.sample_rate);
    out += tails[datagram.series_index(event.series)];
  }
  for (const auto& aggregate : datagram.aggregates) {
    out += "{\"time\":\"";
    append_rfc3339_ns(out, aggregate.time_unix_ns);
    out += '"';
    out += heads[datagram.series_index(aggregate.series)];
    append_json_string(out, shm::to_string(aggregate.series->kind));
    fmt::format_to(std::back_inserter(out),
                   ",\"aggregate\":{{\"count\":{},\"sum\":", aggregate.count);
    append_json_number(out, aggregate.sum);
    out += ",\"min\":";
    append_json_number(out, aggregate.min);
    out += ",\"max\":";
    append_json_number(out, aggregate.max);
    out += ",\"last\":";
    append_json_number(out, aggregate.last);
    out += '}';
    out += tails[datagram.series_index(aggregate.series)];
  }
  return datagram.points.size() + datagram.aggregates.size();
}

}  // namespace shmstats::recv
