#!/usr/bin/env bash
# tools/dev/build.sh [BUILD_DIR] [cmake options...] -- configure and build
# (default build/, RelWithDebInfo).  Prints the compiler's warnings and
# errors only, and exits non-zero when anything fails to configure or build:
# a reused build directory must never leave old binaries to be tested.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/../.."
dir=${1:-build}
shift || true
log=$(mktemp /tmp/hb-build.XXXXXX)
trap 'rm -f "$log"' EXIT
if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >"$log" 2>&1; then
  cat "$log" >&2
  echo "build.sh: cmake configure failed in $dir" >&2
  exit 1
fi
rc=0
cmake --build "$dir" -j"$(nproc)" >"$log" 2>&1 || rc=$?
grep -E "warning|error|Error" "$log" >&2 || true
if [ $rc != 0 ]; then
  echo "build.sh: the build failed in $dir (status $rc)" >&2
  exit 1
fi
