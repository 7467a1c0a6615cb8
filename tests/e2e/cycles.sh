#!/usr/bin/env bash
# Producer cycles: SIGUSR1 starts another cycle (--total more shake-flow
# packets, then --send-total more send-flow packets), as the seed's stages
# do.  The server is killed in the middle of the second cycle and restarted
# on its journal: it works out that two cycles were begun and finishes the
# second one, nothing more and nothing less; the ledger check passes.
. "$(dirname "$0")/lib.sh"
PORTS=$(free_ports 2)
ARGS=(--sets 3 --port "$PORTS" --users 4000 --rate 400 --total 600 --send-rate 400 --send-total 200
  --journal "$WORK/j" --stats-file "$WORK/server.stats" --shake-limit 0)
start server "$BIN/hb-server" "${ARGS[@]}"
wait_until 10 listening "$(first_port "$PORTS")" || fail "server did not listen"
start client "$BIN/hb-client" --port "$PORTS" --uid-to 4000 --qps 2000 --duration 22 --drain 10 \
  --backoff-cap 1000 --ledger "$WORK/c.ledger" --stats-file "$WORK/c.stats"
made() { [ "$(stat "$WORK/server.stats" made_shake)" = "$1" ] && [ "$(stat "$WORK/server.stats" made_send)" = "$2" ]; }
wait_until 10 made 600 200 || fail "first cycle not made"
sleep 1
expect_eq "after the first cycle: still 600 + 200 (nothing more without a signal)" \
  "$(stat "$WORK/server.stats" made_shake)+$(stat "$WORK/server.stats" made_send)" "600+200"
stop_pid=$(hb_pid server)
kill -USR1 "$stop_pid"
made_shake_ge() { [ "$(stat "$WORK/server.stats" made_shake)" -ge "$1" ]; }
wait_until 5 made_shake_ge 900 || fail "second cycle did not start"
stop server KILL
log "server killed in the middle of cycle 2 (made $(stat "$WORK/server.stats" made_shake) shake packets)"
rm -f "$WORK/server.stats"
start server "$BIN/hb-server" "${ARGS[@]}"
wait_until 10 listening "$(first_port "$PORTS")" || fail "server did not come back"
wait_until 10 made 1200 400 || fail "the second cycle was not finished after the restart: $(stat "$WORK/server.stats" made_shake)+$(stat "$WORK/server.stats" made_send)"
expect_eq "cycle after the restart" "$(stat "$WORK/server.stats" cycle)" 2
sleep 1
expect_eq "after two cycles: exactly 1200 + 400" \
  "$(stat "$WORK/server.stats" made_shake)+$(stat "$WORK/server.stats" made_send)" "1200+400"
wait_exit client 60
stop server
"$BIN/hb-reconcile" --journal "$WORK/j" --server-stats "$WORK/server.stats" --expect-all-won --expect-all-opened \
  "$WORK/c.ledger" || fail "ledger check"
ok "ledger check after two cycles and a crash"
