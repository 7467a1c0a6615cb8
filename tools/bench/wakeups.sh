#!/usr/bin/env bash
# tools/bench/wakeups.sh -- what one shake costs in counts that do not depend
# on how busy the machine is: system calls, epoll_wait calls (wake-ups),
# context switches, per shake and per second, for hb-server and hb-client
# side by side; CPU time too, as a secondary (noisy) figure.
#
# One hb-server (--sets S) and one hb-client (--threads T) on loopback, N
# users at Q shakes/s.  Once every user is logged in and the shaking has run
# for --settle seconds, every thread of both processes is counted for
# --window seconds with `perf stat --per-thread` (tracepoints
# raw_syscalls:sys_enter, syscalls:sys_enter_epoll_wait, sys_enter_read,
# sys_enter_write, sys_enter_sendto, sys_enter_recvfrom, and the
# context-switches software event) and /proc (voluntary and involuntary
# switches, utime+stime).  The shakes of the window are the server's `shakes`
# counter (its stats file is rewritten every 50 ms).  --qps 0 measures an
# idle run: the figures per second are then the ones to read.
# Needs root (perf tracepoints).  Not part of tools/test.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
USERS=19800 QPS=19800 SETS=4 THREADS=1 WINDOW=10 SETTLE=3 RATE=0 OUT=""
SERVER_ARGS="" CLIENT_ARGS=""
usage() {
  cat <<'EOF'
Usage: tools/bench/wakeups.sh [--users N] [--qps Q] [--sets S] [--threads T] [--window SEC]
                              [--settle SEC] [--rate R] [--server-args ARGS] [--client-args ARGS] [--out DIR]
  --users N          connections (19800)
  --qps Q            shakes per second, all users together (19800; 0 = idle)
  --sets S           hb-server --sets (4); --threads T: hb-client --threads (1)
  --window SEC       counted seconds (10); --settle SEC: shaking before counting (3)
  --rate R           hb-server --rate, shake-flow packets per second (0: every shake loses)
  --server-args A    more hb-server flags (word-split); --client-args A: more hb-client flags
  --out DIR          results (out/wakeups-DATE): perf outputs, logs, summary.txt
EOF
}
while [ $# -gt 0 ]; do
  case $1 in
    --users) USERS=$2; shift ;;
    --qps) QPS=$2; shift ;;
    --sets) SETS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --window) WINDOW=$2; shift ;;
    --settle) SETTLE=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --server-args) SERVER_ARGS=$2; shift ;;
    --client-args) CLIENT_ARGS=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "wakeups: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
OUT=${OUT:-$ROOT/out/wakeups-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
B=${HB_BIN:-$ROOT/build/bin}

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
free_base() {
  local b
  while :; do
    b=$(( 20000 + RANDOM % 30000 ))
    ss -Htan "( sport >= :$b and sport <= :$((b + 3)) )" | grep -q . || { echo $b; return; }
  done
}
stat_of() { "$B/hb-stats" --default 0 "$1" "$2"; }
# ctx PID: "voluntary involuntary" switches summed over its threads
ctx() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^voluntary_ctxt_switches/ { v += $2 } /^nonvoluntary_ctxt_switches/ { n += $2 } END { print v + 0, n + 0 }'
}
# cpu PID: utime+stime in clock ticks
cpu() { awk '{ print $14 + $15 }' /proc/"$1"/stat; }

