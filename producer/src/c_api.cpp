// The C API (shmstats/shmstats_c.h) over the C++ one. Every cold-path entry point catches what
// C++ may throw (allocation, a throwing log sink) and turns it into a status with a message; the
// pushes call the same noexcept code as the C++ handles.
#include <array>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "shmstats/shmstats.h"
#include "shmstats/shmstats_c.h"

struct shmstats_client {
  shmstats::Client client;
};

namespace {

using shmstats::Client;
using shmstats::detail::HandleData;

// The C enums repeat the C++ ones by value.
static_assert(SHMSTATS_COUNTER == static_cast<int>(shmstats::Kind::kCounter));
static_assert(SHMSTATS_GAUGE == static_cast<int>(shmstats::Kind::kGauge));
static_assert(SHMSTATS_HISTOGRAM == static_cast<int>(shmstats::Kind::kHistogram));
static_assert(SHMSTATS_TIMING == static_cast<int>(shmstats::Kind::kTiming));
static_assert(SHMSTATS_SET == static_cast<int>(shmstats::Kind::kSet));
static_assert(SHMSTATS_OVERFLOW_SAMPLED == static_cast<int>(shmstats::Overflow::kSampled));
static_assert(SHMSTATS_E_SERIES_TOO_LARGE ==
              static_cast<int>(shmstats::ErrorCode::kSeriesTooLarge) + 1);

// Tags beyond the C++ limit (16) are refused by the C++ layer; this many go on the stack.
constexpr std::size_t kStackTags = 16;

thread_local std::string t_last_error;

shmstats_status fail(shmstats_status status, std::string_view message) noexcept {
  try {
    t_last_error.assign(message);
  } catch (...) {  // NOLINT(bugprone-empty-catch): no memory for the message; the status says it
    t_last_error.clear();
  }
  return status;
}

shmstats_status fail(const shmstats::Error& error) noexcept {
  return fail(static_cast<shmstats_status>(static_cast<int>(error.code) + 1), error.message);
}

// Runs `body` (which returns a status), turning exceptions into statuses.
template <class F>
shmstats_status guarded(F&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(SHMSTATS_E_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(SHMSTATS_E_INTERNAL, e.what());
  } catch (...) {
    return fail(SHMSTATS_E_INTERNAL, "unknown exception");
  }
}

shmstats::Options to_options(const shmstats_options* c) {
  shmstats::Options o;
  if (c == nullptr) return o;
  if (c->service != nullptr) o.service = c->service;
  o.rings = c->rings;
  o.ring_capacity = c->ring_capacity;
  o.series_capacity = c->series_capacity;
  o.strings_bytes = c->strings_bytes;
  o.overflow = static_cast<shmstats::Overflow>(c->overflow);
  o.sample_keep_one_in = c->sample_keep_one_in;
  o.mode = c->mode;
  if (c->shm_prefix != nullptr) o.shm_prefix = c->shm_prefix;
  o.timestamps = static_cast<shmstats::Timestamps>(c->timestamps);
  o.read_environment = c->read_environment != 0;
  if (c->log != nullptr) {
    o.log = [fn = c->log, user = c->log_user](std::string_view line) {
      fn(user, line.data(), line.size());
    };
  }
  return o;
}

bool valid_options(const shmstats_options* c) {
  return c == nullptr ||
         (c->overflow >= SHMSTATS_OVERFLOW_DEFAULT && c->overflow <= SHMSTATS_OVERFLOW_SAMPLED &&
          (c->timestamps == SHMSTATS_TIMESTAMPS_PRODUCER ||
           c->timestamps == SHMSTATS_TIMESTAMPS_COLLECTOR));
}

// The C tags as C++ tags, in `storage` (or `spill` when there are more than kStackTags).
shmstats::Tags to_tags(const shmstats_tag* tags, std::size_t count,
                       std::array<shmstats::Tag, kStackTags>& storage,
                       std::vector<shmstats::Tag>& spill) {
  shmstats::Tag* out = storage.data();
  if (count > kStackTags) {
    spill.resize(count);
    out = spill.data();
  }
  for (std::size_t i = 0; i < count; ++i) {
    out[i] = {tags[i].key != nullptr ? tags[i].key : "",
              tags[i].value != nullptr ? tags[i].value : ""};
  }
  return {out, count};
}

template <class H>
shmstats_handle to_c(const H& handle, shmstats_kind kind) noexcept {
  const HandleData d = shmstats::detail::HandleAccess::data(handle);
  return shmstats_handle{d.state,    d.series_id, static_cast<std::uint8_t>(kind),
                         d.overflow, d.flags,     0};
}

template <class H>
shmstats_status register_as(Client& client, shmstats_kind kind, const char* name,
                            shmstats::Tags tags, shmstats_handle* out,
                            shmstats::Result<H> (Client::*make)(std::string_view, shmstats::Tags)) {
  auto made = (client.*make)(name, tags);
  if (!made) return fail(made.error());
  *out = to_c(made.value(), kind);
  return SHMSTATS_OK;
}

int push(const shmstats_handle* h, shmstats_kind expected, shmstats::Kind kind,
         double value) noexcept {
  if (h == nullptr || h->kind != expected) return 0;
  const HandleData d{static_cast<shmstats::detail::ClientState*>(h->state), h->series_id,
                     h->overflow, h->flags};
  return shmstats::detail::push(d, static_cast<std::uint8_t>(kind), value) ? 1 : 0;
}

using DynamicPush = bool (Client::*)(std::string_view, double, shmstats::Tags) noexcept;

int dynamic(shmstats_client* c, DynamicPush method, const char* name, double value,
            const shmstats_tag* tags, std::size_t tag_count) noexcept {
  if (c == nullptr || name == nullptr || (tags == nullptr && tag_count != 0)) return 0;
  try {
    std::array<shmstats::Tag, kStackTags> storage;
    std::vector<shmstats::Tag> spill;
    return (c->client.*method)(name, value, to_tags(tags, tag_count, storage, spill)) ? 1 : 0;
  } catch (...) {  // only the spill vector allocates: more tags than any series may have
    return 0;
  }
}

}  // namespace

