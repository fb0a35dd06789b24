#!/usr/bin/env bash
# Runs the load scenarios (shmstats-loadgen --scenario) on a Release build: each starts a real
# collector and receiver on loopback and real producer processes, samples the pipeline once a
# second, and writes <name>.json, .tsv, .gp and .png (gnuplot) into the output directory.
#   bash tools/scenarios.sh                         # all five at full length (about 3 minutes)
#   bash tools/scenarios.sh --scale 0.05 baseline   # one, shortened to 5% of its duration
#   bash tools/scenarios.sh --out /tmp/results ...  # default: bench/results
# Exit status: non-zero if a scenario could not run (a daemon failed, the pipeline did not settle).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=1
out=bench/results
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) names+=("$1"); shift ;;
  esac
done
[ ${#names[@]} -gt 0 ] || names=(baseline high stress burst segments)

bash tools/install-deps.sh gnuplot-nox
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target shmstats-loadgen shmstats-collector shmstats-recv
mkdir -p "$out"
for name in "${names[@]}"; do
  echo "=== scenario $name (scale $scale)"
  build/release/tools/loadgen/shmstats-loadgen --scenario "$name" --scale "$scale" --out-dir "$out"
done
