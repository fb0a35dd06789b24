#!/usr/bin/env bash
# Installs what shmstats needs to build, test and run on Debian 12, with apt-get. Idempotent:
# packages already present are not fetched again. Uses sudo when not run as root.
#   bash tools/install-deps.sh [EXTRA_PACKAGE...]   # e.g. the fuzzers' clang (tools/fuzz.sh)
set -euo pipefail
packages=("$@"
  build-essential cmake ninja-build pkg-config
  libboost-dev libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev libbenchmark-dev
  libfmt-dev libspdlog-dev nlohmann-json3-dev libcli11-dev libtomlplusplus-dev
  libssl-dev libsnappy-dev openssl
  netcat-openbsd curl procps valgrind
  systemd python3 dpkg-dev file ccache
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The real backends the end-to-end tests start (Etsy StatsD from npm, Prometheus/promtool): the
# shared peers directory next to the checkout installs them outside the tree.
peers="$(cd "$(dirname "$0")/../.." && pwd)/shared/peers"
if [ -f "$peers/install.sh" ]; then
  bash "$peers/install.sh"
else
  # Without the peers directory: at least promtool (Debian's prometheus); node only if absent
  # (a Node.js that bundles npm conflicts with Debian's npm package).
  extra=()
  command -v promtool >/dev/null || extra+=(prometheus)
  command -v node >/dev/null || extra+=(nodejs npm)
  if [ ${#extra[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${extra[@]}" >/dev/null
  fi
  echo "note: $peers not found; the end-to-end test against the real StatsD daemon will fail" >&2
fi
echo "dependencies installed"
