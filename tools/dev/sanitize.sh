#!/usr/bin/env bash
# tools/dev/sanitize.sh -- the test suite built with AddressSanitizer +
# UndefinedBehaviorSanitizer (LeakSanitizer included) in build-asan/.
# A report in any test, server or client log fails (tests/e2e/lib.sh and
# tests/e2e/peer.c grep the logs).  The namespace test is left to the plain
# build: it measures nothing a sanitizer would add to and takes the longest.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/../.."
tools/dev/build.sh build-asan -DHB_SANITIZE=ON -DHB_WERROR=ON
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd build-asan && ctest --output-on-failure --timeout 900 -LE 'netns|lint'
