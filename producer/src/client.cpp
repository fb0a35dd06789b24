// The producer's cold path: options and environment, segment creation, series registration, the
// dynamic (interned) path, fork handling and the live-client registry.
#include <fmt/format.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <type_traits>
#include <unordered_map>

#include "producer/src/state.h"
#include "shm/clock.h"

namespace shmstats {
namespace detail {
namespace {

// ---- public enums ----------------------------------------------------------------------------

// shmstats.h repeats shm/layout.h's Kind and Overflow (the public header includes nothing from
// shm/), and this file casts them by value (Options::overflow, Client::dynamic_push): every
// enumerator must keep the layout's value, and the last must be the layout's last.
template <class Public, class Layout>
constexpr bool same_value(Public public_value, Layout layout_value) noexcept {
  return static_cast<std::underlying_type_t<Public>>(public_value) ==
         static_cast<std::underlying_type_t<Layout>>(layout_value);
}

static_assert(
    std::is_same_v<std::underlying_type_t<shmstats::Kind>, std::underlying_type_t<shm::Kind>>);
static_assert(same_value(shmstats::Kind::kCounter, shm::Kind::kCounter));
static_assert(same_value(shmstats::Kind::kGauge, shm::Kind::kGauge));
static_assert(same_value(shmstats::Kind::kGaugeDelta, shm::Kind::kGaugeDelta));
static_assert(same_value(shmstats::Kind::kHistogram, shm::Kind::kHistogram));
static_assert(same_value(shmstats::Kind::kTiming, shm::Kind::kTiming));
static_assert(same_value(shmstats::Kind::kSet, shm::Kind::kSet));
static_assert(static_cast<std::uint8_t>(shmstats::Kind::kSet) == shm::kMaxKind,
              "shm/layout.h has a Kind that shmstats.h lacks");

static_assert(std::is_same_v<std::underlying_type_t<shmstats::Overflow>,
                             std::underlying_type_t<shm::Overflow>>);
static_assert(same_value(shmstats::Overflow::kDefault, shm::Overflow::kDefault));
static_assert(same_value(shmstats::Overflow::kFold, shm::Overflow::kFold));
static_assert(same_value(shmstats::Overflow::kDropNewest, shm::Overflow::kDropNewest));
static_assert(same_value(shmstats::Overflow::kDropOldest, shm::Overflow::kDropOldest));
static_assert(same_value(shmstats::Overflow::kPriority, shm::Overflow::kPriority));
static_assert(same_value(shmstats::Overflow::kSampled, shm::Overflow::kSampled));
static_assert(static_cast<std::uint8_t>(shmstats::Overflow::kSampled) == shm::kMaxOverflow,
              "shm/layout.h has an Overflow that shmstats.h lacks");

// ---- live-client registry ------------------------------------------------------------------

std::mutex& live_mutex() {
  static std::mutex m;
  return m;
}
std::unordered_map<std::uint64_t, ClientState*>& live_clients() {
  static std::unordered_map<std::uint64_t, ClientState*> m;
  return m;
}
std::atomic<std::uint64_t> g_next_uid{1};

// fork(): hold the registry lock across fork so the child inherits it in a known state; in the
// child, give every client a new uid so no thread-local binding to the parent's rings matches.
void atfork_prepare() { live_mutex().lock(); }
void atfork_parent() { live_mutex().unlock(); }
void atfork_child() {
  auto& live = live_clients();
  std::unordered_map<std::uint64_t, ClientState*> renewed;
  for (auto& [uid, st] : live) {
    // Another parent thread may have held it at fork; the child has only this thread.
    new (&st->registry_mutex) std::mutex();
    st->uid = next_uid();
    renewed.emplace(st->uid, st);
  }
  live.swap(renewed);
  new (&live_mutex()) std::mutex();
}

void install_atfork_once() {
  static const int installed = pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  (void)installed;
}

// ---- dynamic-path interning ------------------------------------------------------------------

struct InternEntry {
  std::uint64_t uid = 0;
  std::uint64_t hash = 0;
  std::uint32_t series_id = 0;
  std::uint8_t kind = 0;
};
inline constexpr std::size_t kInternSlots = 1024;  // per thread, 24 KiB; power of two
inline constexpr std::size_t kInternProbe = 8;

struct InternTable {
  std::array<InternEntry, kInternSlots> slots{};
};
thread_local std::unique_ptr<InternTable> t_intern;

ErrorCode to_public(shm::Errc code) {
  switch (code) {
    case shm::Errc::kInvalidName:
      return ErrorCode::kInvalidName;
    case shm::Errc::kInvalidTag:
      return ErrorCode::kInvalidTag;
    case shm::Errc::kTooManyTags:
      return ErrorCode::kTooManyTags;
    case shm::Errc::kDuplicateTag:
      return ErrorCode::kDuplicateTag;
    case shm::Errc::kSeriesTableFull:
      return ErrorCode::kSeriesTableFull;
    case shm::Errc::kStringPoolFull:
      return ErrorCode::kStringPoolFull;
    case shm::Errc::kKindMismatch:
      return ErrorCode::kKindMismatch;
    case shm::Errc::kInvalidOptions:
      return ErrorCode::kInvalidOptions;
    case shm::Errc::kNoSpace:
      return ErrorCode::kNoSpace;
    case shm::Errc::kSeriesTooLarge:
      return ErrorCode::kSeriesTooLarge;
    default:
      return ErrorCode::kSystem;
  }
}

Error reject(ClientState& st, shm::Errc code, std::string message) {
  if (st.header != nullptr) {
    st.header->series_rejected[static_cast<std::size_t>(code) % 16].fetch_add(
        1, std::memory_order_relaxed);
  }
  return Error{to_public(code), std::move(message)};
}

// Publishes entry `id` with `text` into the current segment. Caller holds registry_mutex.
void publish_entry(ClientState& st, std::uint32_t id, shm::Kind kind, std::string_view text,
                   std::size_t name_len, std::size_t tag_count, std::uint64_t hash) {
  std::memcpy(st.segment->strings() + st.strings_used, text.data(), text.size());
  shm::SeriesEntry& e = st.segment->series_entry(id);
  e.id = id;
  e.hash = hash;
  e.text_offset = st.strings_used;
  e.text_len = static_cast<std::uint16_t>(text.size());
  e.name_len = static_cast<std::uint8_t>(name_len);
  e.kind = static_cast<std::uint8_t>(kind);
  e.tag_count = static_cast<std::uint8_t>(tag_count);
  e.overflow = st.overflow_for_kind[static_cast<std::size_t>(kind)];
  e.fold_min_bits.store(std::bit_cast<std::uint64_t>(std::numeric_limits<double>::infinity()),
                        std::memory_order_relaxed);
  e.fold_max_bits.store(std::bit_cast<std::uint64_t>(-std::numeric_limits<double>::infinity()),
                        std::memory_order_relaxed);
  st.strings_used += static_cast<std::uint32_t>(text.size());
  st.header->strings_used.store(st.strings_used, std::memory_order_relaxed);
  // release: the entry's fields and text are complete before a reader sees it published; pairs
  // with the acquire load in Segment::read_series.
  e.state.store(shm::kSeriesPublished, std::memory_order_release);
  // release: pairs with the acquire load of series_count in Segment::series_count.
  st.header->series_count.store(id + 1, std::memory_order_release);
}

Result<bool> parse_u32(const char* var, const char* text, std::uint32_t& out, int base = 10) {
  std::uint32_t v = 0;
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, v, base);
  if (ec != std::errc() || ptr != end || ptr == text) {
    return Error{ErrorCode::kInvalidOptions,
                 fmt::format("environment variable {}=\"{}\" is not a whole number", var,
                             shm::escape_for_message(text))};
  }
  out = v;
  return true;
}

Result<bool> parse_overflow(std::string_view text, Overflow& out) {
  static constexpr std::pair<std::string_view, Overflow> kNames[] = {
      {"default", Overflow::kDefault},        {"fold", Overflow::kFold},
      {"drop_newest", Overflow::kDropNewest}, {"drop_oldest", Overflow::kDropOldest},
      {"priority", Overflow::kPriority},      {"sampled", Overflow::kSampled}};
  for (const auto& [name, value] : kNames) {
    if (text == name) {
      out = value;
      return true;
    }
  }
  return Error{ErrorCode::kInvalidOptions,
               fmt::format("environment variable SHMSTATS_OVERFLOW=\"{}\" is not one of default, "
                           "fold, drop_newest, drop_oldest, priority, sampled",
                           shm::escape_for_message(text))};
}

// Environment variables override the options given in code, so an operator can tune a service
// without rebuilding it.
Result<bool> apply_environment(Options& o) {
  struct U32Var {
    const char* name;
    std::uint32_t* target;
    int base;
  };
  const U32Var vars[] = {{"SHMSTATS_RINGS", &o.rings, 10},
                         {"SHMSTATS_RING_CAPACITY", &o.ring_capacity, 10},
                         {"SHMSTATS_SERIES_CAPACITY", &o.series_capacity, 10},
                         {"SHMSTATS_STRINGS_BYTES", &o.strings_bytes, 10},
                         {"SHMSTATS_SAMPLE_KEEP_ONE_IN", &o.sample_keep_one_in, 10},
                         {"SHMSTATS_SHM_MODE", &o.mode, 8}};
  for (const auto& v : vars) {
    if (const char* text = std::getenv(v.name)) {
      auto r = parse_u32(v.name, text, *v.target, v.base);
      if (!r) return r.error();
    }
  }
  if (const char* text = std::getenv("SHMSTATS_OVERFLOW")) {
    auto r = parse_overflow(text, o.overflow);
    if (!r) return r.error();
  }
  if (const char* text = std::getenv("SHMSTATS_TIMESTAMPS")) {
    const std::string_view t(text);
    if (t == "producer") {
      o.timestamps = Timestamps::kProducer;
    } else if (t == "collector") {
      o.timestamps = Timestamps::kCollector;
    } else {
      return Error{ErrorCode::kInvalidOptions,
                   fmt::format("environment variable SHMSTATS_TIMESTAMPS=\"{}\" is not one of "
                               "producer, collector",
                               shm::escape_for_message(t))};
    }
  }
  if (const char* text = std::getenv("SHMSTATS_SERVICE")) o.service = text;
  if (const char* text = std::getenv("SHMSTATS_SHM_PREFIX")) o.shm_prefix = text;
  return true;
}

void resolve_overflow(ClientState& st) {
  const auto chosen = st.options.default_overflow;
  for (std::uint8_t k = 1; k <= shm::kMaxKind; ++k) {
    const auto kind = static_cast<shm::Kind>(k);
    shm::Overflow resolved = chosen;
    if (chosen == shm::Overflow::kDefault) {
      const bool foldable = kind == shm::Kind::kCounter || kind == shm::Kind::kHistogram ||
                            kind == shm::Kind::kTiming;
      resolved = foldable ? shm::Overflow::kFold : shm::Overflow::kDropNewest;
    }
    st.overflow_for_kind[k] = static_cast<std::uint8_t>(resolved);
  }
}

// Maps a new segment into `st` (creation, or re-creation in a forked child).
Result<bool> open_segment(ClientState& st) {
  auto seg = shm::Segment::create(st.options, st.segments_created);
  if (!seg) return Error{to_public(seg.error().code), seg.error().message};
  ++st.segments_created;
  st.segment = std::make_unique<shm::Segment>(std::move(seg).value());
  st.header = &st.segment->header();
  st.owner_pid = ::getpid();
  st.strings_used = 0;
  return true;
}

struct MadeState {
  std::unique_ptr<ClientState> state;
  std::optional<Error> error;  // set: `state` has no segment, for this reason
};

// The state of a new client: with its segment, or without one and the reason it has none.
MadeState make_client_state(Options options) {
  install_atfork_once();
  auto st = std::make_unique<ClientState>();
  st->uid = next_uid();
  st->owner_pid = ::getpid();
  st->log = options.log;
  const Options defaults;
  st->series_capacity = defaults.series_capacity;
  st->strings_size = defaults.strings_bytes;
  if (options.read_environment) {
    if (auto env = apply_environment(options); !env) return {std::move(st), env.error()};
  }
  st->options.service = options.service;
  st->options.ring_count = options.rings;
  st->options.ring_capacity = options.ring_capacity;
  st->options.series_capacity = options.series_capacity;
  st->options.strings_size = options.strings_bytes;
  st->options.default_overflow = static_cast<shm::Overflow>(options.overflow);
  st->options.sample_keep_one_in = options.sample_keep_one_in;
  st->options.mode = options.mode;
  st->options.prefix = options.shm_prefix;
  if (shm::check_options(st->options)) {
    // Registration limits come from the options if they are valid, else the defaults (for a
    // client disabled because of them).
    st->series_capacity = options.series_capacity;
    st->strings_size = options.strings_bytes;
  }
  if (auto r = open_segment(*st); !r) return {std::move(st), r.error()};
  st->ring_count = options.rings;
  st->ring_capacity = options.ring_capacity;
  st->priority_limit = options.ring_capacity - options.ring_capacity / 8;
  st->sample_threshold = options.ring_capacity / 4 * 3;
  st->keep_one_in = options.sample_keep_one_in;
  st->sample_rate = 1.0F / static_cast<float>(options.sample_keep_one_in);
  st->stamp_events = options.timestamps != Timestamps::kCollector;
  resolve_overflow(*st);
  register_live(st.get());
  return {std::move(st), std::nullopt};
}

// The one line a client writes when it goes disabled: the reason, the directory, what to do.
std::string disabled_line(const ClientState& st, const Error& error) {
  const std::string_view dir = shm::kShmDirectory;
  std::string advice;
  switch (error.code) {
    case ErrorCode::kNoSpace:
      advice = fmt::format(
          "free space in {0} or enlarge it (e.g. mount -o remount,size=512M {0}), or make the "
          "segment smaller (SHMSTATS_RINGS, SHMSTATS_RING_CAPACITY, SHMSTATS_SERIES_CAPACITY)",
          dir);
      break;
    case ErrorCode::kInvalidOptions:
      advice = "correct the option or environment variable named above";
      break;
    default:
      advice = fmt::format(
          "check that {} is a mounted tmpfs, not read-only, in which this user may create files",
          dir);
      break;
  }
  const std::string service =
      st.options.service.empty()
          ? std::string()
          : fmt::format(" for service \"{}\"",
                        shm::escape_for_message(st.options.service, shm::kMaxServiceNameBytes));
  return fmt::format(
      "shmstats: metrics disabled{} (pid {}): no shared-memory segment in {}: {}. To fix: {}. The "
      "service keeps running; its pushes return false and are counted as dropped (reason "
      "disabled).",
      service, ::getpid(), dir, error.message, advice);
}

void write_log(const LogSink& sink, std::string_view line) {
  if (sink) {
    sink(line);
    return;
  }
  // One write, so that the line is not split by other threads' output.
  std::string text(line);
  text += '\n';
  (void)std::fwrite(text.data(), 1, text.size(), stderr);
  (void)std::fflush(stderr);
}

}  // namespace

void disable(ClientState& st, Error error) noexcept {
  std::string line;
  try {
    line = disabled_line(st, error);
  } catch (const std::exception&) {
    line = "shmstats: metrics disabled: no shared-memory segment (out of memory for the reason)";
  }
  st.creation_error = std::move(error);
  // release: creation_error is complete before a reader sees `disabled`; pairs with the acquire
  // load in Client::creation_error.
  st.disabled.store(true, std::memory_order_release);
  try {
    write_log(st.log, line);
  } catch (const std::exception&) {
    // A log sink that throws loses its line; the client is disabled either way and says so
    // through enabled() and creation_error().
  }
}

void count_drop(ClientState& st, shm::DropReason reason) noexcept {
  const auto i = static_cast<std::size_t>(reason);
  if (st.header != nullptr) {
    st.header->dropped[i].fetch_add(1, std::memory_order_relaxed);
  } else {
    st.local_dropped[i].fetch_add(1, std::memory_order_relaxed);
  }
}

std::uint64_t next_uid() noexcept { return g_next_uid.fetch_add(1, std::memory_order_relaxed); }

void register_live(ClientState* st) {
  std::lock_guard lock(live_mutex());
  live_clients().emplace(st->uid, st);
}

void unregister_live(ClientState* st) {
  std::lock_guard lock(live_mutex());
  live_clients().erase(st->uid);
}

void retire_if_live(std::uint64_t uid, shm::RingHeader* ring) noexcept {
  try {
    std::lock_guard lock(live_mutex());
    if (live_clients().count(uid) == 0) return;
    // release: the ring's last events (tail) are published before it reads as retired; pairs
    // with the acquire load of state when a thread claims the ring.
    ring->state.store(static_cast<std::uint32_t>(shm::RingState::kRetired),
                      std::memory_order_release);
  } catch (const std::exception&) {
    // lock_guard only throws on a broken mutex; the ring then stays owned, which costs a ring
    // slot but never an event (its events are still drained).
  }
}

Result<std::uint32_t> register_series(ClientState& st, shm::Kind kind, std::string_view name,
                                      std::span<const shm::TagView> tags) {
  if (auto valid = shm::validate_series(name, tags); !valid) {
    return reject(st, valid.error().code, valid.error().message);
  }
  std::string text = shm::encode_series_text(name, tags);
  // A forked child that registers before its first push must publish into a segment of its own:
  // the parent's table is the parent's (its next id may be taken by the parent at any time).
  if (!st.disabled.load(std::memory_order_relaxed) && st.owner_pid != ::getpid()) {
    (void)recreate_after_fork(st);
  }
  std::lock_guard lock(st.registry_mutex);
  if (auto it = st.ids.find(text); it != st.ids.end()) {
    const shm::Kind existing = it->second.kind;
    if (existing != kind) {
      return reject(st, shm::Errc::kKindMismatch,
                    fmt::format("series \"{}\" is a {}; it cannot be used as a {}",
                                shm::escape_for_message(name), shm::to_string(existing),
                                shm::to_string(kind)));
    }
    return it->second.id;
  }
  // A disabled client applies the same limits, so registration answers as it would if enabled.
  const auto id = static_cast<std::uint32_t>(st.ids.size());
  if (id >= st.series_capacity) {
    return reject(st, shm::Errc::kSeriesTableFull,
                  fmt::format("the series table is full ({} series); \"{}\" was not registered",
                              st.series_capacity, shm::escape_for_message(name)));
  }
  if (std::uint64_t{st.strings_used} + text.size() > st.strings_size) {
    return reject(
        st, shm::Errc::kStringPoolFull,
        fmt::format("the name pool is full ({} of {} bytes used); \"{}\" needs {}", st.strings_used,
                    st.strings_size, shm::escape_for_message(name), text.size()));
  }
  if (st.header != nullptr) {
    publish_entry(st, id, kind, text, name.size(), tags.size(), shm::series_hash(name, tags));
  } else {
    st.strings_used += static_cast<std::uint32_t>(text.size());
  }
  st.ids.emplace(std::move(text), ClientState::Registered{id, kind});
  st.series_registered.store(id + 1, std::memory_order_relaxed);
  return id;
}

bool recreate_after_fork(ClientState& st) noexcept {
  try {
    std::lock_guard lock(st.registry_mutex);
    if (st.owner_pid == ::getpid()) return st.header != nullptr;  // done already
    // The parent's mapping stays mapped but unused (released, so that no destructor runs
    // anything on the parent's behalf); its series are republished under the same ids so handles
    // made before fork() stay valid in the child.
    const shm::Segment* parent = st.segment.release();
    st.header = nullptr;
    if (auto r = open_segment(st); !r) {
      // The child runs on, disabled: no retry, and no system call, on every later push.
      st.owner_pid = ::getpid();
      disable(st, r.error());
      return false;
    }
    std::vector<std::pair<std::uint32_t, const std::string*>> by_id;
    for (const auto& [text, reg] : st.ids) by_id.emplace_back(reg.id, &text);
    std::sort(by_id.begin(), by_id.end());
    for (const auto& [id, text] : by_id) {
      const shm::SeriesEntry& old = parent->series_entry(id);
      publish_entry(st, id, static_cast<shm::Kind>(old.kind), *text, old.name_len, old.tag_count,
                    old.hash);
    }
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace detail

using detail::ClientState;

Result<Client> Client::create(Options options) {
  auto made = detail::make_client_state(std::move(options));
  if (made.error) return std::move(*made.error);
  return Client(std::move(made.state));
}

Client Client::create_or_disabled(Options options) {
  auto made = detail::make_client_state(std::move(options));
  if (made.error) detail::disable(*made.state, std::move(*made.error));
  return Client(std::move(made.state));
}

Client::Client(std::unique_ptr<ClientState> state) noexcept : state_(std::move(state)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    Client dying(std::move(*this));
    state_ = std::move(other.state_);
  }
  return *this;
}

Client::~Client() {
  if (!state_) return;
  detail::unregister_live(state_.get());
  detail::release_thread_bindings(state_.get());
  // Only the process that created the segment closes it; a forked child whose first push never
  // came leaves the parent's segment alone.
  if (state_->header != nullptr && state_->owner_pid == ::getpid()) {
    auto& h = *state_->header;
    h.state.store(static_cast<std::uint32_t>(shm::SegmentState::kClosing),
                  std::memory_order_release);
    for (std::uint32_t i = 0; i < state_->ring_count; ++i) {
      auto& ring = state_->segment->ring_header(i);
      std::uint32_t owned = static_cast<std::uint32_t>(shm::RingState::kOwned);
      // release: the ring's events are published before it reads as retired.
      ring.state.compare_exchange_strong(owned,
                                         static_cast<std::uint32_t>(shm::RingState::kRetired),
                                         std::memory_order_release, std::memory_order_relaxed);
    }
    // release: everything above is visible to a collector that sees kClosed.
    h.state.store(static_cast<std::uint32_t>(shm::SegmentState::kClosed),
                  std::memory_order_release);
  } else if (state_->owner_pid != ::getpid()) {
    (void)state_->segment.release();  // NOLINT: the parent's mapping; see recreate_after_fork
  }
}

namespace {
template <class H>
Result<H> make_handle(ClientState* st, shm::Kind kind, std::string_view name, Tags tags) {
  if (tags.size() > shm::kMaxTags) {
    return detail::reject(*st, shm::Errc::kTooManyTags,
                          fmt::format("series \"{}\" has {} tags; the limit is {}",
                                      shm::escape_for_message(name), tags.size(), shm::kMaxTags));
  }
  std::array<shm::TagView, shm::kMaxTags> views{};
  std::size_t n = 0;
  for (const Tag& t : tags) views[n++] = shm::TagView{t.key, t.value};
  auto id = detail::register_series(*st, kind, name, std::span(views.data(), n));
  if (!id) return id.error();
  return detail::HandleAccess::make<H>(detail::HandleData{st, id.value(), 0, 0});
}
}  // namespace

Result<Counter> Client::counter(std::string_view name, Tags tags) {
  return make_handle<Counter>(state_.get(), shm::Kind::kCounter, name, tags);
}
Result<Gauge> Client::gauge(std::string_view name, Tags tags) {
  return make_handle<Gauge>(state_.get(), shm::Kind::kGauge, name, tags);
}
Result<Histogram> Client::histogram(std::string_view name, Tags tags) {
  return make_handle<Histogram>(state_.get(), shm::Kind::kHistogram, name, tags);
}
Result<Timing> Client::timing(std::string_view name, Tags tags) {
  return make_handle<Timing>(state_.get(), shm::Kind::kTiming, name, tags);
}
Result<Set> Client::set(std::string_view name, Tags tags) {
  return make_handle<Set>(state_.get(), shm::Kind::kSet, name, tags);
}

bool Client::dynamic_push(Kind kind, std::string_view name, double value, Tags tags) noexcept {
  ClientState* st = state_.get();
  if (st == nullptr) return false;
  if (st->disabled.load(std::memory_order_relaxed)) [[unlikely]] {
    // Before any hashing or interning: a disabled client's push costs a counter increment.
    detail::count_drop(*st, shm::DropReason::kDisabled);
    return false;
  }
  // The series kind is the registered one; gauge deltas go to gauge series.
  const auto series_kind = static_cast<shm::Kind>(kind);
  if (tags.size() > shm::kMaxTags) {
    detail::count_drop(*st, shm::DropReason::kInvalidSeries);
    return false;
  }
  std::array<shm::TagView, shm::kMaxTags> views{};
  std::size_t n = 0;
  for (const Tag& t : tags) views[n++] = shm::TagView{t.key, t.value};
  const std::span<const shm::TagView> tag_span(views.data(), n);
  const std::uint64_t hash = shm::series_hash(name, tag_span);
  detail::HandleData h{st, 0, 0, 0};
  if (detail::t_intern) {
    // Look-up: allocation-free. A hash match is confirmed against the stored text.
    const std::size_t base = hash & (detail::kInternSlots - 1);
    for (std::size_t i = 0; i < detail::kInternProbe; ++i) {
      const auto& e = detail::t_intern->slots[(base + i) & (detail::kInternSlots - 1)];
      if (e.uid == st->uid && e.hash == hash && e.kind == static_cast<std::uint8_t>(kind)) {
        const shm::SeriesEntry& entry = st->segment->series_entry(e.series_id);
        const std::string_view text(st->segment->strings() + entry.text_offset, entry.text_len);
        if (shm::series_text_equals(text, entry.name_len, entry.tag_count, name, tag_span)) {
          h.series_id = e.series_id;
          return detail::push(h, static_cast<std::uint8_t>(kind), value);
        }
      }
    }
  }
  // First sight of this series on this thread: register (cold; allocates) and remember it.
  try {
    if (!detail::t_intern) detail::t_intern = std::make_unique<detail::InternTable>();
    auto id = detail::register_series(*st, series_kind, name, tag_span);
    if (!id) {
      detail::count_drop(*st, shm::DropReason::kInvalidSeries);
      return false;
    }
    const std::size_t base = hash & (detail::kInternSlots - 1);
    std::size_t victim = base;
    for (std::size_t i = 0; i < detail::kInternProbe; ++i) {
      const std::size_t at = (base + i) & (detail::kInternSlots - 1);
      if (detail::t_intern->slots[at].uid != st->uid) {
        victim = at;
        break;
      }
    }
    detail::t_intern->slots[victim] =
        detail::InternEntry{st->uid, hash, id.value(), static_cast<std::uint8_t>(kind)};
    h.series_id = id.value();
  } catch (const std::exception&) {
    detail::count_drop(*st, shm::DropReason::kInvalidSeries);
    return false;
  }
  return detail::push(h, static_cast<std::uint8_t>(kind), value);
}

bool Client::count(std::string_view name, double n, Tags tags) noexcept {
  return dynamic_push(Kind::kCounter, name, n, tags);
}
bool Client::gauge_set(std::string_view name, double value, Tags tags) noexcept {
  return dynamic_push(Kind::kGauge, name, value, tags);
}
bool Client::observe(std::string_view name, double value, Tags tags) noexcept {
  return dynamic_push(Kind::kHistogram, name, value, tags);
}
bool Client::time_ms(std::string_view name, double ms, Tags tags) noexcept {
  return dynamic_push(Kind::kTiming, name, ms, tags);
}
bool Client::set_add(std::string_view name, double member, Tags tags) noexcept {
  return dynamic_push(Kind::kSet, name, member, tags);
}

std::string Client::segment_name() const {
  if (!state_ || !state_->segment) return {};
  return state_->segment->name();
}

bool Client::enabled() const noexcept {
  return state_ && !state_->disabled.load(std::memory_order_relaxed);
}

const Error* Client::creation_error() const noexcept {
  // acquire: pairs with the release store in detail::disable, after which creation_error is
  // never written again.
  if (!state_ || !state_->disabled.load(std::memory_order_acquire)) return nullptr;
  return &state_->creation_error;
}

Stats Client::stats() const noexcept {
  Stats s;
  if (!state_) return s;
  for (const auto& d : state_->local_dropped) s.dropped += d.load(std::memory_order_relaxed);
  if (state_->header == nullptr) {
    s.series = state_->series_registered.load(std::memory_order_relaxed);
    return s;
  }
  const shm::Segment& seg = *state_->segment;
  for (std::uint32_t i = 0; i < state_->ring_count; ++i) {
    const shm::RingStats r = seg.ring_stats(i);
    s.pushed += r.pushed;
    s.folded += r.folded;
    s.dropped += r.dropped_total();
    if (r.state == shm::RingState::kOwned) ++s.rings_owned;
  }
  const shm::SegmentCounters c = seg.counters();
  s.folded += c.folded_no_ring;
  for (const auto d : c.dropped) s.dropped += d;
  s.series = seg.series_count();
  return s;
}

// SHMSTATS_VERSION is the project version, set by producer/CMakeLists.txt.
std::string_view version() noexcept { return SHMSTATS_VERSION; }

std::uint32_t layout_version() noexcept { return shm::kLayoutVersion; }

}  // namespace shmstats
