// shmstats producer API: the only header a service includes.
//
// A Client owns this process's shared-memory segment. Handles (Counter, Gauge, Histogram, Timing,
// Set) name one pre-registered series; their methods are the hot path: noexcept, no allocation,
// no lock, no system call, never blocking. The dynamic calls (count, gauge_set, ...) intern the
// name+tags on first use (cold: allocates, takes a lock) and are allocation-free afterwards.
//
// Threads: any thread may push through any handle or dynamic call. The first push of a thread
// claims one of the segment's rings for it (single producer per ring); when the thread exits the
// ring is retired and is reused by a new thread once the collector has drained it. Threads beyond
// the ring count never block: their values fold into the series' accumulators (totals stay exact;
// sets, which cannot fold, are dropped and counted as no_ring). Registration (Client::counter ...)
// may be called from any thread. Handles must not outlive their Client.
//
// fork(): the child never writes into the parent's rings; its first push creates its own segment.
//
// Values: NaN and the infinities are refused by every push (false, counted as invalid_value), since
// no downstream format carries them; every finite double, including -0.0, denormals and +-DBL_MAX,
// is pushed unchanged.
//
// Without shared memory: Client::create fails (for callers who want to stop); create_or_disabled
// always returns a Client, disabled if the segment cannot be made, which logs one line, registers
// series as usual and refuses every push (false, counted as disabled in Client::stats()).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

// Marks what the shared library (libshmstats.so) exports; it is built with hidden visibility, so
// everything else stays internal. Harmless for the static library.
#if defined(__GNUC__)
#define SHMSTATS_API __attribute__((visibility("default")))
#else
#define SHMSTATS_API
#endif

