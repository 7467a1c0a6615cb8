#!/usr/bin/env bash
# Hot upgrade (issue 17), scaled down: 20,000 connections shaking at
# 2,000/s with packets flowing, and on the same run:
#   1. a takeover refused for other money flags: a clear error, exit 1,
#      nothing changed;
#   2. takeovers whose new process dies midway (HB_TAKEOVER_DIE_AT: after
#      Hello, after the old server froze, while SET 0 receives, before
#      Ready): the old server thaws and serves on, saying so;
#   3. a takeover, then a second one right after (from the new process);
# and through all of it the clients see 0 closes, 0 retried shakes and no
# new Login (the sessions go on: 20,000 logins for 20,000 users), every
# shake is answered, and the ledger check passes across the three server
# processes.  The pause of each takeover is printed.
. "$(dirname "$0")/lib.sh"
PORTS=$(free_ports 2)
P=$(first_port "$PORTS")
USERS=${HB_UPGRADE_USERS:-20000}
SOCK="$WORK/upgrade.sock"
SS="$WORK/server.stats"
CS="$WORK/client.stats"
C='' # the server tools/upgrade.sh starts detached: not ours to wait for, ours to stop
trap 'rc=$?; set +e; [ -z "$C" ] || kill -KILL "$C" 2>/dev/null; (exit $rc); cleanup' EXIT
server_args() { # TOTAL
  echo --sets 2 --port "$PORTS" --users "$USERS" --rate 200 --total "$1" --send-rate 50 --send-total 200 \
    --send-concurrent --journal "$WORK/j" --stats-file "$SS" --stats-every 200 --upgrade-socket "$SOCK"
}
# shellcheck disable=SC2046
start a "$BIN/hb-server" $(server_args 100000)
wait_until 10 listening "$P" || fail "server did not listen"
start client "$BIN/hb-client" --port "$PORTS" --uid-to "$USERS" --qps 2000 --duration 0 --drain 10 \
  --ledger "$WORK/client.ledger" --stats-file "$CS"
logged_in() { [ "$(stat "$CS" logins 2>/dev/null)" = "$USERS" ]; }
wait_until 60 logged_in || fail "not every user logged in"
log "$USERS users logged in, shaking"

# 1. other money: refused, nothing changed
# shellcheck disable=SC2046
start refused "$BIN/hb-server" $(server_args 99999) --takeover "$SOCK"
wait_exit refused 20 1
grep -q "takeover refused by the running server: money settings differ: --total 99999" "$WORK/refused.log" ||
  fail "the refusal does not say why: $(tail -1 "$WORK/refused.log")"
ok "a takeover with --total 99999 refused: $(grep -o 'money settings differ.*' "$WORK/refused.log")"

# 2. a new process that dies midway: the old one thaws
n=0
for stage in hello frozen receive ready; do
  n=$((n + 1))
  # shellcheck disable=SC2046
  start "die_$stage" env HB_TAKEOVER_DIE_AT=$stage "$BIN/hb-server" $(server_args 100000) --takeover "$SOCK"
  wait_exit "die_$stage" 60 137
  thawed() { [ "$(grep_count "serving everything again" "$WORK/a.log")" -ge "$1" ]; }
  wait_until 60 thawed $n || fail "the old server did not say it serves again after a death at '$stage'"
  ok "new process killed at '$stage': $(grep "serving everything again" "$WORK/a.log" | tail -1 | sed 's/^hb-server: //')"
done
shaking() { # the old server still answers: replies keep coming
  local r0 r1
  r0=$(stat "$CS" replies) && sleep 1 && r1=$(stat "$CS" replies) && [ "$r1" -gt "$r0" ]
}
shaking || fail "shakes are not answered after the failed takeovers"

# 3. two takeovers in a row, the second by the operator's tool
# shellcheck disable=SC2046
start b "$BIN/hb-server" $(server_args 100000) --takeover "$SOCK"
wait_exit a 60 0
wait_until 30 grep -q "taken over from pid" "$WORK/b.log" || fail "b did not take over"
ok "takeover by b: $(grep -o '[0-9]* connections, the listeners.*' "$WORK/b.log")"
rc=0
# shellcheck disable=SC2046
"$(dirname "$0")/../../tools/upgrade.sh" --socket "$SOCK" --log "$WORK/c.log" -- "$BIN/hb-server" $(server_args 100000) \
  >"$WORK/upgrade.out" 2>&1 || rc=$?
cat "$WORK/upgrade.out"
expect_eq "tools/upgrade.sh: exit" "$rc" 0
C=$(sed -n 's/.*new server pid \([0-9]*\).*/\1/p' "$WORK/upgrade.out")
[ -n "$C" ] || fail "tools/upgrade.sh did not name the new server"
wait_exit b 60 0
grep -q "took over 20000 connections\|took over $USERS connections" "$WORK/upgrade.out" || fail "tools/upgrade.sh did not report the connections"
shaking || fail "shakes are not answered after the takeovers"

stop client # it drains: every shake in flight is answered before it exits
expect_eq "client: connections lost" "$(stat "$CS" closes)" 0
expect_eq "client: logins (no session was re-established)" "$(stat "$CS" logins)" "$USERS"
expect_eq "client: retried shakes" "$(stat "$CS" retries)" 0
expect_eq "client: error frames" "$(stat "$CS" error_frames)" 0
expect_eq "client: every shake answered" "$(stat "$CS" replies)" "$(stat "$CS" shakes)"
expect_ge "client: packets won across the takeovers" "$(stat "$CS" wins)" 200
kill -TERM "$C" # started detached by tools/upgrade.sh: not ours to wait for
gone() { ! kill -0 "$C" 2>/dev/null; }
wait_until 60 gone || fail "the last server did not stop"
grep -q "summary:" "$WORK/c.log" || fail "the last server did not finish cleanly: $(tail -2 "$WORK/c.log")"
rc=0
"$BIN/hb-reconcile" --journal "$WORK/j" --server-stats "$SS" "$WORK/client.ledger" >"$WORK/reconcile.out" 2>&1 || rc=$?
expect_eq "hb-reconcile across three server processes: exit" "$rc" 0
ok "$(tail -1 "$WORK/reconcile.out")"
