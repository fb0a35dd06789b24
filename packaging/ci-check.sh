#!/usr/bin/env bash
# The shipping check of .ci/run (issue #23), on the release build directory:
#   1. cmake --install into a temporary prefix; the CMake package and shmstats.pc name no Boost,
#      protobuf or fmt; the installed example configuration is what the collector prints;
#   2. examples/service built against that prefix (CMake package, shared and static; pkg-config),
#      a C program built with pkg-config alone, each run against the prefix's collector, whose
#      tally output must show every event;
#   3. the Debian packages (cpack), installed with apt-get, the installed collector and the
#      example service run for a few seconds, systemd-analyze verify on the installed units, then
#      apt-get purge, and nothing of the packages may be left.
#   bash packaging/ci-check.sh     (the release preset's build directory; needs root or sudo)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(pwd)/build/release
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
work=$(mktemp -d)
collector_pid=""
cleanup() {
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null || true
  rm -rf "$work"
  rm -f /dev/shm/shipcheck*
}
trap cleanup EXIT
fail() { echo "ci-check: $*" >&2; exit 1; }

# Units name /usr/bin: configure the packages' prefix (cmake --install --prefix still relocates).
cmake --preset release -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build "$build" -j "$(nproc)" --target shmstats_installables

echo "--- 1. cmake --install into a temporary prefix"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
# lib, or lib/<multiarch> for the /usr prefix (GNUInstallDirs)
libdir=$(dirname "$(dirname "$(find "$prefix" -name shmstats.pc)")")
for f in bin/shmstats-collector bin/shmstats-recv bin/shm-dump bin/shmstats-loadgen \
         include/shmstats/shmstats.h include/shmstats/shmstats_c.h share/shmstats/collector.toml \
         share/man/man1/shmstats-collector.1 lib/systemd/system/shmstats-collector.service \
         lib/systemd/system/shmstats-recv.service; do
  [ -e "$prefix/$f" ] || fail "$f is not installed"
