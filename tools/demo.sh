#!/usr/bin/env bash
# tools/demo.sh -- set up, build, and run the main job on loopback:
#   one hb-server (4 SETs), two hb-client processes, 20,000 users, a producer
#   of 200 packets/s (shake flow, then the send flow: 3 recipients each),
#   clients shaking 2,000/s in aggregate for about 20 s; then a summary and
#   the ledger check.  Exits 0 only when the ledger agrees.
# Environment: USERS, QPS, DURATION, RATE, TOTAL, SEND_TOTAL, OUT (output dir),
#              PORTS (default 7000-7003 or the next free block), MONITOR_PORT.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/.."
ROOT=$PWD
USERS=${USERS:-20000}
QPS=${QPS:-2000}
DURATION=${DURATION:-20}
RATE=${RATE:-200}
TOTAL=${TOTAL:-2400}
SEND_TOTAL=${SEND_TOTAL:-1000}
OUT=${OUT:-$ROOT/out/demo-$(date +%Y%m%d-%H%M%S)}

tools/dev/setup.sh
echo "demo: building (build/)"
tools/dev/build.sh build
export HB_BIN=$ROOT/build/bin
B=$HB_BIN
mkdir -p "$OUT"
# shellcheck source=dev/lib.sh
. tools/dev/lib.sh
HB_LOGDIR=$OUT HB_FAIL_PREFIX=demo

if [ -z "${PORTS:-}" ]; then
  base=7000
  until hb_port_free $base && hb_port_free $((base + 1)) && hb_port_free $((base + 2)) && hb_port_free $((base + 3)); do
    base=$((base + 4))
  done
  PORTS="$base-$((base + 3))"
fi

trap 'hb_stop_all' EXIT
trap 'exit 130' INT TERM

MON_ARGS=()
if [ -x "$B/hb-monitor" ]; then
  MONITOR_PORT=${MONITOR_PORT:-8080}
  until hb_port_free "$MONITOR_PORT" && hb_port_free $((MONITOR_PORT + 1)); do MONITOR_PORT=$((MONITOR_PORT + 2)); done
  hb_start monitor "$B/hb-monitor" --udp 127.0.0.1:$((MONITOR_PORT + 1)) --http 127.0.0.1:"$MONITOR_PORT" \
    --log "$OUT/monitor.tsv"
  MON_ARGS=(--monitor 127.0.0.1:$((MONITOR_PORT + 1)))
  echo "demo: live dashboard on http://127.0.0.1:$MONITOR_PORT/ (Prometheus: /metrics)"
fi

echo "demo: server on 127.0.0.1 ports $PORTS; output in $OUT"
hb_start server "$B/hb-server" --sets 4 --port "$PORTS" --users "$USERS" --rate "$RATE" --total "$TOTAL" \
  --send-rate "$RATE" --send-total "$SEND_TOTAL" --send-split 3 --journal "$OUT/server.journal" \
  --stats-file "$OUT/server.stats" "${MON_ARGS[@]}" --progress
hb_wait_listening 10 "$(hb_first_port "$PORTS")" || hb_fail "the server did not listen (see $OUT/server.log)"

half=$((USERS / 2))
hb_start client-a "$B/hb-client" --port "$PORTS" --uid-from 0 --uid-to $half --users "$USERS" --qps "$QPS" \
  --duration "$DURATION" --ledger "$OUT/client-a.ledger" --stats-file "$OUT/client-a.stats" --instance client-a \
  "${MON_ARGS[@]}" --progress
tail -n +1 -f --pid="$(hb_pid client-a)" "$OUT/client-a.log" & # client-a's progress on the terminal
TAIL=$!
hb_start client-b "$B/hb-client" --port "$PORTS" --uid-from $half --uid-to "$USERS" --users "$USERS" --qps "$QPS" \
  --duration "$DURATION" --ledger "$OUT/client-b.ledger" --stats-file "$OUT/client-b.stats" --instance client-b \
  "${MON_ARGS[@]}"
hb_wait_exit client-a $((DURATION + 120))
hb_wait_exit client-b 60
wait "$TAIL" || true # tail's status says nothing about the run
hb_stop server
tail -n 1 "$OUT/server.log"

S=$OUT/server.stats A=$OUT/client-a.stats C=$OUT/client-b.stats
read -r up logins replies made_shake made_send wins notices opens errors < <(hb_stat "$S" uptime_s logins replies \
  made_shake made_send wins notices opens_ok errors) || hb_fail "cannot read $S"
shakes=$(hb_stat_sum shakes "$A" "$C")
read -r a50 a99 < <(hb_stat "$A" lat_p50_us lat_p99_us) || hb_fail "cannot read $A"
read -r c50 c99 < <(hb_stat "$C" lat_p50_us lat_p99_us) || hb_fail "cannot read $C"
ms() { echo "$1 / 1000" | bc -l; }
echo
echo "== demo summary (measured)"
printf '  connections          %s of %s users logged in\n' "$logins" "$USERS"
printf '  shakes               %s sent, %s answered by the server (%.0f/s over the %.0f s run, connect ramp included)\n' \
  "$shakes" "$replies" "$(echo "$shakes / $DURATION" | bc -l)" "$DURATION"
printf '  packets              %s shake-flow + %s send-flow made (%.0f/s), %s won by shakes\n' \
  "$made_shake" "$made_send" "$RATE" "$wins"
printf '  send flow            %s notices delivered, %s shares opened\n' "$notices" "$opens"
printf '  reply latency        client-a p50 %.2f ms, p99 %.2f ms; client-b p50 %.2f ms, p99 %.2f ms\n' \
  "$(ms "$a50")" "$(ms "$a99")" "$(ms "$c50")" "$(ms "$c99")"
printf '  server               %s s up, %s errors\n' "$up" "$errors"
echo
if [ -n "${PID_monitor:-}" ]; then
  hb_stop monitor # flushes the last seconds of the log
fi
if [ -x "$ROOT/tools/plot.sh" ] && [ -f "$OUT/monitor.tsv" ]; then
  "$ROOT/tools/plot.sh" "$OUT/monitor.tsv" "$OUT/plots" && echo "demo: charts in $OUT/plots/"
fi
"$B/hb-reconcile" --journal "$OUT/server.journal" --server-stats "$S" --expect-all-won \
  "$OUT/client-a.ledger" "$OUT/client-b.ledger"
