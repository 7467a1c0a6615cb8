# shellcheck shell=bash
# lib.sh -- helpers for the end-to-end tests (sourced).  Every process a test
# starts is stopped when it exits; every address is on loopback; files live in
# a fresh temporary directory (kept with HB_KEEP=1).  Built on
# tools/dev/lib.sh (the hb_* functions, usable here too).
#
# At the end (cleanup): everything still running gets SIGTERM and
# HB_STOP_WAIT (60) seconds to finish, so LeakSanitizer can write its report;
# a process started with `start` that ended with a status other than 0
# without the test checking it, or a sanitizer report in the log of any
# instance of any process (NAME.log, and NAME.log.1, .2 ... of the instances
# before a restart), fails the test.
set -euo pipefail
# shellcheck source=../../tools/dev/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../tools/dev/lib.sh"
# shellcheck disable=SC2034 # BIN, HB_LOGDIR and PIDS are for the tests and tools/dev/lib.sh
{
  BIN=${HB_BIN:?HB_BIN must point at build/bin}
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/hb-e2e.XXXXXX")
  HB_LOGDIR=$WORK
  declare -n PIDS=HB_PIDS
} # the old name: PIDS+=(PID) still has it stopped at the end
T0=$(date +%s)

cleanup() {
  local rc=$? f
  hb_stop_all || { [ $rc != 0 ] || rc=1; }
  # A sanitizer report in any log fails the test (sanitized builds).
  if hb_sanitizer_logs "$WORK" >"$WORK/.sanitized"; [ -s "$WORK/.sanitized" ]; then
    while read -r f; do
      echo "--- sanitizer report in $f:"
      grep -m1 -A12 -E "$HB_SANITIZER_RE" "$f"
    done <"$WORK/.sanitized"
    echo "FAIL: sanitizer report in the logs above" >&2
    rc=1
  fi
  if [ $rc != 0 ] || [ "${HB_KEEP:-0}" = 1 ]; then
    echo "(files kept in $WORK)"
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- tail $f"; tail -n 5 "$f"; }; done
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
log() { echo "[$(($(date +%s) - T0))s] $*"; }

# free_ports N: prints "A-B", N consecutive ports nobody listens on
free_ports() { hb_free_ports "$@" || fail "no free ports"; }
first_port() { hb_first_port "$@"; }
listening() { hb_listening "$@"; }

# stat FILE NAME...: values from a stats file (hb-stats); a missing file or
# name prints nothing, says so on stderr, and returns non-zero
stat() { hb_stat "$@"; }

# expect_eq WHAT ACTUAL WANT
expect_eq() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"; ok "$1 = $3"; }
expect_ge() { { [[ $2 =~ ^-?[0-9]+$ ]] && [ "$2" -ge "$3" ]; } || fail "$1: got '$2', want >= $3"; ok "$1 = $2 (>= $3)"; }
expect_le() { { [[ $2 =~ ^-?[0-9]+$ ]] && [ "$2" -le "$3" ]; } || fail "$1: got '$2', want <= $3"; ok "$1 = $2 (<= $3)"; }

# expect_status WANT WHAT CMD...: run CMD, its exit status must be exactly
# WANT (for a CMD whose output is to be kept: rc=0; CMD >FILE || rc=$?;
# expect_eq "WHAT: exit" "$rc" WANT -- a redirection of expect_status would
# take its own messages too)
expect_status() {
  local want=$1 what=$2 rc=0
  shift 2
  "$@" || rc=$?
  [ "$rc" = "$want" ] || fail "$what: exit status $rc$(hb_status_text "$rc"), want $want"
  ok "$what: exit status $want"
}

# grep_count PATTERN FILE: grep -c, 0 for no match, an error (empty output,
# status 2) when FILE cannot be read -- never `grep -c ... || true`
grep_count() { grep -c -- "$1" "$2" || [ $? = 1 ]; }

# wait_until SECONDS CMD...: poll CMD every 0.1 s
wait_until() { hb_wait_until "$@"; }

# start NAME CMD...: run in the background, logging to $WORK/NAME.log (an
# earlier NAME's log is kept as NAME.log.N); its pid in $PID_NAME
start() { hb_start "$@"; }

# stop NAME [SIGNAL [STATUS]]: signal (TERM), wait, and check the exit
# status: exactly STATUS, by default 0 (137 after SIGKILL)
stop() { hb_stop "$@"; }

# wait_exit NAME SECONDS [STATUS]: wait for a process to end by itself with
# exactly STATUS (0)
wait_exit() { hb_wait_exit "$@"; }

# check_rates SAMPLES FIRST LAST ZERO WANT_FN: per-second rates from a
# cumulative counter.  SAMPLES names an associative array, S -> the counter
# at the start of unix second S; WANT_FN S prints the rate due in second S.
# Between consecutive samples from FIRST to LAST+1 -- at most 2 s apart: a
# loaded machine may miss a version of a stats file -- the count must be
# within 10% of the sum of the rates due (a switch in the wrong second, or
# a lost change, is off by far more).  Prints "second-ZERO..:count/want"
# spans in RATES; returns 1 if any is off or missing.
check_rates() {
  local -n smp=$1
  local first=$2 last=$3 zero=$4 want=$5 prev='' s k w n bad=0
  RATES=()
  for ((s = first; s <= last + 1; s++)); do
    [ -n "${smp[$s]:-}" ] || continue
    if [ -z "$prev" ]; then
      [ "$s" -le $((first + 1)) ] || { RATES+=("no sample near T$((first - zero))"); bad=1; }
    else
      [ $((s - prev)) -le 2 ] || { RATES+=("no samples between T$((prev - zero)) and T$((s - zero))"); bad=1; }
      w=0
      for ((k = prev; k < s; k++)); do w=$((w + $("$want" "$k"))); done
      n=${smp[$s]} k=${smp[$prev]} # an associative array: no arithmetic subscripts
      n=$((n - k))
      RATES+=("T$((prev - zero))..T$((s - zero)):$n/$w")
      if [ $((n * 100)) -lt $((w * 90)) ] || [ $((n * 100)) -gt $((w * 110)) ]; then bad=1; fi
    fi
    prev=$s
  done
  if [ -z "$prev" ] || [ "$prev" -lt "$last" ]; then RATES+=("no sample near T$((last + 1 - zero))"); bad=1; fi
  return $bad
}
