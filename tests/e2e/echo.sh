#!/usr/bin/env bash
# The echo floor and its client modes, as the benchmarks use them
# (tools/bench/c1m.sh, tools/bench/connect.sh): hb-client --echo against
# hb-echo-floor counts every echoed shake as a reply and has no login;
# --echo-login sends a Login at connect and counts the user up only when it
# comes back (the floor of a login: one round trip each).  A mode that
# silently did nothing would make either floor meaningless, so both are
# checked against their counts, and the flag misuse is a usage error.
. "$(dirname "$0")/lib.sh"
PORTS=$(free_ports 2)
USERS=2000
start floor "$BIN/hb-echo-floor" --threads 2 --port "$PORTS" --stats-file "$WORK/floor.stats"
wait_until 10 listening "$(first_port "$PORTS")" || fail "echo floor did not listen"

start plain "$BIN/hb-client" --echo --port "$PORTS" --uid-to $USERS --qps 1000 --duration 3 --drain 3 \
  --stats-file "$WORK/plain.stats"
wait_exit plain 30
S=$WORK/plain.stats
expect_eq "--echo: users up" "$(stat "$S" connected_at_once)" $USERS
expect_eq "--echo: no logins" "$(stat "$S" logins)" 0
expect_ge "--echo: shakes sent" "$(stat "$S" shakes)" 2000
expect_eq "--echo: every shake echoed" "$(stat "$S" replies)" "$(stat "$S" shakes)"
expect_eq "--echo: protocol errors" "$(stat "$S" protocol_errors)" 0

start login "$BIN/hb-client" --echo --echo-login --port "$PORTS" --uid-to $USERS --no-shake \
  --stats-file "$WORK/login.stats"
hb_wait_stat 20 "$WORK/login.stats" active -ge $USERS || fail "--echo-login: not every user up"
stop login
S=$WORK/login.stats
expect_eq "--echo-login: logins (each Login came back)" "$(stat "$S" logins)" $USERS
expect_eq "--echo-login: connects (no reconnect)" "$(stat "$S" connects)" $USERS
expect_eq "--echo-login: protocol errors" "$(stat "$S" protocol_errors)" 0
stop floor
expect_ge "echo floor: bytes echoed" "$(stat "$WORK/floor.stats" bytes)" 1

rc=0
"$BIN/hb-client" --echo-login --uid-to 10 >"$WORK/misuse.log" 2>&1 || rc=$?
expect_eq "--echo-login without --echo: usage error" "$rc" 2
grep -q -- "--echo-login needs --echo" "$WORK/misuse.log" || fail "no clear message for --echo-login without --echo"
ok "echo modes"
