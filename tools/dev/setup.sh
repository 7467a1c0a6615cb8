#!/usr/bin/env bash
# tools/dev/setup.sh -- install what hongbao needs on a fresh Debian 12 machine
# (as root).  Idempotent and quiet when everything is already there; called
# by tools/demo.sh, tools/test.sh and tools/bench/c1m.sh.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/../.."

PKGS=(
  build-essential cmake pkg-config            # the build
  libev-dev libprotobuf-c-dev protobuf-c-compiler libjemalloc-dev   # the design card's libraries
  libmicrohttpd-dev                           # HTTP: client control, monitor dashboard and /metrics
  libssl-dev                                  # HMAC-SHA256 login tokens
  libcmocka-dev                               # unit tests
  redis-server libhiredis-dev                 # the cluster's membership (server/cluster.c) and its tests
  clang libclang-rt-14-dev                    # libFuzzer and sanitizer runtimes
  gnuplot-nox                                 # tools/plot.sh
  iproute2 procps psmisc curl jq bc           # namespaces, ss, process control, HTTP and JSON in scripts
  shellcheck                                  # tools/dev/lint.sh (ctest lint.shellcheck)
  python3                                     # tools/bench/c1m.sh report (standard library only)
  prometheus                                  # promtool, to validate /metrics
  chromium                                    # headless dashboard test
  nodejs npm                                  # the dashboard's chart library (from the npm registry)
)

# Node and npm may come from elsewhere than Debian (as on these machines).
have_node=0
command -v node >/dev/null && command -v npm >/dev/null && have_node=1
missing=()
for p in "${PKGS[@]}"; do
  [ $have_node = 1 ] && { [ "$p" = nodejs ] || [ "$p" = npm ]; } && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages: ${missing[*]}; run as root (or apt-get install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The dashboard's chart library, pinned by monitor/web/package-lock.json.
if [ -f monitor/web/package.json ] && [ ! -d monitor/web/node_modules ]; then
  echo "setup: npm ci (monitor/web)"
  (cd monitor/web && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
