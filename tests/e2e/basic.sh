#!/usr/bin/env bash
# End to end on loopback: a server with 4 SETs, 2 client processes, 20,000
# connections, both flows, a bounded run.  Asserts that every connection was
# established, every shake got a reply, every packet made was won, every
# send-flow share was opened, and that the ledger check passes.
. "$(dirname "$0")/lib.sh"
PORTS=$(free_ports 4)
USERS=20000

start server "$BIN/hb-server" --sets 4 --port "$PORTS" --users $USERS --rate 200 --total 1500 \
  --send-rate 200 --send-total 500 --journal "$WORK/j" --stats-file "$WORK/server.stats"
wait_until 10 listening "$(first_port "$PORTS")" || fail "server did not listen"
for c in a b; do
  from=$([ $c = a ] && echo 0 || echo 10000); to=$((from + 10000))
  start "client_$c" "$BIN/hb-client" --server 127.0.0.1 --port "$PORTS" --uid-from $from --uid-to $to \
    --users $USERS --qps 2000 --duration 16 --drain 10 --ledger "$WORK/$c.ledger" --stats-file "$WORK/$c.stats"
done
wait_exit client_a 60
wait_exit client_b 60
stop server
log "run finished"

expect_eq "server: connections accepted" "$(stat "$WORK/server.stats" accepted)" $USERS
expect_eq "server: logins" "$(stat "$WORK/server.stats" logins)" $USERS
expect_eq "server: errors" "$(stat "$WORK/server.stats" errors)" 0
for c in a b; do
  s="$WORK/$c.stats"
  expect_eq "client $c: logins (no reconnects)" "$(stat "$s" logins)" 10000
  shakes=$(stat "$s" shakes)
  expect_ge "client $c: shakes sent" "$shakes" 10000
  expect_eq "client $c: replies = shakes" "$(stat "$s" replies)" "$shakes"
  expect_eq "client $c: unanswered" "$(stat "$s" outstanding)" 0
  expect_eq "client $c: error frames" "$(stat "$s" error_frames)" 0
done
expect_eq "server replies = client replies" "$(stat "$WORK/server.stats" replies)" \
  $(( $(stat "$WORK/a.stats" replies) + $(stat "$WORK/b.stats" replies) ))
"$BIN/hb-reconcile" --journal "$WORK/j" --server-stats "$WORK/server.stats" --expect-all-won --expect-all-opened \
  "$WORK/a.ledger" "$WORK/b.ledger" || fail "ledger check"
ok "ledger check"
