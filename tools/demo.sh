#!/usr/bin/env bash
# The main job, on one machine: installs what is missing, builds (Release), starts three sample
# services that push metrics into their own shared-memory segments, and shows the live segments
# with shm-dump while they run, then again once they have exited (segments closed).
# Until the collector lands, nothing drains the rings: the demo removes its segments at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target shmstats-sample shm-dump
bin=build/release/tools
prefix="demo$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -f /dev/shm/"$prefix".*
}
trap cleanup EXIT

echo "== starting three sample services (segments /dev/shm/$prefix.*)"
"$bin/sample_producer/shmstats-sample" --prefix "$prefix" --service checkout --threads 2 --rate 2000 --duration 8 & pids+=($!)
"$bin/sample_producer/shmstats-sample" --prefix "$prefix" --service payments --threads 1 --rate 500 --duration 8 & pids+=($!)
"$bin/sample_producer/shmstats-sample" --prefix "$prefix" --service search --threads 4 --rate 1000 --duration 8 & pids+=($!)
sleep 1
echo "== live segments, refreshed every 2 s"
"$bin/shm_dump/shm-dump" --prefix "$prefix" --watch 2 --count 3
first=$(ls /dev/shm | grep "^$prefix\." | head -1)
echo "== series of $first"
"$bin/shm_dump/shm-dump" --prefix "$prefix" --segment "$first" --series
echo "== the same as JSON (first 30 lines)"
"$bin/shm_dump/shm-dump" --prefix "$prefix" --segment "$first" --json | head -30
for p in "${pids[@]}"; do wait "$p"; done
pids=()
echo "== after the services exited: segments closed, events still waiting for a collector"
"$bin/shm_dump/shm-dump" --prefix "$prefix"
