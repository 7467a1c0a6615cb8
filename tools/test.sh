#!/usr/bin/env bash
# tools/test.sh -- the whole test suite (the README's test command; .ci/run
# calls exactly this).
#   1. tools/dev/setup.sh (packages), a warnings-as-errors build in build/;
#   2. every ctest test: unit, end-to-end on loopback, monitor, namespaces;
#   3. the same suite built with ASan + UBSan in build-asan/;
#   4. the libFuzzer targets for a bounded time from the committed corpus.
# Set HB_TEST_QUICK=1 to skip 3 and 4 while developing.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/.."
start=$(date +%s)
tools/dev/setup.sh

echo "== build (warnings are errors)"
tools/dev/build.sh build -DHB_WERROR=ON
echo "== tests"
(cd build && ctest --output-on-failure --timeout 900)

if [ "${HB_TEST_QUICK:-0}" != 1 ]; then
  echo "== tests under ASan + UBSan"
  tools/dev/sanitize.sh
  echo "== fuzzing"
  tools/dev/fuzz.sh "${HB_FUZZ_SECONDS:-60}"
fi
echo "== all tests passed in $(( $(date +%s) - start )) s"
