#!/usr/bin/env bash
# tools/dev/lib-test.sh -- the test of the test library (ctest: shell.lib):
# small scripts on tests/e2e/lib.sh (and so tools/dev/lib.sh) whose exit
# status must be exactly the one expected.  HB_BIN (build/bin, for hb-stats)
# is needed; HB_E2E_LIB may name another tests/e2e/lib.sh to check.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LIB=${HB_E2E_LIB:-$ROOT/tests/e2e/lib.sh}
export HB_BIN=${HB_BIN:-$ROOT/build/bin}
[ -x "$HB_BIN/hb-stats" ] || { echo "lib-test: $HB_BIN/hb-stats is missing (tools/dev/build.sh)" >&2; exit 2; }
T=$(mktemp -d /tmp/hb-libtest.XXXXXX)
trap 'rm -rf "$T"' EXIT
failed=0

# case WANT NAME: the script on stdin, after sourcing the library, must exit WANT
case_() {
  local want=$1 name=$2 rc=0
  { echo ". '$LIB'"; cat; } >"$T/t.sh"
  # (TMPDIR: the kept files of the cases meant to fail go when this ends)
  TMPDIR=$T HB_STOP_WAIT=10 bash "$T/t.sh" >"$T/out" 2>&1 || rc=$?
  [ -z "${HB_LIBTEST_VERBOSE:-}" ] || sed "s/^/    /" "$T/out"
  if [ "$rc" = "$want" ]; then
    echo "ok: $name (exit $rc)"
  else
    echo "FAIL: $name: exit $rc, want $want; its output:"
    sed 's/^/    /' "$T/out"
    failed=1
  fi
}

# 12.7: the first instance's sanitizer report must survive a restart
case_ 1 "sanitizer report of an instance before a restart fails the test" <<'EOF'
start server bash -c 'echo "==1==ERROR: AddressSanitizer: heap-use-after-free"; sleep 30'
sleep 0.5
stop server KILL
start server bash -c 'trap "exit 0" TERM; sleep 30 & wait'
sleep 0.2
EOF
case_ 0 "logs of every instance kept (NAME.log.1, NAME.log)" <<'EOF'
start p bash -c 'echo first'; wait_exit p 5
start p bash -c 'echo second'; wait_exit p 5
[ "$(cat "$WORK/p.log.1")" = first ] && [ "$(cat "$WORK/p.log")" = second ]
EOF
# LeakSanitizer reports after SIGTERM, at exit: the cleanup waits for it
case_ 1 "a leak report written 1.5 s after the final SIGTERM fails the test" <<'EOF'
start server bash -c 'trap "sleep 1.5; echo ERROR: LeakSanitizer: detected memory leaks; exit 23" TERM; sleep 30 & wait'
sleep 0.3
EOF
case_ 0 "stop waits for a slow exit (1.5 s after SIGTERM)" <<'EOF'
start server bash -c 'trap "sleep 1.5; exit 0" TERM; sleep 30 & wait'
sleep 0.3
stop server
EOF

# 12.8: exit statuses are checked exactly
case_ 1 "stop: a process exiting 3 on SIGTERM fails" <<'EOF'
start server bash -c 'trap "exit 3" TERM; sleep 30 & wait'
sleep 0.3
stop server
EOF
case_ 0 "stop NAME TERM 3: the expected other status passes" <<'EOF'
start server bash -c 'trap "exit 3" TERM; sleep 30 & wait'
sleep 0.3
stop server TERM 3
EOF
case_ 1 "stop NAME KILL: a process that had already crashed (134) fails" <<'EOF'
start server bash -c 'kill -ABRT $$'
sleep 0.5
stop server KILL
EOF
case_ 1 "wait_exit: status 2 fails" <<'EOF'
start c bash -c 'exit 2'
wait_exit c 5
EOF
case_ 1 "a process that crashed unnoticed fails the test at the end" <<'EOF'
start server bash -c 'exit 4'
sleep 0.5
EOF
case_ 1 "expect_status 1: status 2 fails" <<'EOF'
expect_status 1 "reconcile" bash -c 'exit 2'
EOF
case_ 0 "expect_status 1: status 1 passes" <<'EOF'
expect_status 1 "reconcile" bash -c 'exit 1'
EOF

# stats files: a missing value is an error, a default is explicit
case_ 1 "stat of a missing counter aborts an assignment" <<'EOF'
printf 'second 1\nshakes 5\n' >"$WORK/s.stats"
[ "$(stat "$WORK/s.stats" shakes)" = 5 ] || exit 3
v=$(stat "$WORK/s.stats" nonesuch)
exit 0
EOF
case_ 1 "expect_eq on a missing counter fails" <<'EOF'
printf 'second 1\nshakes 5\n' >"$WORK/s.stats"
expect_eq "x" "$(stat "$WORK/s.stats" nonesuch)" 0
EOF
case_ 0 "hb_stat_or, hb_stat_sum, hb_wait_stat" <<'EOF'
printf 'second 1\nshakes 5\n' >"$WORK/a.stats"
printf 'second 1\nshakes 7\n' >"$WORK/b.stats"
[ "$(hb_stat_or 0 "$WORK/missing.stats" shakes)" = 0 ]
[ "$(hb_stat_sum shakes "$WORK/a.stats" "$WORK/b.stats")" = 12 ]
hb_wait_stat 1 "$WORK/a.stats" shakes -ge 5
! hb_wait_stat 0.3 "$WORK/a.stats" shakes -gt 5
EOF
[ $failed = 0 ] || { echo "lib-test: FAILED" >&2; exit 1; }
echo "lib-test: all cases passed"