extern "C" {

const char* shmstats_version(void) { return shmstats::version().data(); }

uint32_t shmstats_layout_version(void) { return shmstats::layout_version(); }

const char* shmstats_last_error(void) { return t_last_error.c_str(); }

const char* shmstats_status_name(shmstats_status status) {
  switch (status) {
    case SHMSTATS_OK:
      return "ok";
    case SHMSTATS_E_INVALID_NAME:
      return "invalid_name";
    case SHMSTATS_E_INVALID_TAG:
      return "invalid_tag";
    case SHMSTATS_E_TOO_MANY_TAGS:
      return "too_many_tags";
    case SHMSTATS_E_DUPLICATE_TAG:
      return "duplicate_tag";
    case SHMSTATS_E_SERIES_TABLE_FULL:
      return "series_table_full";
    case SHMSTATS_E_STRING_POOL_FULL:
      return "string_pool_full";
    case SHMSTATS_E_KIND_MISMATCH:
      return "kind_mismatch";
    case SHMSTATS_E_INVALID_OPTIONS:
      return "invalid_options";
    case SHMSTATS_E_NO_SPACE:
      return "no_space";
    case SHMSTATS_E_SYSTEM:
      return "system";
    case SHMSTATS_E_SERIES_TOO_LARGE:
      return "series_too_large";
    case SHMSTATS_E_INVALID_ARGUMENT:
      return "invalid_argument";
    case SHMSTATS_E_OUT_OF_MEMORY:
      return "out_of_memory";
    case SHMSTATS_E_INTERNAL:
      return "internal";
  }
  return "unknown";
}

void shmstats_options_init(shmstats_options* options) {
  if (options == nullptr) return;
  const shmstats::Options d;
  *options = shmstats_options{nullptr,
                              d.rings,
                              d.ring_capacity,
                              d.series_capacity,
                              d.strings_bytes,
                              static_cast<shmstats_overflow>(d.overflow),
                              d.sample_keep_one_in,
                              d.mode,
                              nullptr,
                              static_cast<shmstats_timestamps>(d.timestamps),
                              d.read_environment ? 1 : 0,
                              nullptr,
                              nullptr};
}

shmstats_status shmstats_client_create(const shmstats_options* options, shmstats_client** out) {
  if (out == nullptr) return fail(SHMSTATS_E_INVALID_ARGUMENT, "out is NULL");
  *out = nullptr;
  if (!valid_options(options)) {
    return fail(SHMSTATS_E_INVALID_ARGUMENT, "overflow or timestamps is out of range");
  }
  return guarded([&] {
    auto created = Client::create(to_options(options));
    if (!created) return fail(created.error());
    *out = new shmstats_client{std::move(created).value()};
    return SHMSTATS_OK;
  });
}

shmstats_status shmstats_client_create_or_disabled(const shmstats_options* options,
                                                   shmstats_client** out) {
  if (out == nullptr) return fail(SHMSTATS_E_INVALID_ARGUMENT, "out is NULL");
  *out = nullptr;
  if (!valid_options(options)) {
    return fail(SHMSTATS_E_INVALID_ARGUMENT, "overflow or timestamps is out of range");
  }
  return guarded([&] {
    *out = new shmstats_client{Client::create_or_disabled(to_options(options))};
    return SHMSTATS_OK;
  });
}

void shmstats_client_destroy(shmstats_client* client) { delete client; }

int shmstats_client_enabled(const shmstats_client* client) {
  return client != nullptr && client->client.enabled() ? 1 : 0;
}

shmstats_status shmstats_client_stats(const shmstats_client* client, shmstats_stats* out) {
  if (client == nullptr || out == nullptr) {
    return fail(SHMSTATS_E_INVALID_ARGUMENT, "client or out is NULL");
  }
  const shmstats::Stats s = client->client.stats();
  *out = shmstats_stats{s.pushed, s.folded, s.dropped, s.series, s.rings_owned};
  return SHMSTATS_OK;
}

size_t shmstats_client_segment_name(const shmstats_client* client, char* buffer, size_t size) {
  if (client == nullptr) return 0;
  try {
    const std::string name = client->client.segment_name();
    if (buffer != nullptr && size > 0) {
      const std::size_t n = name.size() < size ? name.size() : size - 1;
      std::memcpy(buffer, name.data(), n);
      buffer[n] = '\0';
    }
    return name.size();
  } catch (...) {  // the name's copy could not be allocated
    if (buffer != nullptr && size > 0) buffer[0] = '\0';
    return 0;
  }
}

shmstats_status shmstats_register(shmstats_client* client, shmstats_kind kind, const char* name,
                                  const shmstats_tag* tags, size_t tag_count,
                                  shmstats_handle* out) {
  if (client == nullptr || name == nullptr || out == nullptr ||
      (tags == nullptr && tag_count != 0)) {
    return fail(SHMSTATS_E_INVALID_ARGUMENT, "client, name, out or tags is NULL");
  }
  *out = shmstats_handle{};
  return guarded([&] {
    std::array<shmstats::Tag, kStackTags> storage;
    std::vector<shmstats::Tag> spill;
    const shmstats::Tags t = to_tags(tags, tag_count, storage, spill);
    Client& c = client->client;
    switch (kind) {
      case SHMSTATS_COUNTER:
        return register_as(c, kind, name, t, out, &Client::counter);
      case SHMSTATS_GAUGE:
        return register_as(c, kind, name, t, out, &Client::gauge);
      case SHMSTATS_HISTOGRAM:
        return register_as(c, kind, name, t, out, &Client::histogram);
      case SHMSTATS_TIMING:
        return register_as(c, kind, name, t, out, &Client::timing);
      case SHMSTATS_SET:
        return register_as(c, kind, name, t, out, &Client::set);
    }
    return fail(SHMSTATS_E_INVALID_ARGUMENT, "kind is not one of shmstats_kind");
  });
}

shmstats_status shmstats_handle_set_overflow(shmstats_handle* handle, shmstats_overflow overflow) {
  if (handle == nullptr || overflow < SHMSTATS_OVERFLOW_DEFAULT ||
      overflow > SHMSTATS_OVERFLOW_SAMPLED) {
    return fail(SHMSTATS_E_INVALID_ARGUMENT, "handle is NULL or overflow is out of range");
  }
  handle->overflow = static_cast<std::uint8_t>(overflow);
  return SHMSTATS_OK;
}

shmstats_status shmstats_handle_set_priority(shmstats_handle* handle, int high_priority) {
  if (handle == nullptr) return fail(SHMSTATS_E_INVALID_ARGUMENT, "handle is NULL");
  handle->flags = high_priority != 0 ? 1 : 0;  // the event flag of Priority::kHigh
  return SHMSTATS_OK;
}

int shmstats_counter_add(const shmstats_handle* counter, double n) {
  return push(counter, SHMSTATS_COUNTER, shmstats::Kind::kCounter, n);
}
int shmstats_gauge_set(const shmstats_handle* gauge, double value) {
  return push(gauge, SHMSTATS_GAUGE, shmstats::Kind::kGauge, value);
}
int shmstats_gauge_add(const shmstats_handle* gauge, double delta) {
  return push(gauge, SHMSTATS_GAUGE, shmstats::Kind::kGaugeDelta, delta);
}
int shmstats_histogram_record(const shmstats_handle* histogram, double value) {
  return push(histogram, SHMSTATS_HISTOGRAM, shmstats::Kind::kHistogram, value);
}
int shmstats_timing_record_ms(const shmstats_handle* timing, double ms) {
  return push(timing, SHMSTATS_TIMING, shmstats::Kind::kTiming, ms);
}
int shmstats_set_add(const shmstats_handle* set, double member) {
  return push(set, SHMSTATS_SET, shmstats::Kind::kSet, member);
}

int shmstats_count(shmstats_client* client, const char* name, double n, const shmstats_tag* tags,
                   size_t tag_count) {
  return dynamic(client, &Client::count, name, n, tags, tag_count);
}
int shmstats_gauge(shmstats_client* client, const char* name, double value,
                   const shmstats_tag* tags, size_t tag_count) {
  return dynamic(client, &Client::gauge_set, name, value, tags, tag_count);
}
int shmstats_observe(shmstats_client* client, const char* name, double value,
                     const shmstats_tag* tags, size_t tag_count) {
  return dynamic(client, &Client::observe, name, value, tags, tag_count);
}
int shmstats_time_ms(shmstats_client* client, const char* name, double ms, const shmstats_tag* tags,
                     size_t tag_count) {
  return dynamic(client, &Client::time_ms, name, ms, tags, tag_count);
}
int shmstats_set_member(shmstats_client* client, const char* name, double member,
                        const shmstats_tag* tags, size_t tag_count) {
  return dynamic(client, &Client::set_add, name, member, tags, tag_count);
}

}  // extern "C"