namespace shmstats {

// This library's version, the project version ("0.1.0"), and the version of the segment layout it
// writes (a collector attaches only segments of its own layout version). Any thread.
SHMSTATS_API std::string_view version() noexcept;
SHMSTATS_API std::uint32_t layout_version() noexcept;

enum class ErrorCode : std::uint8_t {
  kInvalidName,
  kInvalidTag,
  kTooManyTags,
  kDuplicateTag,
  kSeriesTableFull,
  kStringPoolFull,
  kKindMismatch,
  kInvalidOptions,
  kNoSpace,
  kSystem,
  kSeriesTooLarge,  // name + tags exceed 1024 bytes together
};

struct Error {
  ErrorCode code;
  std::string message;  // names the rule, the offending value (escaped) and the limit
};

// Either a T or an Error. Returned by every call that can fail on the cold path.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const Error& error() const { return std::get<1>(v_); }
  T* operator->() { return &std::get<0>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Kind and Overflow keep the values of shm/layout.h's enums of the same names, which the segment
// stores (static_asserts in producer/src/client.cpp tie them).
enum class Kind : std::uint8_t {
  kCounter = 1,
  kGauge = 2,
  kGaugeDelta = 3,
  kHistogram = 4,
  kTiming = 5,
  kSet = 6,
};

// What a push does when its ring is full. kDefault: kFold for counters, histograms and timings,
// kDropNewest for gauges and sets. Every event not delivered is counted by reason in the segment.
enum class Overflow : std::uint8_t {
  kDefault = 0,
  kFold = 1,        // fold into the series' count/sum/min/max (last value for gauges)
  kDropNewest = 2,  // drop the event being pushed
  kDropOldest = 3,  // discard the oldest waiting event to make room
  kPriority = 4,    // keep the last 1/8 of the ring for high-priority events
  kSampled = 5,     // above 75% fill keep 1 in N normal events, carrying rate 1/N
};

enum class Priority : std::uint8_t { kNormal = 0, kHigh = 1 };

// Where an event's time comes from.
enum class Timestamps : std::uint8_t {
  // Each push reads the CPU's time-stamp counter: the event's own time, and end-to-end latency
  // measured from it. The clock read is most of a push's cost (BENCHMARKS.md).
  kProducer = 0,
  // No clock read on the push: the collector stamps each event with the time it drained it. The
  // time an event waited in its ring (normally well under a millisecond, up to the ring's depth
  // under load) is then not seen, in event times nor in latency.
  kCollector = 1,
};

struct Tag {
  std::string_view key;
  std::string_view value;
};

// A borrowed list of tags: from a braced list, a vector or a pointer and size.
class Tags {
 public:
  Tags() noexcept = default;
  // The braced list lives until the end of the call's full expression, which outlives every use
  // of a Tags parameter; it is assigned in the body because GCC warns on a member initializer.
  Tags(std::initializer_list<Tag> tags) noexcept : size_(tags.size()) { data_ = tags.begin(); }
  Tags(const std::vector<Tag>& tags) noexcept : data_(tags.data()), size_(tags.size()) {}  // NOLINT
  Tags(const Tag* data, std::size_t size) noexcept : data_(data), size_(size) {}
  const Tag* begin() const noexcept { return data_; }
  const Tag* end() const noexcept { return data_ + size_; }
  std::size_t size() const noexcept { return size_; }

 private:
  const Tag* data_ = nullptr;
  std::size_t size_ = 0;
};

// Receives one line of text, without a newline (see Options::log).
using LogSink = std::function<void(std::string_view line)>;

// Options; each can be overridden by an environment variable (read when the Client is created):
//   SHMSTATS_SERVICE, SHMSTATS_RINGS, SHMSTATS_RING_CAPACITY, SHMSTATS_SERIES_CAPACITY,
//   SHMSTATS_STRINGS_BYTES, SHMSTATS_OVERFLOW (default|fold|drop_newest|drop_oldest|priority|
//   sampled), SHMSTATS_SAMPLE_KEEP_ONE_IN, SHMSTATS_SHM_MODE (0600|0640|0660), SHMSTATS_SHM_PREFIX,
//   SHMSTATS_TIMESTAMPS (producer|collector).
struct Options {
  std::string service;                 // empty: the program name
  std::uint32_t rings = 16;            // producer threads with a ring of their own
  std::uint32_t ring_capacity = 8192;  // events per ring, a power of two
  std::uint32_t series_capacity = 4096;
  std::uint32_t strings_bytes = 256 * 1024;  // pool for names and tags
  Overflow overflow = Overflow::kDefault;
  std::uint32_t sample_keep_one_in = 10;
  std::uint32_t mode = 0600;
  std::string shm_prefix = "shmstats";
  Timestamps timestamps = Timestamps::kProducer;
  bool read_environment = true;
  // Where a client that goes disabled writes its one line (why, the shared-memory directory, what
  // to do): create_or_disabled, or a forked child that cannot make its segment. Empty: stderr.
  // Called on the thread that creates the client (in a forked child: the first thread to push or
  // register), never again for that client.
  LogSink log;
};

// Producer-side totals, summed over the rings and the segment (a racy snapshot).
struct Stats {
  std::uint64_t pushed = 0;   // push attempts that reached a ring
  std::uint64_t folded = 0;   // values folded into series accumulators
  std::uint64_t dropped = 0;  // events dropped, all reasons (a disabled client: every push)
  std::uint32_t series = 0;   // registered series
  std::uint32_t rings_owned = 0;
};

namespace detail {
struct ClientState;
struct HandleData {
  ClientState* state = nullptr;
  std::uint32_t series_id = 0;
  std::uint8_t overflow = 0;  // Overflow; kDefault resolves per kind from the client's options
  std::uint8_t flags = 0;     // event flags (priority)
};
SHMSTATS_API bool push(const HandleData& h, std::uint8_t kind, double value) noexcept;
struct HandleAccess {
  template <class H>
  static H make(HandleData data) noexcept {
    H handle;
    handle.data_ = data;
    return handle;
  }
  // The handle's data, for the C API (shmstats_c.h), which hands it out as a plain struct.
  template <class H>
  static HandleData data(const H& handle) noexcept {
    return handle.data_;
  }
};
}  // namespace detail

// Base of the handle types: cheap to copy, inert when default-constructed (pushes return false).
// Every push refuses NaN and infinities (returns false, counted as invalid_value).
template <class Derived>
class Handle {
 public:
  // Made by a registration (also true for a disabled client's handles, whose pushes fail).
  bool valid() const noexcept { return data_.state != nullptr; }
  std::uint32_t series_id() const noexcept { return data_.series_id; }
  // A copy of this handle that uses another overflow strategy.
  Derived with_overflow(Overflow overflow) const noexcept {
    Derived copy = static_cast<const Derived&>(*this);
    copy.data_.overflow = static_cast<std::uint8_t>(overflow);
    return copy;
  }
  // A copy of this handle whose events carry another priority.
  Derived with_priority(Priority priority) const noexcept {
    Derived copy = static_cast<const Derived&>(*this);
    copy.data_.flags = priority == Priority::kHigh ? 1 : 0;
    return copy;
  }

 protected:
  bool push(Kind kind, double value) const noexcept {
    return detail::push(data_, static_cast<std::uint8_t>(kind), value);
  }
  detail::HandleData data_;
  friend struct detail::HandleAccess;
};

class Counter : public Handle<Counter> {
 public:
  // Adds n (may be fractional; negative values are pushed as given). Any thread.
  [[nodiscard]] bool add(double n = 1.0) noexcept { return push(Kind::kCounter, n); }
};

class Gauge : public Handle<Gauge> {
 public:
  [[nodiscard]] bool set(double value) noexcept { return push(Kind::kGauge, value); }
  // Moves the gauge by delta (StatsD "+3"/"-3").
  [[nodiscard]] bool add(double delta) noexcept { return push(Kind::kGaugeDelta, delta); }
};

class Histogram : public Handle<Histogram> {
 public:
  [[nodiscard]] bool record(double value) noexcept { return push(Kind::kHistogram, value); }
};

class Timing : public Handle<Timing> {
 public:
  [[nodiscard]] bool record_ms(double ms) noexcept { return push(Kind::kTiming, ms); }
  template <class Rep, class Period>
  [[nodiscard]] bool record(std::chrono::duration<Rep, Period> d) noexcept {
    return record_ms(std::chrono::duration<double, std::milli>(d).count());
  }
};

class Set : public Handle<Set> {
 public:
  // Adds a member (an id); the backend counts distinct members per flush.
  [[nodiscard]] bool add(double member) noexcept { return push(Kind::kSet, member); }
};

class SHMSTATS_API Client {
 public:
  // Creates this process's segment. Errors: kInvalidOptions (names the option, or the
  // environment variable, and its value), kNoSpace (/dev/shm full), kSystem (e.g. /dev/shm
  // missing, read-only or not writable by this user). Strict: for callers that stop without
  // metrics. Any thread, once per process.
  static Result<Client> create(Options options = {});

  // Like create, but never fails: if the segment cannot be made (any error create returns) the
  // Client is disabled. A disabled client writes one line to options.log (or stderr) naming the
  // reason, the shared-memory directory and what to do; enabled() is false and creation_error()
  // holds the error. Registration still validates names and tags and returns handles; every push
  // through them or the dynamic path returns false and is counted in stats().dropped (reason
  // disabled, counted in the process since there is no segment), without a lock, allocation or
  // system call. A disabled client stays disabled. Any thread, once per process.
  static Client create_or_disabled(Options options = {});

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();  // marks the segment closed (the collector drains and removes it)

  // Registers (or finds) a series. Cold path, any thread. Errors name the broken rule.
  Result<Counter> counter(std::string_view name, Tags tags = {});
  Result<Gauge> gauge(std::string_view name, Tags tags = {});
  Result<Histogram> histogram(std::string_view name, Tags tags = {});
  Result<Timing> timing(std::string_view name, Tags tags = {});
  Result<Set> set(std::string_view name, Tags tags = {});

  // Dynamic path: interned per thread; allocation-free once this thread has seen the series.
  // A rejected name or tag set is counted (invalid_series) and returns false.
  [[nodiscard]] bool count(std::string_view name, double n = 1.0, Tags tags = {}) noexcept;
  [[nodiscard]] bool gauge_set(std::string_view name, double value, Tags tags = {}) noexcept;
  [[nodiscard]] bool observe(std::string_view name, double value, Tags tags = {}) noexcept;
  [[nodiscard]] bool time_ms(std::string_view name, double ms, Tags tags = {}) noexcept;
  [[nodiscard]] bool set_add(std::string_view name, double member, Tags tags = {}) noexcept;

  // False for a disabled client (see create_or_disabled). Any thread.
  bool enabled() const noexcept;
  // Why the client is disabled; nullptr while it is enabled. Valid as long as the Client. Any
  // thread.
  const Error* creation_error() const noexcept;

  // The current segment's name (changes in a forked child after its first push); empty when
  // disabled.
  std::string segment_name() const;
  Stats stats() const noexcept;

 private:
  explicit Client(std::unique_ptr<detail::ClientState> state) noexcept;
  bool dynamic_push(Kind kind, std::string_view name, double value, Tags tags) noexcept;
  std::unique_ptr<detail::ClientState> state_;
};

}  // namespace shmstats
