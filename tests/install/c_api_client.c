/* A service written in C: pushes a known set of events through the C API (shmstats_c.h) and
 * exits; install_test.cpp checks that they reach a real collector's tally output.
 *   c_api_client PREFIX SERVICE
 * Prints "ok pushed=N dropped=D" and exits 0, or one line naming the failed call and exits 1. */
#include <shmstats/shmstats_c.h>
#include <stdio.h>
#include <string.h>

enum { kCount = 1000, kHistogramValues = 100, kTimings = 10, kSetMembers = 5, kDynamic = 7 };

static int failed(const char* what, shmstats_status status) {
  fprintf(stderr, "c_api_client: %s: %s: %s\n", what, shmstats_status_name(status),
          shmstats_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: c_api_client PREFIX SERVICE\n");
    return 2;
  }
  shmstats_options options;
  shmstats_options_init(&options);
  options.shm_prefix = argv[1];
  options.service = argv[2];
  options.read_environment = 0;
  shmstats_client* client = NULL;
  shmstats_status status = shmstats_client_create(&options, &client);
  if (status != SHMSTATS_OK) return failed("shmstats_client_create", status);

  /* A name the API refuses: a status and a message, no crash. */
  shmstats_handle bad;
  status = shmstats_register(client, SHMSTATS_COUNTER, "bad name with spaces", NULL, 0, &bad);
  if (status != SHMSTATS_E_INVALID_NAME || strlen(shmstats_last_error()) == 0) {
    fprintf(stderr, "c_api_client: an invalid name gave %s\n", shmstats_status_name(status));
    return 1;
  }

  const shmstats_tag route[] = {{"route", "/c"}};
  shmstats_handle requests, gauge, histogram, timing, set;
  if ((status = shmstats_register(client, SHMSTATS_COUNTER, "c_api.requests", route, 1,
                                  &requests)) != SHMSTATS_OK) {
    return failed("register counter", status);
  }
  if ((status = shmstats_register(client, SHMSTATS_GAUGE, "c_api.gauge", NULL, 0, &gauge)) !=
      SHMSTATS_OK) {
    return failed("register gauge", status);
  }
  if ((status = shmstats_register(client, SHMSTATS_HISTOGRAM, "c_api.histogram", NULL, 0,
                                  &histogram)) != SHMSTATS_OK) {
    return failed("register histogram", status);
  }
  if ((status = shmstats_register(client, SHMSTATS_TIMING, "c_api.timing", NULL, 0, &timing)) !=
      SHMSTATS_OK) {
    return failed("register timing", status);
  }
  if ((status = shmstats_register(client, SHMSTATS_SET, "c_api.set", NULL, 0, &set)) !=
      SHMSTATS_OK) {
    return failed("register set", status);
  }
  /* A push through a handle of another kind is refused. */
  if (shmstats_gauge_set(&requests, 1.0) != 0) {
    fprintf(stderr, "c_api_client: a gauge push through a counter handle was accepted\n");
    return 1;
  }

  for (int i = 0; i < kCount; ++i) (void)shmstats_counter_add(&requests, 1.0);
  (void)shmstats_gauge_set(&gauge, 42.0);
  for (int i = 1; i <= kHistogramValues; ++i) (void)shmstats_histogram_record(&histogram, i);
  for (int i = 0; i < kTimings; ++i) (void)shmstats_timing_record_ms(&timing, 5.0);
  for (int i = 1; i <= kSetMembers; ++i) (void)shmstats_set_add(&set, i);
  for (int i = 0; i < kDynamic; ++i) (void)shmstats_count(client, "c_api.dynamic", 1.0, route, 1);

  shmstats_stats stats;
  if ((status = shmstats_client_stats(client, &stats)) != SHMSTATS_OK) {
    return failed("stats", status);
  }
  char segment[256];
  if (shmstats_client_segment_name(client, segment, sizeof segment) == 0) {
    fprintf(stderr, "c_api_client: no segment name\n");
    return 1;
  }
  printf("ok pushed=%llu dropped=%llu version=%s layout=%u segment=%s\n",
         (unsigned long long)stats.pushed, (unsigned long long)stats.dropped, shmstats_version(),
         shmstats_layout_version(), segment);
  fflush(stdout);
  shmstats_client_destroy(client);
  return 0;
}
