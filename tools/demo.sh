#!/usr/bin/env bash
# The main job, on one machine: installs what is missing, builds (Release), then runs the whole
# pipeline on loopback for about 20 seconds and shows metrics flowing:
#   sample services + shmstats-loadgen  --shared memory-->  shmstats-collector
#     --UDP datagrams-->  shmstats-recv  -->  JSON Lines
#     --a Prometheus scrape endpoint (aggregated series)
# with shm-dump (the live segments), the receiver's JSONL, the scrape page, and the collector's
# /health and /metrics. Everything stops cleanly at the end (SIGTERM), and nothing is left in /dev/shm.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target shmstats-collector shmstats-recv \
  shmstats-loadgen shm-dump shmstats-sample
bin=build/release
prefix="demo$$"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -f /dev/shm/"$prefix".*
  rm -rf "$work"
}
trap cleanup EXIT

port_of() {  # waits for "listening <what> HOST:PORT" in a file and prints PORT
  for _ in $(seq 100); do
    line=$(grep -m1 "listening $2 " "$1" 2>/dev/null || true)
    if [ -n "$line" ]; then echo "${line##*:}"; return; fi
    sleep 0.1
  done
  echo "no 'listening $2' line in $1" >&2; exit 1
}

echo "== receiver: UDP in, JSON Lines out ($work/metrics.jsonl)"
"$bin/recv/shmstats-recv" --listen 127.0.0.1:0 --jsonl "$work/metrics.jsonl" \
  --http 127.0.0.1:0 >"$work/recv.out" 2>"$work/recv.log" & pids+=($!)
recv_udp=$(port_of "$work/recv.out" udp)
recv_http=$(port_of "$work/recv.out" http)

echo "== collector: drains /dev/shm/$prefix.*, sends to 127.0.0.1:$recv_udp, serves a Prometheus scrape page"
"$bin/collector/shmstats-collector" --shm-prefix "$prefix" --udp "127.0.0.1:$recv_udp" \
  --prometheus 127.0.0.1:0 --prometheus-interval 1s \
  --http 127.0.0.1:0 >"$work/collector.out" 2>"$work/collector.log" & collector=$!
pids+=($collector)
coll_http=$(port_of "$work/collector.out" http)
coll_scrape=$(port_of "$work/collector.out" prometheus)

echo "== producers: three sample services and a load generator (2 processes x 2 threads)"
for svc in checkout:2:2000 payments:1:500 search:4:1000; do
  IFS=: read -r name threads rate <<<"$svc"
  "$bin/tools/sample_producer/shmstats-sample" --prefix "$prefix" --service "$name" \
    --threads "$threads" --rate "$rate" --duration 12 >"$work/$name.out" & pids+=($!)
done
"$bin/tools/loadgen/shmstats-loadgen" --prefix "$prefix" --processes 2 --threads 2 --series 8 \
  --rate 50000 --duration 10 --json-out "$work/loadgen.json" >/dev/null 2>"$work/loadgen.log" &
loadgen=$!
sleep 2

echo
echo "== shm-dump: the live segments (refreshed every 3 s)"
"$bin/tools/shm_dump/shm-dump" --prefix "$prefix" --watch 3 --count 2
echo
echo "== the receiver's JSONL: total lines so far, and the last three"
wc -l <"$work/metrics.jsonl"
tail -n 3 "$work/metrics.jsonl"
echo
echo "== collector /health"
curl -s "http://127.0.0.1:$coll_http/health"
echo "== collector /metrics (excerpt)"
curl -s "http://127.0.0.1:$coll_http/metrics" | grep -E '^shmstats_(collector_(events_received|folded_values_received|batches|segments_active)|exporter_(events_sent|events_merged|datagrams)_total|end_to_end_latency_seconds_count|exporter_prometheus_series)' || true
echo "== the Prometheus scrape page (http://127.0.0.1:$coll_scrape/metrics, excerpt)"
curl -s "http://127.0.0.1:$coll_scrape/metrics" | grep -E '^(loadgen_s0_total|loadgen_s1_seconds_count|loadgen_s3|http_requests_total|http_latency_seconds_count|users_active)\{' | head -n 10 || true

wait "$loadgen"
for p in "${pids[@]:3}"; do wait "$p" 2>/dev/null || true; done
sleep 1
echo
echo "== after the producers exited: the collector drained and removed every segment"
"$bin/tools/shm_dump/shm-dump" --prefix "$prefix"
echo "== loadgen report (totals)"
python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['totals'])" "$work/loadgen.json" 2>/dev/null ||
  grep -o '"totals":{[^}]*}' "$work/loadgen.json"
echo "== receiver /metrics (datagram accounting)"
curl -s "http://127.0.0.1:$recv_http/metrics" | grep -E '^shmstats_recv_(datagrams|events|aggregates|lost|duplicates|lines_written)_total' || true
kill -TERM "$collector"
wait "$collector" && echo "== collector stopped cleanly (exit 0)"
echo "== JSONL lines written: $(wc -l <"$work/metrics.jsonl")"
