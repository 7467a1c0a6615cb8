# lib.sh -- helpers for the end-to-end tests (sourced).  Every process a test
# starts is killed when it exits; every address is on loopback; files live in
# a fresh temporary directory (kept with HB_KEEP=1).
set -euo pipefail
BIN=${HB_BIN:?HB_BIN must point at build/bin}
WORK=$(mktemp -d /tmp/hb-e2e.XXXXXX)
PIDS=()
T0=$(date +%s)

cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  # A sanitizer report in any log fails the test (sanitized builds).
  if [ $rc = 0 ] && grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$WORK"/*.log 2>/dev/null; then
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
log() { echo "[$(( $(date +%s) - T0 ))s] $*"; }

# free_ports N: prints "A-B", N consecutive ports nobody listens on
free_ports() {
  local n=$1 base i busy
  for _ in $(seq 50); do
    base=$(( 20000 + RANDOM % 30000 ))
    busy=0
    for ((i = 0; i < n; i++)); do
      if ss -Htan "sport = :$((base + i))" | grep -q .; then busy=1; break; fi
    done
    [ $busy = 0 ] && { echo "$base-$((base + n - 1))"; return; }
  done
  fail "no free ports"
}

# stat FILE NAME: a counter from a stats file ('name value' lines)
stat() { awk -v k="$2" '$1 == k { print $2; found = 1 } END { if (!found) print "MISSING" }' "$1"; }

# expect_eq WHAT ACTUAL WANT
expect_eq() { [ "$2" = "$3" ] || fail "$1: got $2, want $3"; ok "$1 = $3"; }
expect_ge() { [ "$2" -ge "$3" ] || fail "$1: got $2, want >= $3"; ok "$1 = $2 (>= $3)"; }
expect_le() { [ "$2" -le "$3" ] || fail "$1: got $2, want <= $3"; ok "$1 = $2 (<= $3)"; }

# wait_until SECONDS CMD...: poll CMD every 0.1 s
wait_until() {
  local t=$1; shift
  local end=$(( $(date +%s%N) / 1000000 + t * 1000 ))
  until "$@" 2>/dev/null; do
    [ $(( $(date +%s%N) / 1000000 )) -lt $end ] || return 1
    sleep 0.1
  done
}

listening() { ss -Htln "sport = :$1" | grep -q .; }

# start NAME CMD...: run in the background, logging to $WORK/NAME.log
start() {
  local name=$1; shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  eval "PID_$name=$!"
}

# stop NAME [SIGNAL]: signal and wait for it
stop() {
  local pid; eval "pid=\$PID_$1"
  kill -"${2:-TERM}" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# wait_exit NAME SECONDS: wait for a process to end by itself
wait_exit() {
  local pid; eval "pid=\$PID_$1"
  local end=$(( $(date +%s) + $2 ))
  while kill -0 "$pid" 2>/dev/null; do
    [ "$(date +%s)" -lt "$end" ] || fail "$1 did not finish within $2 s"
    sleep 0.2
  done
  wait "$pid" || fail "$1 exited with status $?"
}

first_port() { echo "${1%%-*}"; }
