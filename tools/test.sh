#!/usr/bin/env bash
# tools/test.sh -- the whole test suite (the README's test command; .ci/run
# calls exactly this).
#   1. tools/dev/setup.sh (packages), a warnings-as-errors build in build/;
#   2. every ctest test: unit, end-to-end on loopback, monitor, namespaces;
#   3. the same suite built with ASan + UBSan in build-asan/;
#   4. the libFuzzer targets for a bounded time from the committed corpus.
# Set HB_TEST_QUICK=1 to skip 3 and 4 while developing.
# Set HB_TEST_LOAD=1 to run it all while a load generator keeps every core
# busy (one busy loop per core, at normal priority): the tests wait on
# events with generous bounds, so they must pass on a loaded machine too.
# HB_TEST_ONLY=REGEX runs only the ctest tests matching it (with 2.).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/.."
start=$(date +%s)
tools/dev/setup.sh

load_pids=()
stop_load() { [ ${#load_pids[@]} = 0 ] || kill "${load_pids[@]}" 2>/dev/null || true; }
trap stop_load EXIT
if [ "${HB_TEST_LOAD:-0}" = 1 ]; then
  for _ in $(seq "$(nproc)"); do
    bash -c 'while :; do :; done' &
    load_pids+=($!)
  done
  echo "== load generator: ${#load_pids[@]} busy loops (one per core)"
fi

echo "== build (warnings are errors)"
tools/dev/build.sh build -DHB_WERROR=ON
echo "== tests"
(cd build && ctest --output-on-failure --timeout 900 ${HB_TEST_ONLY:+-R "$HB_TEST_ONLY"})

if [ "${HB_TEST_QUICK:-0}" != 1 ]; then
  echo "== tests under ASan + UBSan"
  tools/dev/sanitize.sh
  echo "== fuzzing"
  tools/dev/fuzz.sh "${HB_FUZZ_SECONDS:-20}"
fi
echo "== all tests passed in $(( $(date +%s) - start )) s"
