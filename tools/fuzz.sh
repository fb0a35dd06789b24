#!/usr/bin/env bash
# Builds the libFuzzer targets (preset fuzz: clang, ASan + UBSan) and runs each for a bounded time,
# one after the other, on a copy of its committed corpus (tests/fuzz/corpus/<target>); new inputs
# and crash files go to build/fuzz/run/<target>/, never into the source tree. Any crash, leak,
# timeout or sanitizer report fails the run.
#   bash tools/fuzz.sh         # 20 s per fuzzer
#   bash tools/fuzz.sh 180     # 3 min per fuzzer
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
# clang and libFuzzer's runtime, from Debian, besides the usual packages.
bash tools/install-deps.sh clang libclang-rt-14-dev
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$(nproc)"
for target in segment datagram config; do
  run="build/fuzz/run/$target"
  rm -rf "$run"
  mkdir -p "$run/corpus"
  cp tests/fuzz/corpus/"$target"/* "$run/corpus/"
  echo "--- fuzz_$target for $seconds s (log: $run/fuzz.log)"
  # One process, one core (the machine is shared). -timeout: an input running 5 s is a hang.
  if ! build/fuzz/tests/fuzz/fuzz_"$target" -max_total_time="$seconds" -timeout=5 \
      -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 -artifact_prefix="$run/" \
      "$run/corpus" >"$run/fuzz.log" 2>&1; then
    tail -n 60 "$run/fuzz.log"
    echo "fuzz_$target failed; reproduce with: build/fuzz/tests/fuzz/fuzz_$target $run/<crash-file>" >&2
    exit 1
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE|stat::average_exec_per_sec' "$run/fuzz.log"
done
echo "fuzzing done: no crash, leak or timeout"
