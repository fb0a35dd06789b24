/* shmstats C API: a thin layer over shmstats.h for services in C and for other languages through
 * their C interfaces (Go's cgo, Rust's FFI, Python's ctypes or cffi). Same library, same rings,
 * same contracts as the C++ API; only plain C types cross it and no exception ever does.
 *
 * Errors: every call that can fail on the cold path returns a shmstats_status. SHMSTATS_OK is 0;
 * on any other value shmstats_last_error() returns this thread's message for the last failed call
 * (it names the broken rule, the offending value and the limit). Pushes are the hot path: they
 * return 1 when the event reached a ring or was folded, 0 when it was dropped (counted by reason
 * in the segment), exactly like the C++ handles' bool; they never allocate, lock or block.
 *
 * Threads: as in shmstats.h. Any thread may register and push; a client must outlive its handles
 * and is destroyed by one thread once no other thread uses it.
 *
 * Strings: NUL-terminated UTF-8; they are copied during the call, never kept.
 */
#ifndef SHMSTATS_SHMSTATS_C_H
#define SHMSTATS_SHMSTATS_C_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define SHMSTATS_C_API __attribute__((visibility("default")))
#else
#define SHMSTATS_C_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The values of shmstats::ErrorCode, shifted by one (0 is success), then the C layer's own. */
typedef enum shmstats_status {
  SHMSTATS_OK = 0,
  SHMSTATS_E_INVALID_NAME = 1,
  SHMSTATS_E_INVALID_TAG = 2,
  SHMSTATS_E_TOO_MANY_TAGS = 3,
  SHMSTATS_E_DUPLICATE_TAG = 4,
  SHMSTATS_E_SERIES_TABLE_FULL = 5,
  SHMSTATS_E_STRING_POOL_FULL = 6,
  SHMSTATS_E_KIND_MISMATCH = 7,
  SHMSTATS_E_INVALID_OPTIONS = 8,
  SHMSTATS_E_NO_SPACE = 9,
  SHMSTATS_E_SYSTEM = 10,
  SHMSTATS_E_SERIES_TOO_LARGE = 11,
  SHMSTATS_E_INVALID_ARGUMENT = 100, /* a NULL pointer or an out-of-range enum */
  SHMSTATS_E_OUT_OF_MEMORY = 101,
  SHMSTATS_E_INTERNAL = 102 /* an unexpected C++ exception, caught at the boundary */
} shmstats_status;

/* shmstats::Kind's registrable kinds (a gauge's add is a push, not a kind of its own). */
typedef enum shmstats_kind {
  SHMSTATS_COUNTER = 1,
  SHMSTATS_GAUGE = 2,
  SHMSTATS_HISTOGRAM = 4,
  SHMSTATS_TIMING = 5,
  SHMSTATS_SET = 6
} shmstats_kind;

/* shmstats::Overflow: what a push does when its ring is full. */
typedef enum shmstats_overflow {
  SHMSTATS_OVERFLOW_DEFAULT = 0, /* fold counters, histograms, timings; drop newest gauges, sets */
  SHMSTATS_OVERFLOW_FOLD = 1,
  SHMSTATS_OVERFLOW_DROP_NEWEST = 2,
  SHMSTATS_OVERFLOW_DROP_OLDEST = 3,
  SHMSTATS_OVERFLOW_PRIORITY = 4,
  SHMSTATS_OVERFLOW_SAMPLED = 5
} shmstats_overflow;

typedef enum shmstats_timestamps {
  SHMSTATS_TIMESTAMPS_PRODUCER = 0,
  SHMSTATS_TIMESTAMPS_COLLECTOR = 1
} shmstats_timestamps;

/* Receives one line of text (not NUL-terminated; without a newline) and the options' log_user. */
typedef void (*shmstats_log_fn)(void* user, const char* line, size_t length);

/* shmstats::Options. Fill with shmstats_options_init, then change what you need. */
typedef struct shmstats_options {
  const char* service; /* NULL or "": the program name */
  uint32_t rings;
  uint32_t ring_capacity; /* a power of two */
  uint32_t series_capacity;
  uint32_t strings_bytes;
  shmstats_overflow overflow;
  uint32_t sample_keep_one_in;
  uint32_t mode;          /* 0600, 0640 or 0660 */
  const char* shm_prefix; /* NULL: "shmstats" */
  shmstats_timestamps timestamps;
  int read_environment; /* nonzero: SHMSTATS_* variables override these fields */
  shmstats_log_fn log;  /* NULL: stderr */
  void* log_user;
} shmstats_options;

typedef struct shmstats_tag {
  const char* key;
  const char* value;
} shmstats_tag;

/* A registered series. Plain data, cheap to copy; treat the fields as opaque. A zeroed handle is
 * inert (its pushes return 0). */
typedef struct shmstats_handle {
  void* state;
  uint32_t series_id;
  uint8_t kind;
  uint8_t overflow;
  uint8_t flags;
  uint8_t reserved;
} shmstats_handle;

