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
B=$ROOT/build/bin
mkdir -p "$OUT"

port_free() { ! ss -Htan "sport = :$1" | grep -q .; }
if [ -z "${PORTS:-}" ]; then
  base=7000
  while ! (port_free $base && port_free $((base + 1)) && port_free $((base + 2)) && port_free $((base + 3))); do
    base=$((base + 4))
  done
  PORTS="$base-$((base + 3))"
fi

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

MON_ARGS=()
if [ -x "$B/hb-monitor" ]; then
  MONITOR_PORT=${MONITOR_PORT:-8080}
  while ! port_free "$MONITOR_PORT"; do MONITOR_PORT=$((MONITOR_PORT + 1)); done
  "$B/hb-monitor" --udp 127.0.0.1:$((MONITOR_PORT + 1)) --http 127.0.0.1:$MONITOR_PORT --log "$OUT/monitor.tsv" \
    >"$OUT/monitor.log" 2>&1 &
  MON_PID=$!
  PIDS+=($MON_PID)
  MON_ARGS=(--monitor 127.0.0.1:$((MONITOR_PORT + 1)))
  echo "demo: live dashboard on http://127.0.0.1:$MONITOR_PORT/ (Prometheus: /metrics)"
fi

echo "demo: server on 127.0.0.1 ports $PORTS; output in $OUT"
"$B/hb-server" --sets 4 --port "$PORTS" --users "$USERS" --rate "$RATE" --total "$TOTAL" \
  --send-rate "$RATE" --send-total "$SEND_TOTAL" --send-split 3 --journal "$OUT/server.journal" \
  --stats-file "$OUT/server.stats" "${MON_ARGS[@]}" --progress >"$OUT/server.log" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
for _ in $(seq 100); do ss -Htln "sport = :${PORTS%%-*}" | grep -q . && break; sleep 0.1; done

half=$((USERS / 2))
"$B/hb-client" --port "$PORTS" --uid-from 0 --uid-to $half --users "$USERS" --qps "$QPS" \
  --duration "$DURATION" --ledger "$OUT/client-a.ledger" --stats-file "$OUT/client-a.stats" --instance client-a \
  "${MON_ARGS[@]}" --progress 2>&1 | tee "$OUT/client-a.log" &
CA=$!
PIDS+=($CA)
"$B/hb-client" --port "$PORTS" --uid-from $half --uid-to "$USERS" --users "$USERS" --qps "$QPS" \
  --duration "$DURATION" --ledger "$OUT/client-b.ledger" --stats-file "$OUT/client-b.stats" --instance client-b \
  "${MON_ARGS[@]}" >"$OUT/client-b.log" 2>&1 &
CB=$!
PIDS+=($CB)
wait $CA $CB
kill -TERM $SERVER && wait $SERVER || true
tail -n 1 "$OUT/server.log"

s() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }
S=$OUT/server.stats A=$OUT/client-a.stats C=$OUT/client-b.stats
up=$(s "$S" uptime_s)
echo
echo "== demo summary (measured)"
printf '  connections          %s of %s users logged in\n' "$(s "$S" logins)" "$USERS"
printf '  shakes               %s sent, %s answered by the server (%.0f/s over the %.0f s run, connect ramp included)\n' \
  $(( $(s "$A" shakes) + $(s "$C" shakes) )) "$(s "$S" replies)" \
  "$(echo "($(s "$A" shakes) + $(s "$C" shakes)) / $DURATION" | bc -l)" "$DURATION"
printf '  packets              %s shake-flow + %s send-flow made (%.0f/s), %s won by shakes\n' \
  "$(s "$S" made_shake)" "$(s "$S" made_send)" "$RATE" "$(s "$S" wins)"
printf '  send flow            %s notices delivered, %s shares opened\n' "$(s "$S" notices)" "$(s "$S" opens_ok)"
printf '  reply latency        client-a p50 %.2f ms, p99 %.2f ms; client-b p50 %.2f ms, p99 %.2f ms\n' \
  "$(echo "$(s "$A" lat_p50_us) / 1000" | bc -l)" "$(echo "$(s "$A" lat_p99_us) / 1000" | bc -l)" \
  "$(echo "$(s "$C" lat_p50_us) / 1000" | bc -l)" "$(echo "$(s "$C" lat_p99_us) / 1000" | bc -l)"
printf '  server               %s s up, %s errors\n' "$up" "$(s "$S" errors)"
echo
if [ -n "${MON_PID:-}" ]; then
  kill -TERM "$MON_PID" && wait "$MON_PID" || true # flushes the last seconds of the log
fi
if [ -x "$ROOT/tools/plot.sh" ] && [ -f "$OUT/monitor.tsv" ]; then
  "$ROOT/tools/plot.sh" "$OUT/monitor.tsv" "$OUT/plots" && echo "demo: charts in $OUT/plots/"
fi
"$B/hb-reconcile" --journal "$OUT/server.journal" --server-stats "$S" --expect-all-won \
  "$OUT/client-a.ledger" "$OUT/client-b.ledger"
