#!/usr/bin/env bash
# tools/bench/connect.sh -- what connecting and logging in one user costs, in
# CPU time of the server and of the client, against two floors measured in
# the same run:
#   server  hb-server: connect, Login, LoginOk (the uid directory, the reply)
#   floor   hb-echo-floor with `hb-client --echo`: connect only (c1m.sh's
#           connect floor)
#   floor+rt  hb-echo-floor with `hb-client --echo --echo-login`: connect and
#           one round trip of the same Login frame (the least any login can
#           cost: a message each way)
#   tfo     hb-server --fastopen with `hb-client --fastopen`: the Login rides
#           in the SYN (TCP Fast Open; needs net.ipv4.tcp_fastopen = 3, which
#           this script sets for the run and puts back; left out when it
#           cannot)
# Each run starts its target fresh on loopback, connects --users users from
# one hb-client as fast as it will go, and reads utime+stime of both
# processes (/proc/PID/stat) before and once every user is up (the client's
# `active`, from its stats file, rewritten every second: the idle tail that
# adds is a few ms against seconds of work).  The targets take turns, in a
# rotated order each round (S F R T, F R T S, ...), so the box's drift
# falls on all of them.  CPU per connection, not time, is the figure: on 2 cores
# with both sides busy, time follows CPU.  Not part of tools/test.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
USERS=60000 ROUNDS=3 SETS=8 THREADS=8 OUT=""
usage() {
  cat <<'EOF'
Usage: tools/bench/connect.sh [--users N] [--rounds R] [--sets S] [--threads T] [--out DIR]
  --users N     connections per run (60000; at most 19,900 per --sets / --threads)
  --rounds R    rounds of the targets (3)
  --sets S      hb-server --sets and hb-echo-floor --threads (8)
  --threads T   hb-client --threads (8)
  --out DIR     results (out/connect-DATE): runs.tsv, summary.txt, logs
Prints one line per run and, per target, the median and range over the rounds
of server and client CPU per connection, and the ratios of the medians.
EOF
}
while [ $# -gt 0 ]; do
  case $1 in
    --users) USERS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --sets) SETS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "connect: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for v in USERS ROUNDS SETS THREADS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "connect: --${v,,} must be a positive integer" >&2; exit 2; }
done
if [ $((USERS / SETS)) -gt 19900 ] || [ $((USERS / THREADS)) -gt 19900 ]; then
  echo "connect: $USERS users need --sets and --threads >= $(((USERS + 19899) / 19900)) (20,000 descriptors per table)" >&2
  exit 2
fi
OUT=${OUT:-$ROOT/out/connect-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
export HB_BIN=${HB_BIN:-$ROOT/build/bin}
B=$HB_BIN
# shellcheck source=../dev/lib.sh
. "$ROOT/tools/dev/lib.sh"
export HB_FAIL_PREFIX=connect # hb_fail (lib.sh) names the script

PIDS=()
TFO_OLD=""
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -z "$TFO_OLD" ] || sysctl -qw net.ipv4.tcp_fastopen="$TFO_OLD" || true
}
trap cleanup EXIT INT TERM
cpu() { awk '{ print $14 + $15 }' /proc/"$1"/stat; }
TCK=$(getconf CLK_TCK)

