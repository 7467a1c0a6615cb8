#!/usr/bin/env bash
# tools/dev/fuzz.sh [SECONDS] -- build the libFuzzer targets with clang (ASan +
# UBSan) in build-fuzz/ and run each for SECONDS (default 60) from the
# committed seed corpus (tests/fuzz/corpus, copied: the repo is not touched).
# Any crash, leak, sanitizer report or timeout fails.  A crashing input is
# kept in build-fuzz/crashes/.
#   targets: fuzz_frame (framing), fuzz_server (every message handler through
#            a real connection), fuzz_journal (replay of arbitrary journals)
# For a long local run:  tools/dev/fuzz.sh 1800   (or FUZZ_RUNS=10000000 tools/dev/fuzz.sh)
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/../.."
SECONDS_EACH=${1:-60}
command -v clang >/dev/null || { echo "fuzz: clang is not installed (tools/dev/setup.sh)" >&2; exit 1; }
# build.sh prints the compiler's errors and exits non-zero on any failure
CC=clang tools/dev/build.sh build-fuzz -DHB_FUZZ=ON -DHB_WERROR=ON
B=build-fuzz/fuzz
work=$(mktemp -d /tmp/hb-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p build-fuzz/crashes
runs=()
[ -n "${FUZZ_RUNS:-}" ] && runs=(-runs="$FUZZ_RUNS")
pids=()
for t in frame server journal; do
  mkdir -p "$work/$t"
  cp tests/fuzz/corpus/$t/* "$work/$t/"
  ASAN_OPTIONS=detect_leaks=1 "$B/fuzz_$t" "$work/$t" -max_total_time="$SECONDS_EACH" "${runs[@]}" -max_len=4096 \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="build-fuzz/crashes/$t-" \
    >"$work/$t.log" 2>&1 &
  pids+=($!)
done
rc=0
i=0
for t in frame server journal; do
  if wait "${pids[$i]}"; then
    printf 'fuzz_%-8s ok: %s executions, %s corpus entries\n' "$t" \
      "$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$')" \
      "$(find "$work/$t" -maxdepth 1 -type f | wc -l)"
  else
    echo "fuzz_$t FAILED:"; tail -n 40 "$work/$t.log"; rc=1
  fi
  i=$((i + 1))
done
exit $rc