PORT=$(free_base)
rm -f "$OUT"/journal "$OUT"/*.stats
# shellcheck disable=SC2086  # the extra flags are meant to be word-split
"$B/hb-server" --port "$PORT-$((PORT + 3))" --sets "$SETS" --users "$USERS" --rate "$RATE" --total 100000000 \
  --journal "$OUT/journal" --stats-file "$OUT/server.stats" --stats-every 50 $SERVER_ARGS >"$OUT/server.log" 2>&1 &
SPID=$!
PIDS+=("$SPID")
for _ in $(seq 100); do ss -Htln "sport = :$PORT" | grep -q . && break; sleep 0.1; done
# shellcheck disable=SC2086
"$B/hb-client" --port "$PORT-$((PORT + 3))" --uid-to "$USERS" --qps "$QPS" --threads "$THREADS" \
  --stats-file "$OUT/client.stats" $CLIENT_ARGS >"$OUT/client.log" 2>&1 &
CPID=$!
PIDS+=("$CPID")
for _ in $(seq 600); do
  [ "$(stat_of "$OUT/server.stats" active)" -ge "$USERS" ] && break
  kill -0 "$CPID" 2>/dev/null || { echo "wakeups: hb-client ended early, see $OUT/client.log" >&2; exit 1; }
  sleep 0.1
done
[ "$(stat_of "$OUT/server.stats" active)" -ge "$USERS" ] || { echo "wakeups: not every user logged in" >&2; exit 1; }
sleep "$SETTLE"

EVENTS=raw_syscalls:sys_enter,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,context-switches
read -r sv0 sn0 <<<"$(ctx "$SPID")"
read -r cv0 cn0 <<<"$(ctx "$CPID")"
scpu0=$(cpu "$SPID") ccpu0=$(cpu "$CPID")
shakes0=$(stat_of "$OUT/server.stats" shakes)
replies0=$(stat_of "$OUT/client.stats" replies)
perf stat --per-thread -x, -e "$EVENTS" -p "$SPID" -o "$OUT/perf-server.csv" -- sleep "$WINDOW" &
PS=$!
perf stat --per-thread -x, -e "$EVENTS" -p "$CPID" -o "$OUT/perf-client.csv" -- sleep "$WINDOW" &
PC=$!
wait "$PS" "$PC"
read -r sv1 sn1 <<<"$(ctx "$SPID")"
read -r cv1 cn1 <<<"$(ctx "$CPID")"
scpu1=$(cpu "$SPID") ccpu1=$(cpu "$CPID")
shakes1=$(stat_of "$OUT/server.stats" shakes)
replies1=$(stat_of "$OUT/client.stats" replies)
kill -TERM "$CPID" 2>/dev/null || true
wait "$CPID" 2>/dev/null || true
kill -TERM "$SPID" 2>/dev/null || true
wait "$SPID" 2>/dev/null || true
PIDS=()

HZ=$(getconf CLK_TCK)
shakes=$((shakes1 - shakes0))
{
  echo "conditions: users $USERS, qps $QPS, server --sets $SETS ${SERVER_ARGS:+($SERVER_ARGS)}, client --threads $THREADS ${CLIENT_ARGS:+($CLIENT_ARGS)}, window $WINDOW s, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "shakes counted by the server in the window: $shakes ($((shakes / WINDOW))/s); client replies $((replies1 - replies0))"
  for side in server client; do
    if [ $side = server ]; then v=$((sv1 - sv0)) n=$((sn1 - sn0)) c=$((scpu1 - scpu0)); else v=$((cv1 - cv0)) n=$((cn1 - cn0)) c=$((ccpu1 - ccpu0)); fi
    # perf --per-thread -x, lines: COMM-TID,count,unit,event,...; group by thread name without its number
    awk -F, -v side=$side -v shakes="$shakes" -v win="$WINDOW" -v vol="$v" -v inv="$n" -v cpu="$c" -v hz="$HZ" '
      /^#/ || NF < 4 { next }
      { name = $1; sub(/-[0-9]+$/, "", name); sub(/[0-9]+$/, "", name); ev = $4; sub(/.*:(sys_enter_)?/, "", ev)
        cnt = ($2 ~ /^[0-9]+$/) ? $2 : 0; t[name, ev] += cnt; tot[ev] += cnt; names[name] = 1; evs[ev] = 1 }
      END {
        per = shakes > 0 ? shakes : 1
        printf "%s: per shake  syscalls %.2f  epoll_wait %.3f  read %.2f  write %.2f  sendto %.2f  recvfrom %.2f  ctx-switches %.3f (vol %.3f invol %.3f)  cpu %.1f us\n",
          side, tot["sys_enter"] / per, tot["epoll_wait"] / per, tot["read"] / per, tot["write"] / per, tot["sendto"] / per,
          tot["recvfrom"] / per, tot["context-switches"] / per, vol / per, inv / per, cpu / hz * 1e6 / per
        printf "%s: per second syscalls %.0f  epoll_wait %.0f  ctx-switches %.0f (vol %.0f invol %.0f)  cpu %.1f%%\n",
          side, tot["sys_enter"] / win, tot["epoll_wait"] / win, tot["context-switches"] / win, vol / win, inv / win, cpu / hz / win * 100
        for (nm in names)
          printf "%s:   thread %-14s per second: syscalls %8.0f  epoll_wait %8.0f  ctx %8.0f\n", side, nm,
            t[nm, "sys_enter"] / win, t[nm, "epoll_wait"] / win, t[nm, "context-switches"] / win
      }' "$OUT/perf-$side.csv"
  done
  grep -E "latency|p50|p99" "$OUT/client.log" | tail -3 || true
} | tee "$OUT/summary.txt"
