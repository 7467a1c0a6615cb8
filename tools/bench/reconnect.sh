#!/usr/bin/env bash
# tools/bench/reconnect.sh -- the reconnect curve after a server crash.
#
# N users are connected (on loopback, spread over source addresses and server
# ports); the server is killed with SIGKILL, stays down for --down seconds,
# and is restarted.  Logged-in connections are sampled every 100 ms from the
# server's stats file until everyone is back.  Run twice in one go: with the
# clients' full-jitter back-off (the default) and, for comparison, without
# jitter (every client retries at exactly base * 2^k: a synchronized storm).
# The clients run unpaced (no --connect-rate limit, no in-flight cap), like
# a million independent phones: hb-client's own pacing would otherwise spread
# the reconnects by itself and hide what the jitter does.
# Prints time to 50/90/99/100% and the kernel's listen-queue drops, and draws
# both curves (connections vs seconds since the restart) into one PNG.
# Not part of tools/test.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
USERS=100000 CLIENTS=5 DOWN=3 CAP=4000 BASE=100 OUT=""
usage() {
  cat <<'EOF'
Usage: tools/bench/reconnect.sh [--users N] [--clients K] [--down SEC] [--cap MS] [--base MS] [--out DIR]
  --users N     connections in all (100000)
  --clients K   client processes (5)
  --down SEC    how long the server stays dead (3)
  --cap MS      clients' --backoff-cap (4000); --base MS their --backoff-base (100)
  --out DIR     results (out/reconnect-DATE): curve.tsv, reconnect.png, report.txt
EOF
}
while [ $# -gt 0 ]; do
  case $1 in
    --users) USERS=$2; shift ;;
    --clients) CLIENTS=$2; shift ;;
    --down) DOWN=$2; shift ;;
    --cap) CAP=$2; shift ;;
    --base) BASE=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-reconnect: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
OUT=${OUT:-$ROOT/out/reconnect-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
"$ROOT/tools/dev/setup.sh"
"$ROOT/tools/dev/build.sh" "$ROOT/build"
B=$ROOT/build/bin

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
# stat_of FILE KEY: a counter, 0 until the file and the counter are there (hb-stats)
stat_of() { "$B/hb-stats" --default 0 "$1" "$2"; }
drops() { nstat -az TcpExtListenDrops 2>/dev/null | awk '/ListenDrops/ { print $2 }'; }

run() {
  local mode=$1 jitter=$2
  local P; P=$(free_base)
  local ports="$P-$((P + 3))" dir=$OUT/$mode
  mkdir -p "$dir"
  local sargs=(--sets 8 --port "$ports" --users "$USERS" --total 0 --journal "$dir/j" --no-fsync
    --stats-file "$dir/server.stats" --stats-every 100)
  "$B/hb-server" "${sargs[@]}" >"$dir/server.log" 2>&1 &
  local spid=$!
  PIDS+=("$spid")
  until ss -Htln "sport = :$P" | grep -q .; do sleep 0.1; done
  local per=$((USERS / CLIENTS))
  for ((i = 0; i < CLIENTS; i++)); do
    "$B/hb-client" --port "$ports" --source 127.0.0.1-127.0.0.8 --uid-from $((i * per)) --uid-to $(((i + 1) * per)) \
      --users "$USERS" --qps 0 --no-shake --backoff-base "$BASE" --backoff-cap "$CAP" "$jitter" \
      --connect-rate 10000000 --inflight 1000000 \
      >"$dir/client$i.log" 2>&1 &
    PIDS+=($!)
  done
  local t=0
  until [ "$(stat_of "$dir/server.stats" active)" = "$USERS" ]; do
    sleep 0.2; t=$((t + 1))
    [ $t -lt 600 ] || { echo "bench-reconnect: $mode: clients did not all connect" >&2; exit 1; }
  done
  echo "bench-reconnect: $mode: $USERS connected; killing the server for $DOWN s"
  kill -KILL $spid; wait $spid 2>/dev/null || true
  sleep "$DOWN"
  rm -f "$dir/server.stats"
  local d0; d0=$(drops)
  "$B/hb-server" "${sargs[@]}" >>"$dir/server.log" 2>&1 &
  spid=$!
  PIDS+=("$spid")
  local t0; t0=$(date +%s%N)
  : >"$dir/curve.tsv"
  while :; do
    local now; now=$(( ($(date +%s%N) - t0) / 1000000 ))
    local a; a=$(stat_of "$dir/server.stats" active)
    echo -e "$now\t${a:-0}" >>"$dir/curve.tsv"
    [ "${a:-0}" = "$USERS" ] && break
    [ $now -lt 120000 ] || { echo "bench-reconnect: $mode: not everyone came back in 120 s" >&2; break; }
    sleep 0.1
  done
  local d1; d1=$(drops)
  awk -v n="$USERS" -v mode="$mode" -v dr=$(( ${d1:-0} - ${d0:-0} )) '
    { t[NR] = $1; c[NR] = $2 }
    END {
      for (q = 50; q <= 100; q += (q < 90 ? 40 : (q < 99 ? 9 : 1))) {
        for (i = 1; i <= NR && c[i] < n * q / 100; i++);
        printf "%s: %d%% back after %.1f s\n", mode, q, (i <= NR ? t[i] : t[NR]) / 1000
      }
      printf "%s: listen-queue drops during the reconnect: %d\n", mode, dr
    }' "$dir/curve.tsv" | tee -a "$OUT/report.txt"
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

echo "bench-reconnect: $USERS users, $CLIENTS client processes, server down $DOWN s, back-off base $BASE ms cap $CAP ms" \
  | tee "$OUT/report.txt"
run jitter --backoff-jitter
run nojitter --no-backoff-jitter
gnuplot <<EOF
set terminal pngcairo size 1100,520 font ",11"
set output "$OUT/reconnect.png"
set title "Reconnect after a server restart: $USERS clients, back-off cap $CAP ms"
set xlabel "seconds since the server restarted"
set ylabel "logged-in connections"
set grid
set key bottom right
set format y "%'.0f"
plot "$OUT/jitter/curve.tsv" using (\$1/1000):2 with lines lw 2 title "full jitter (hb-client default)", \
     "$OUT/nojitter/curve.tsv" using (\$1/1000):2 with lines lw 2 dt 2 title "no jitter (everyone retries at the same moments)"
EOF
echo "bench-reconnect: chart $OUT/reconnect.png, report $OUT/report.txt"
