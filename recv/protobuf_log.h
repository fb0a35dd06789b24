// protobuf's own log lines, rate-limited and counted. libprotobuf writes an ERROR line to stderr
// for every string field with invalid UTF-8 that it parses, so without this a sender could make
// shmstats-recv write one log line per datagram, without limit (such a datagram is also rejected
// and counted as malformed bad_payload). The handler counts every message and writes at most one
// line per interval, saying how many it held back since the last one it wrote.
//
// Concurrency: install once, from main, before any thread parses a message (protobuf's
// SetLogHandler is not thread-safe); the handler itself may run on any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>

namespace shmstats::recv {

inline constexpr std::chrono::seconds kProtobufLogInterval{10};

// Routes libprotobuf's log messages through the limiter, writing to `out`. FATAL messages are
// always written (protobuf aborts after them).
void install_protobuf_log_limit(std::chrono::nanoseconds interval = kProtobufLogInterval,
                                std::FILE* out = stderr);

// Messages libprotobuf logged since the install, and those of them not written.
std::uint64_t protobuf_log_messages() noexcept;
std::uint64_t protobuf_log_suppressed() noexcept;

}  // namespace shmstats::recv