done
soname=$(readelf -d "$libdir/libshmstats.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libshmstats.so.0 ] || fail "SONAME is '$soname'"
[ -f "$libdir/libshmstats.a" ] || fail "libshmstats.a is not installed"
if grep -rhiE 'boost|protobuf|fmt' "$libdir/pkgconfig/shmstats.pc" "$libdir/cmake/shmstats/" |
    grep -qv '^ *#'; then
  fail "the CMake package or shmstats.pc names Boost, protobuf or fmt"
fi
readelf -d "$libdir/libshmstats.so" | grep NEEDED
exported=$(nm -D --defined-only "$libdir/libshmstats.so" | awk '{print $3}' | c++filt |
           grep -cvE '^(shmstats_|shmstats::|SHMSTATS_0)' || true)
[ "$exported" -eq 0 ] || fail "libshmstats.so exports $exported symbols outside the API"
diff <("$prefix/bin/shmstats-collector" --print-config) "$prefix/share/shmstats/collector.toml" ||
  fail "the installed example configuration differs from --print-config"
"$prefix/bin/shmstats-collector" --version

# Starts the collector at $1 for segments shipcheck<N>.* with a tally output in $work/tally.json.
start_collector() {
  rm -f "$work/tally.json"
  "$1" --shm-prefix "$2" --http 127.0.0.1:0 --log-level warn --tally "$work/tally.json" \
    --tally-flush-interval 50ms >"$work/collector.out" 2>"$work/collector.err" &
  collector_pid=$!
  for _ in $(seq 100); do grep -q "collecting prefix" "$work/collector.out" && return 0; sleep 0.1; done
  cat "$work/collector.err"; fail "$1 did not start"
}
stop_collector() {
  kill -TERM "$collector_pid"; wait "$collector_pid" || fail "the collector exited with $?"
  collector_pid=""
}
# Waits until the tally shows `want` in total for series $1 (sum + folded_sum).
expect_total() {
  local name=$1 want=$2 got=""
  for _ in $(seq 100); do
    got=$(python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
print(int(sum(s["sum"]+s["folded_sum"] for s in d["series"] if s["name"]==sys.argv[2])))' \
      "$work/tally.json" "$name" 2>/dev/null || true)
    [ "$got" = "$want" ] && return 0
    sleep 0.1
  done
  fail "series $name: tally shows '$got', expected $want"
}
# Runs an example service binary for 2 s against a collector at $2 and checks its requests arrive.
run_example() {
  local bin=$1 collector=$2 prefix=shipcheck$$_$RANDOM
  start_collector "$collector" "$prefix"
  out=$("$bin" 2 "$prefix") || fail "$bin failed: $out"
  echo "$out"
  sent=$(echo "$out" | sed -n 's/.*requests=\([0-9]*\).*/\1/p')
  expect_total example.requests "$sent"
  stop_collector
}

echo "--- 2. examples/service against the prefix: CMake package (shared, static), pkg-config"
cmake -S examples/service -B "$work/ex-cmake" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/ex-cmake" >/dev/null
run_example "$work/ex-cmake/example-service" "$prefix/bin/shmstats-collector"
cmake -S examples/service -B "$work/ex-static" -DCMAKE_PREFIX_PATH="$prefix" \
  -DSHMSTATS_EXAMPLE_STATIC=ON >/dev/null
cmake --build "$work/ex-static" >/dev/null
if readelf -d "$work/ex-static/example-service" | grep -q libshmstats; then
  fail "the static example links libshmstats.so"
fi
run_example "$work/ex-static/example-service" "$prefix/bin/shmstats-collector"
export PKG_CONFIG_PATH=$libdir/pkgconfig
cmake -S examples/service -B "$work/ex-pc" -DSHMSTATS_EXAMPLE_USE_PKG_CONFIG=ON >/dev/null
cmake --build "$work/ex-pc" >/dev/null
LD_LIBRARY_PATH=$libdir run_example "$work/ex-pc/example-service" "$prefix/bin/shmstats-collector"
echo "pkg-config --cflags --libs shmstats: $(pkg-config --cflags --libs shmstats)"
echo "pkg-config --static --libs shmstats: $(pkg-config --static --libs shmstats)"
# A C service built with pkg-config alone, and the same against the static library.
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror tests/install/c_api_client.c -o "$work/c-shared" \
  $(pkg-config --cflags --libs shmstats)
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror tests/install/c_api_client.c -o "$work/c-static" \
  $(pkg-config --cflags shmstats) "$libdir/libshmstats.a" \
  $(pkg-config --static --libs-only-l shmstats | sed 's/-lshmstats//')
for c in c-shared c-static; do
  p=shipcheck$$_$RANDOM
  start_collector "$prefix/bin/shmstats-collector" "$p"
  LD_LIBRARY_PATH=$libdir "$work/$c" "$p" capi
  expect_total c_api.requests 1000
  stop_collector
done
unset PKG_CONFIG_PATH

echo "--- 3. Debian packages: build, apt-get install, run, purge"
rm -f "$build"/*.deb
(cd "$build" && cpack -G DEB >/dev/null)
debs=("$build"/*.deb)
for d in "${debs[@]}"; do
  echo "$(basename "$d"): $(dpkg-deb -f "$d" Depends)"
done
packages=$(for d in "${debs[@]}"; do dpkg-deb -f "$d" Package; done)
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$sudo apt-get install -y -qq "${debs[@]}" >/dev/null
# shellcheck disable=SC2086
files=$(dpkg -L $packages | sort -u)
/usr/bin/shmstats-collector --version
systemd-analyze verify /usr/lib/systemd/system/shmstats-collector.service \
  /usr/lib/systemd/system/shmstats-recv.service
cmake -S examples/service -B "$work/ex-system" >/dev/null
cmake --build "$work/ex-system" >/dev/null
run_example "$work/ex-system/example-service" /usr/bin/shmstats-collector
# shellcheck disable=SC2086
$sudo apt-get purge -y -qq $packages >/dev/null
left=""
for f in $files; do
  [ -e "$f" ] || continue
  # Directories the packages share with the system (/usr, /usr/lib, ...) stay.
  if [ -d "$f" ] && [ -n "$(dpkg -S "$f" 2>/dev/null)" ]; then continue; fi
  left="$left $f"
done
[ -z "$left" ] || fail "left behind after purge:$left"
for p in $packages; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  case "$status" in ""|un*|pn*) ;; *) fail "$p is still known to dpkg ($status)" ;; esac
done
echo "ci-check: packages installed, run and purged cleanly"
