#!/usr/bin/env python3
"""A service written in Python: the same events as c_api_client.c, through ctypes.

    c_api_client.py LIBSHMSTATS_SO PREFIX SERVICE

Prints "ok pushed=N dropped=D" and exits 0, or one line naming the failed call and exits 1.
"""
import ctypes
import sys


class Options(ctypes.Structure):
    _fields_ = [("service", ctypes.c_char_p), ("rings", ctypes.c_uint32),
                ("ring_capacity", ctypes.c_uint32), ("series_capacity", ctypes.c_uint32),
                ("strings_bytes", ctypes.c_uint32), ("overflow", ctypes.c_int),
                ("sample_keep_one_in", ctypes.c_uint32), ("mode", ctypes.c_uint32),
                ("shm_prefix", ctypes.c_char_p), ("timestamps", ctypes.c_int),
                ("read_environment", ctypes.c_int), ("log", ctypes.c_void_p),
                ("log_user", ctypes.c_void_p)]


class Tag(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char_p), ("value", ctypes.c_char_p)]


class Handle(ctypes.Structure):
    _fields_ = [("state", ctypes.c_void_p), ("series_id", ctypes.c_uint32),
                ("kind", ctypes.c_uint8), ("overflow", ctypes.c_uint8),
                ("flags", ctypes.c_uint8), ("reserved", ctypes.c_uint8)]


class Stats(ctypes.Structure):
    _fields_ = [("pushed", ctypes.c_uint64), ("folded", ctypes.c_uint64),
                ("dropped", ctypes.c_uint64), ("series", ctypes.c_uint32),
                ("rings_owned", ctypes.c_uint32)]


COUNTER, GAUGE, HISTOGRAM, TIMING, SET = 1, 2, 4, 5, 6
COUNT, HISTOGRAM_VALUES, TIMINGS, SET_MEMBERS, DYNAMIC = 1000, 100, 10, 5, 7


def main():
    if len(sys.argv) != 4:
        print("usage: c_api_client.py LIBSHMSTATS_SO PREFIX SERVICE", file=sys.stderr)
        return 2
    lib = ctypes.CDLL(sys.argv[1])
    lib.shmstats_version.restype = ctypes.c_char_p
    lib.shmstats_last_error.restype = ctypes.c_char_p
    lib.shmstats_status_name.restype = ctypes.c_char_p
    lib.shmstats_client_create.argtypes = [ctypes.POINTER(Options), ctypes.POINTER(ctypes.c_void_p)]
    lib.shmstats_client_destroy.argtypes = [ctypes.c_void_p]
    lib.shmstats_client_stats.argtypes = [ctypes.c_void_p, ctypes.POINTER(Stats)]
    lib.shmstats_register.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p,
                                      ctypes.POINTER(Tag), ctypes.c_size_t,
                                      ctypes.POINTER(Handle)]
    for push in ("counter_add", "gauge_set", "histogram_record", "timing_record_ms", "set_add"):
        getattr(lib, "shmstats_" + push).argtypes = [ctypes.POINTER(Handle), ctypes.c_double]
    lib.shmstats_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_double,
                                   ctypes.POINTER(Tag), ctypes.c_size_t]

    def check(what, status):
        if status != 0:
            print("c_api_client.py: %s: %s: %s" % (
                what, lib.shmstats_status_name(status).decode(),
                lib.shmstats_last_error().decode()), file=sys.stderr)
            sys.exit(1)

    options = Options()
    lib.shmstats_options_init(ctypes.byref(options))
    options.shm_prefix = sys.argv[2].encode()
    options.service = sys.argv[3].encode()
    options.read_environment = 0
    client = ctypes.c_void_p()
    check("shmstats_client_create", lib.shmstats_client_create(ctypes.byref(options),
                                                               ctypes.byref(client)))
    bad = Handle()
    status = lib.shmstats_register(client, COUNTER, b"bad name with spaces", None, 0,
                                   ctypes.byref(bad))
    if lib.shmstats_status_name(status) != b"invalid_name" or not lib.shmstats_last_error():
        print("c_api_client.py: an invalid name gave status %d" % status, file=sys.stderr)
        return 1

    route = (Tag * 1)(Tag(b"route", b"/c"))
    handles = {}
    for kind, name in ((COUNTER, b"c_api.requests"), (GAUGE, b"c_api.gauge"),
                       (HISTOGRAM, b"c_api.histogram"), (TIMING, b"c_api.timing"),
                       (SET, b"c_api.set")):
        handles[kind] = Handle()
        tags, count = (route, 1) if kind == COUNTER else (None, 0)
        check("register " + name.decode(),
              lib.shmstats_register(client, kind, name, tags, count,
                                    ctypes.byref(handles[kind])))
    for _ in range(COUNT):
        lib.shmstats_counter_add(ctypes.byref(handles[COUNTER]), 1.0)
    lib.shmstats_gauge_set(ctypes.byref(handles[GAUGE]), 42.0)
    for i in range(1, HISTOGRAM_VALUES + 1):
        lib.shmstats_histogram_record(ctypes.byref(handles[HISTOGRAM]), float(i))
    for _ in range(TIMINGS):
        lib.shmstats_timing_record_ms(ctypes.byref(handles[TIMING]), 5.0)
    for i in range(1, SET_MEMBERS + 1):
        lib.shmstats_set_add(ctypes.byref(handles[SET]), float(i))
    for _ in range(DYNAMIC):
        lib.shmstats_count(client, b"c_api.dynamic", 1.0, route, 1)

    stats = Stats()
    check("stats", lib.shmstats_client_stats(client, ctypes.byref(stats)))
    print("ok pushed=%d dropped=%d version=%s" % (stats.pushed, stats.dropped,
                                                  lib.shmstats_version().decode()), flush=True)
    lib.shmstats_client_destroy(client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