/* shmstats::Stats: producer-side totals (a racy snapshot). */
typedef struct shmstats_stats {
  uint64_t pushed;
  uint64_t folded;
  uint64_t dropped;
  uint32_t series;
  uint32_t rings_owned;
} shmstats_stats;

typedef struct shmstats_client shmstats_client; /* opaque */

/* ---- versions and errors (any thread) ---- */

/* The library's version, e.g. "0.1.0"; static storage. */
SHMSTATS_C_API const char* shmstats_version(void);
/* The segment layout version this library writes. */
SHMSTATS_C_API uint32_t shmstats_layout_version(void);
/* This thread's message for its last failed call ("" if none); valid until its next call. */
SHMSTATS_C_API const char* shmstats_last_error(void);
/* The status's name, e.g. "invalid_tag"; static storage. */
SHMSTATS_C_API const char* shmstats_status_name(shmstats_status status);

/* ---- client (cold path) ---- */

/* Fills `options` with the defaults of shmstats::Options. */
SHMSTATS_C_API void shmstats_options_init(shmstats_options* options);
/* Strict: creates this process's segment or fails (SHMSTATS_E_INVALID_OPTIONS, _NO_SPACE,
 * _SYSTEM). `options` may be NULL (defaults). On success *out is the client. */
SHMSTATS_C_API shmstats_status shmstats_client_create(const shmstats_options* options,
                                                      shmstats_client** out);
/* Never fails for lack of shared memory: the client is then disabled (one line to the log, every
 * push returns 0). *out is set unless the status is _INVALID_ARGUMENT or _OUT_OF_MEMORY. */
SHMSTATS_C_API shmstats_status shmstats_client_create_or_disabled(const shmstats_options* options,
                                                                  shmstats_client** out);
/* Marks the segment closed (the collector drains and removes it) and frees the client. NULL is
 * ignored. */
SHMSTATS_C_API void shmstats_client_destroy(shmstats_client* client);
/* 1 when enabled, 0 when disabled (or client is NULL). */
SHMSTATS_C_API int shmstats_client_enabled(const shmstats_client* client);
SHMSTATS_C_API shmstats_status shmstats_client_stats(const shmstats_client* client,
                                                     shmstats_stats* out);
/* Copies the segment's name, NUL-terminated and cut to `size`; returns its full length (0 when
 * disabled). */
SHMSTATS_C_API size_t shmstats_client_segment_name(const shmstats_client* client, char* buffer,
                                                   size_t size);

/* Registers (or finds) a series of `kind` with `tag_count` tags (tags may be NULL if 0). */
SHMSTATS_C_API shmstats_status shmstats_register(shmstats_client* client, shmstats_kind kind,
                                                 const char* name, const shmstats_tag* tags,
                                                 size_t tag_count, shmstats_handle* out);
/* The handle's overflow strategy and priority (0 normal, 1 high), as with_overflow and
 * with_priority in C++. */
SHMSTATS_C_API shmstats_status shmstats_handle_set_overflow(shmstats_handle* handle,
                                                            shmstats_overflow overflow);
SHMSTATS_C_API shmstats_status shmstats_handle_set_priority(shmstats_handle* handle,
                                                            int high_priority);

/* ---- pushes (hot path: 1 delivered or folded, 0 dropped; never blocks) ---- */

/* Each checks that the handle's kind fits (a mismatch returns 0 and pushes nothing). */
SHMSTATS_C_API int shmstats_counter_add(const shmstats_handle* counter, double n);
SHMSTATS_C_API int shmstats_gauge_set(const shmstats_handle* gauge, double value);
SHMSTATS_C_API int shmstats_gauge_add(const shmstats_handle* gauge, double delta);
SHMSTATS_C_API int shmstats_histogram_record(const shmstats_handle* histogram, double value);
SHMSTATS_C_API int shmstats_timing_record_ms(const shmstats_handle* timing, double ms);
SHMSTATS_C_API int shmstats_set_add(const shmstats_handle* set, double member);

/* The dynamic path (Client::count ...): interned per thread on first use (cold), allocation-free
 * afterwards. A rejected name or tag set is counted (invalid_series) and returns 0. */
SHMSTATS_C_API int shmstats_count(shmstats_client* client, const char* name, double n,
                                  const shmstats_tag* tags, size_t tag_count);
SHMSTATS_C_API int shmstats_gauge(shmstats_client* client, const char* name, double value,
                                  const shmstats_tag* tags, size_t tag_count);
SHMSTATS_C_API int shmstats_observe(shmstats_client* client, const char* name, double value,
                                    const shmstats_tag* tags, size_t tag_count);
SHMSTATS_C_API int shmstats_time_ms(shmstats_client* client, const char* name, double ms,
                                    const shmstats_tag* tags, size_t tag_count);
SHMSTATS_C_API int shmstats_set_member(shmstats_client* client, const char* name, double member,
                                       const shmstats_tag* tags, size_t tag_count);

#ifdef __cplusplus
}
#endif

#endif /* SHMSTATS_SHMSTATS_C_H */
