#!/usr/bin/env bash
# Crash safety (issue 3): the server is killed with SIGKILL twice mid-run
# (during the shake flow, then during the send flow) and restarted on the
# same journal.  Clients reconnect by themselves and resend what was left
# unanswered.  At the end: every shake answered, every packet made was won,
# every share opened, and the ledger check passes -- no grant lost, none paid
# twice.  Clients shake (150/s) slower than packets are made (200/s), so
# packets are waiting in the SET queues at each crash and must be dealt again.
. "$(dirname "$0")/lib.sh"
PORTS=$(free_ports 4)
USERS=20000
SERVER_ARGS=(--sets 4 --port "$PORTS" --users $USERS --rate 200 --total 2000 --send-rate 200 --send-total 600
  --journal "$WORK/j" --stats-file "$WORK/server.stats")

start server "$BIN/hb-server" "${SERVER_ARGS[@]}"
wait_until 10 listening "$(first_port "$PORTS")" || fail "server did not listen"
for c in a b; do
  from=$([ $c = a ] && echo 0 || echo 10000); to=$((from + 10000))
  start "client_$c" "$BIN/hb-client" --server 127.0.0.1 --port "$PORTS" --uid-from $from --uid-to $to \
    --users $USERS --qps 150 --duration 30 --drain 15 --backoff-base 50 --backoff-cap 1000 \
    --ledger "$WORK/$c.ledger" --stats-file "$WORK/$c.stats"
done

crash() {
  local why=$1
  stop server KILL
  log "server killed with SIGKILL ($why): wins so far $(stat "$WORK/server.stats" wins)"
  sleep 1
  rm -f "$WORK/server.stats"
  start server "$BIN/hb-server" "${SERVER_ARGS[@]}"
  local t0; t0=$(date +%s%N)
  wait_until 10 listening "$(first_port "$PORTS")" || fail "server did not come back"
  grep -q "records replayed" "$WORK/server.log" || fail "restarted server did not replay the journal"
  log "server restarted: $(grep 'records replayed' "$WORK/server.log" | tail -1 | cut -c1-160)"
  # Back-off cap 1 s, full jitter: everyone is back within the cap plus the
  # time to connect 20,000 (about 1 s here) plus one stats-file period.
  wait_until 5 bash -c "[ \"\$(awk '\$1==\"logins\"{print \$2}' '$WORK/server.stats' 2>/dev/null)\" -ge $USERS ]" \
    || fail "not all $USERS clients came back within 5 s of the restart"
  ok "all $USERS clients back $(( ($(date +%s%N) - t0) / 1000000 )) ms after the restart (back-off cap 1 s)"
}
sleep 6
crash "mid shake flow"
wait_until 20 bash -c "[ \$(awk '\$1==\"made_send\"{print \$2}' '$WORK/server.stats') -ge 150 ]" \
  || fail "the send flow did not resume"
crash "mid send flow"

wait_exit client_a 90
wait_exit client_b 90
stop server
log "run finished"

for c in a b; do
  s="$WORK/$c.stats"
  expect_ge "client $c: logins (reconnected after both crashes)" "$(stat "$s" logins)" 20000
  shakes=$(stat "$s" shakes)
  expect_eq "client $c: replies = shakes" "$(stat "$s" replies)" "$shakes"
  expect_eq "client $c: unanswered" "$(stat "$s" outstanding)" 0
done
retries=$(( $(stat "$WORK/a.stats" retries) + $(stat "$WORK/b.stats" retries) ))
log "shakes resent after reconnects: $retries"
expect_ge "server: wins replayed from the journal at the last restart" "$(stat "$WORK/server.stats" replayed_wins)" 1
grep -q "[1-9][0-9]* unwon packets dealt again" "$WORK/server.log" || fail "no created-but-unwon packets were dealt again"
ok "unwon packets from the journal were dealt again: $(grep -o "[0-9]* unwon packets dealt again" "$WORK/server.log" | tr "\\n" " ")"
"$BIN/hb-reconcile" --journal "$WORK/j" --server-stats "$WORK/server.stats" --expect-all-won --expect-all-opened \
  "$WORK/a.ledger" "$WORK/b.ledger" || fail "ledger check after two crashes"
ok "ledger check after two SIGKILLs"
