#!/usr/bin/env bash
# tools/build.sh [BUILD_DIR] [cmake options...] -- configure and build.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)" 2>&1 | grep -E "warning|error|Error" || true
test -x "$dir/bin/hb-server" && test -x "$dir/bin/hb-client" || { echo "build failed" >&2; exit 1; }
