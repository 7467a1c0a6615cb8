#!/usr/bin/env bash
# Power loss (issue 12.5): a reply about money leaves only once its record is
# durable -- synced, not merely written.  SIGKILL cannot show that (the page
# cache survives it), so the server runs under tests/powerloss/shim.c: the
# journal's writes are held in memory until an fdatasync (each of which
# takes 20 ms more: a slow disk, so that records are written-but-not-durable
# much of the time), and SIGUSR2 is a power cut that drops what was never
# synced and kills the server.  Power is cut 4 times mid-run with replies
# waiting for the journal, and the server restarted on what survived, while
# clients shake (and open: the send flow runs alongside) throughout.
# At the end every grant any client heard of (its ledger's W and S lines)
# must be in the surviving journal and nothing may be paid twice:
# hb-reconcile exits exactly 0.  At least one cut must have destroyed
# written-but-unsynced records, or the test proved nothing.
. "$(dirname "$0")/../e2e/lib.sh"
SHIM=${HB_SHIM:-$BIN/../tests/libhb-powerloss.so}
[ -f "$SHIM" ] || fail "no power-loss shim at $SHIM (HB_SHIM)"
CUTS=${HB_PL_CUTS:-4}
PORTS=$(free_ports 2)
P=$(first_port "$PORTS")
USERS=4000
SS="$WORK/server.stats"

ge() { local v; v=$(stat "$1" "$2" 2>/dev/null) || return 1; [[ $v =~ ^[0-9]+$ ]] && [ "$v" -ge "$3" ]; }
N=0
SERVER=
start_server() {
  rm -f "$SS"
  N=$((N + 1))
  SERVER=server_$N
  start "$SERVER" env LD_PRELOAD="$SHIM" HB_PL_JOURNAL="$WORK/j" HB_PL_SYNC_DELAY_US=20000 \
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
    "$BIN/hb-server" --sets 2 --port "$PORTS" --users $USERS --rate 1500 --total 1000000 --send-rate 100 \
    --send-total 100000 --send-concurrent --fsync --journal "$WORK/j" --stats-file "$SS" --stats-every 100
  wait_until 10 listening "$P" || fail "server instance $N did not listen"
  wait_until 5 test -s "$SS" || fail "server instance $N wrote no stats"
}
start_server
from=0
for c in a b; do
  start "client_$c" "$BIN/hb-client" --port "$PORTS" --uid-from $from --uid-to $((from + USERS / 2)) --users $USERS \
    --qps 1200 --duration 0 --drain 15 --backoff-base 50 --backoff-cap 500 \
    --ledger "$WORK/$c.ledger" --stats-file "$WORK/$c.stats"
  from=$((from + USERS / 2))
done
wait_until 30 ge "$SS" wins 500 || fail "no grants flowing (wins $(stat "$SS" wins))"

lost=0
for cut in $(seq "$CUTS"); do
  w0=$(stat "$SS" wins)
  # Grants being made (not the deferred gauge: a server that does not
  # defer is what this test must catch); the shim's report says what was
  # written but unsynced at the cut.
  wait_until 10 ge "$SS" wins $((w0 + 300)) || fail "cut $cut: no grants being made on $SERVER"
  log "cut $cut: power cut on $SERVER with $(stat "$SS" deferred) replies waiting for the journal, wins $(stat "$SS" wins)"
  stop "$SERVER" USR2 137 # the shim drops what was not synced and SIGKILLs the server
  report=$(grep "hb-powerloss: power cut" "$WORK/$SERVER.log") || fail "$SERVER: the shim did not cut (no report)"
  log "$report"
  n=${report##*power cut: }
  n=${n%% bytes*}
  lost=$((lost + n))
  start_server
  log "$(grep -o 'records replayed.*' "$WORK/$SERVER.log" | cut -c1-150)"
  wait_until 30 ge "$SS" logins $USERS || fail "not all $USERS clients came back to $SERVER within 30 s" # a wide bound, as in crash.sh
done
expect_ge "journal bytes written but never synced, lost in the cuts" "$lost" 1

w0=$(stat "$SS" wins)
wait_until 20 ge "$SS" wins $((w0 + 300)) || fail "$SERVER did not go on paying"
kill -TERM "$(hb_pid client_a)" "$(hb_pid client_b)"
wait_exit client_a 40
wait_exit client_b 40
stop "$SERVER"
ge "$SS" final 1 || fail "no final stats from $SERVER"
for c in a b; do
  expect_eq "client $c: unanswered" "$(stat "$WORK/$c.stats" outstanding)" 0
done
log "client W lines: $(cat "$WORK"/[ab].ledger | grep -c '^W '), retries after the cuts: $(( $(stat "$WORK/a.stats" retries) + $(stat "$WORK/b.stats" retries) ))"
rc=0
"$BIN/hb-reconcile" --journal "$WORK/j" --server-stats "$SS" "$WORK/a.ledger" "$WORK/b.ledger" >"$WORK/rec.txt" 2>&1 || rc=$?
[ $rc = 0 ] || { head -n 30 "$WORK/rec.txt"; fail "ledger check after $CUTS power cuts: exit $rc, want 0"; }
ok "ledger check after $CUTS power cuts: every grant a client heard of survived, none paid twice (exit 0)"
