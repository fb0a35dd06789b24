#!/usr/bin/env bash
# Installs dependencies, builds and runs the whole test suite.
#   bash tools/test.sh          # Debug build (preset dev)
#   bash tools/test.sh asan     # ASan + UBSan
#   bash tools/test.sh tsan     # TSan
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-dev}
bash tools/install-deps.sh
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
# TSan's shadow memory needs the older, smaller mmap randomisation on newer kernels.
run=()
if [ "$preset" = tsan ] && [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ]; then
  run=(setarch "$(uname -m)" -R)
fi
"${run[@]}" ctest --preset "$preset" -j 2
