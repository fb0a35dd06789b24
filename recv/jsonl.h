// The JSON Lines that shmstats-recv writes: one object per event and per aggregate of a decoded
// datagram, formatted by hand (no DOM) because this runs on the receive thread for every event.
//
// Event:
//   {"time":"2026-11-23T10:30:19.123456789Z","name":"http.requests","tags":{"code":"200"},
//    "kind":"counter","value":1,"sample_rate":1,"service":"checkout","host":"web-1",
//    "sender":"00000000000000ab","epoch":7,"sequence":42}
// Aggregate (values a producer folded while its ring was full): the same fields, but "kind" is the
// series' kind and "value"/"sample_rate" give way to
//    "aggregate":{"count":12,"sum":30.5,"min":1,"max":5,"last":2}
//
// - time: UTC, RFC 3339 with exactly nine fraction digits.
// - numbers: the shortest text that reads back as the same double (float for sample_rate).
//   JSON has no NaN or infinities, so those are written as the strings "NaN", "+Inf", "-Inf"
//   (the spelling Prometheus uses).
// - strings: escaped per RFC 8259; bytes that are not valid UTF-8 become U+FFFD.
// - sender: the 64-bit sender id as 16 lowercase hex digits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proto/datagram.h"

namespace shmstats::recv {

// Appends `unix_ns` (ns since 1970-01-01T00:00:00Z, negative before it) as RFC 3339 UTC with
// nine fraction digits, e.g. "2026-11-23T10:30:19.000000001Z".
void append_rfc3339_ns(std::string& out, std::int64_t unix_ns);
std::string format_rfc3339_ns(std::int64_t unix_ns);

// Appends `text` as a JSON string, quotes included.
void append_json_string(std::string& out, std::string_view text);
// Appends a JSON number, or "NaN"/"+Inf"/"-Inf" (quoted) for a non-finite value.
void append_json_number(std::string& out, double value);
void append_json_number(std::string& out, float value);

// Appends one line (ending in '\n') per event, then per aggregate of `datagram`; returns how many.
std::size_t append_lines(std::string& out, const proto::DecodedDatagram& datagram);

}  // namespace shmstats::recv