# run TARGET ROUND: one fresh target and client; appends a line to runs.tsv
run() {
  local t=$1 r=$2 ports sp cp s0 c0 t0 s1 c1 t1 st="$OUT/$1-$2"
  ports=$(hb_free_ports 8)
  rm -f "$st".*
  if [ "$t" = server ] || [ "$t" = tfo ]; then
    local fo=(); [ "$t" = tfo ] && fo=(--fastopen 65535)
    "$B/hb-server" "${fo[@]}" --sets "$SETS" --port "$ports" --users "$USERS" --rate 0 --total 0 \
      --journal "$st.journal" --stats-file "$st.server.stats" >"$st.server.log" 2>&1 &
  else
    "$B/hb-echo-floor" --threads "$SETS" --port "$ports" --stats-file "$st.server.stats" >"$st.server.log" 2>&1 &
  fi
  sp=$!
  PIDS+=("$sp")
  hb_wait_listening 10 "$(hb_first_port "$ports")" || hb_fail "$t did not listen (see $st.server.log)"
  local mode=()
  case $t in floor) mode=(--echo) ;; floor+rt) mode=(--echo --echo-login) ;; tfo) mode=(--fastopen) ;; esac
  s0=$(cpu "$sp")
  t0=$(date +%s.%N)
  "$B/hb-client" "${mode[@]}" --server 127.0.0.1 --port "$ports" --uid-from 0 --uid-to "$USERS" --users "$USERS" \
    --no-shake --connect-rate 10000000 --inflight "$USERS" --threads "$THREADS" \
    --stats-file "$st.client.stats" >"$st.client.log" 2>&1 &
  cp=$!
  PIDS+=("$cp")
  c0=$(cpu "$cp")
  hb_wait_stat 120 "$st.client.stats" active -ge "$USERS" || hb_fail "$t: not every user up in 120 s (see $st.client.log)"
  s1=$(cpu "$sp") c1=$(cpu "$cp") t1=$(date +%s.%N)
  if [ "$t" = tfo ]; then # the Login must have ridden in the SYN, or this row is the server's again
    local fo_n; fo_n=$(hb_stat "$st.client.stats" fastopen_connects)
    [ "$fo_n" -ge $((USERS / 2)) ] || hb_fail "tfo: only $fo_n of $USERS connects used Fast Open (see $st.client.log)"
  fi
  kill "$cp" "$sp" 2>/dev/null || true
  wait "$cp" "$sp" 2>/dev/null || true
  awk -v t="$t" -v r="$r" -v n="$USERS" -v k="$TCK" -v ds=$((s1 - s0)) -v dc=$((c1 - c0)) -v w="$(echo "$t1 - $t0" | bc)" \
    'BEGIN { printf "%s\t%d\t%.2f\t%.2f\t%.2f\t%.1f\n", t, r, ds * 1e6 / k / n, dc * 1e6 / k / n, (ds + dc) * 1e6 / k / n, w }' \
    | tee -a "$OUT/runs.tsv"
}

printf 'target\tround\tserver_us\tclient_us\ttotal_us\twall_s\n' | tee "$OUT/runs.tsv"
TARGETS=(server floor floor+rt)
# TCP Fast Open on loopback: the server side (bit 2) is off by default
TFO_NOW=$(sysctl -n net.ipv4.tcp_fastopen 2>/dev/null || echo "")
if [ -n "$TFO_NOW" ] && { [ $((TFO_NOW & 3)) = 3 ] || { sysctl -qw net.ipv4.tcp_fastopen=$((TFO_NOW | 3)) 2>/dev/null && TFO_OLD=$TFO_NOW; }; }; then
  TARGETS+=(tfo)
else
  echo "connect: net.ipv4.tcp_fastopen cannot be set to 3 here: no tfo target" >&2
fi
NT=${#TARGETS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < NT; i++)); do
    run "${TARGETS[$(((i + r - 1) % NT))]}" "$r"
    sleep 1 # let the closed connections go before the next target connects
  done
done

# per target: median (min-max) of each column; ratios of the medians
awk -F'\t' -v n="$USERS" -v rounds="$ROUNDS" -v targets="${TARGETS[*]}" '
  function med(a, k,   i, j, t, m) {
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  NR > 1 { k[$1]++; s[$1, k[$1]] = $3; c[$1, k[$1]] = $4; x[$1, k[$1]] = $5 }
  END {
    printf "CPU per connection, %d users, %d rounds (median, min-max, us):\n", n, rounds
    nt = split(targets, T, " ")
    for (ti = 1; ti <= nt; ti++) {
      t = T[ti]
      for (col = 1; col <= 3; col++) {
        for (i = 1; i <= k[t]; i++) { v = col == 1 ? s[t, i] : col == 2 ? c[t, i] : x[t, i]; a[i] = v; b[i] = v }
        m[t, col] = med(a, k[t]); lo = 1e18; hi = 0
        for (i = 1; i <= k[t]; i++) { if (b[i] < lo) lo = b[i]; if (b[i] > hi) hi = b[i] }
        r[t, col] = sprintf("%.1f (%.1f-%.1f)", m[t, col], lo, hi)
      }
      printf "  %-9s server %-18s client %-18s together %s\n", t, r[t, 1], r[t, 2], r[t, 3]
    }
    printf "server / floor: %.2f; server / floor+rt: %.2f; floor+rt / floor: %.2f (together)\n",
      m["server", 3] / m["floor", 3], m["server", 3] / m["floor+rt", 3], m["floor+rt", 3] / m["floor", 3]
    if (("tfo", 3) in m)
      printf "tfo / floor: %.2f; tfo / server: %.2f (together)\n", m["tfo", 3] / m["floor", 3], m["tfo", 3] / m["server", 3]
  }' "$OUT/runs.tsv" | tee "$OUT/summary.txt"
