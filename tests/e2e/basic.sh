#!/usr/bin/env bash
# End to end on loopback: a server with 4 SETs, 2 client processes, 20,000
# connections, both flows, a bounded run.  Asserts that every connection was
# established, every shake got a reply, every packet made was won, every
# send-flow share was opened, and that the ledger check passes -- against the
# configured totals (a run that made nothing would pass every "all of them"
# check and the ledger check vacuously).
. "$(dirname "$0")/lib.sh"
PORTS=$(free_ports 4)
USERS=20000
TOTAL=1500 SEND_TOTAL=500 SPLIT=3

start server "$BIN/hb-server" --sets 4 --pin-sets --port "$PORTS" --users $USERS --rate 200 --total $TOTAL \
  --send-rate 200 --send-total $SEND_TOTAL --send-split $SPLIT --journal "$WORK/j" --stats-file "$WORK/server.stats"
wait_until 10 listening "$(first_port "$PORTS")" || fail "server did not listen"
# The producer and the journal writer run as real-time threads (--urgent-rt
# 1 by default): field 41 of a thread's stat is its policy, 1 = SCHED_FIFO.
# As root (CI) they must be; without CAP_SYS_NICE the server falls back to nice.
thread_policy() { # NAME [SERVER]: the policy of the thread called NAME of the process started as SERVER (server)
  local t
  for t in /proc/"$(hb_pid "${2:-server}")"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = "$1" ] && { awk '{ sub(/.*\) /, ""); print $(41 - 2) }' "$t/stat"; return; }
  done
  echo none
}
if [ "$(id -u)" = 0 ]; then
  has_thread() { [ "$(thread_policy "$1")" != none ]; }
  wait_until 5 has_thread hb-journal || fail "no thread hb-journal in the server"
  expect_eq "server: the producer thread is SCHED_FIFO" "$(thread_policy hb-producer)" 1
  expect_eq "server: the journal writer thread is SCHED_FIFO" "$(thread_policy hb-journal)" 1
fi
# --pin-sets: SET k runs on the (k mod n)-th CPU the server may use; client
# a's --pin-workers 1 puts its worker i on the (1 + i mod n)-th.
expand_cpus() { # "0-2,5" -> "0 1 2 5"
  local r a b out=()
  for r in ${1//,/ }; do
    a=${r%-*} b=${r#*-}
    for ((; a <= b; a++)); do out+=("$a"); done
  done
  echo "${out[@]}"
}
pinned_to() { # PROC NAME: the CPU list the thread called NAME of the process started as PROC may use
  local t
  for t in /proc/"$(hb_pid "$1")"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ] && { awk '/^Cpus_allowed_list/ { print $2 }' "$t/status"; return; }
  done
  echo none
}
expect_pins() { # PROC PREFIX COUNT FIRST: threads PREFIX0..COUNT-1 each on one CPU, i-th on allowed CPU (FIRST + i) mod n
  local allowed i want got
  read -r -a allowed <<<"$(expand_cpus "$(awk '/^Cpus_allowed_list/ { print $2 }' /proc/"$(hb_pid "$1")"/status)")"
  for ((i = 0; i < $3; i++)); do
    want=${allowed[$((($4 + i) % ${#allowed[@]}))]}
    got=$(pinned_to "$1" "$2$i")
    expect_eq "$1: thread $2$i pinned to CPU $want" "$got" "$want"
  done
}
has_set3() { [ "$(pinned_to server hb-set-3)" != none ]; }
wait_until 5 has_set3 || fail "no thread hb-set-3 in the server"
expect_pins server hb-set- 4 0
t_clients=$(date +%s%6N) # the server stamps its latest login (login_last_us, wall-clock us)
for c in a b; do
  from=$([ $c = a ] && echo 0 || echo 10000); to=$((from + 10000))
  pin=(); [ $c = a ] && pin=(--pin-workers 1)
  start "client_$c" "$BIN/hb-client" "${pin[@]}" --threads 2 --server 127.0.0.1 --port "$PORTS" --uid-from "$from" --uid-to $to \
    --users $USERS --qps 2000 --duration 16 --drain 10 --ledger "$WORK/$c.ledger" --stats-file "$WORK/$c.stats"
done
has_worker1() { [ "$(pinned_to client_a hb-worker-1)" != none ]; }
wait_until 5 has_worker1 || fail "no thread hb-worker-1 in client a"
expect_pins client_a hb-worker- 2 1
expect_eq "client b (no --pin-workers): worker 0 may run on every CPU" "$(pinned_to client_b hb-worker-0)" \
  "$(awk '/^Cpus_allowed_list/ { print $2 }' /proc/"$(hb_pid client_b)"/status)"
wait_exit client_a 60
wait_exit client_b 60
t_done=$(date +%s%6N)
stop server
log "run finished"

expect_eq "server: connections accepted" "$(stat "$WORK/server.stats" accepted)" $USERS
expect_eq "server: logins" "$(stat "$WORK/server.stats" logins)" $USERS
expect_eq "server: errors" "$(stat "$WORK/server.stats" errors)" 0
last_login=$(stat "$WORK/server.stats" login_last_us)
expect_ge "server: its last login stamped after the clients started" "$last_login" "$t_clients"
expect_ge "server: ... and before they were done" "$t_done" "$last_login"
# The connect path: on loopback a client's connect is complete when
# connect() returns, so it logs in at once, and the server finds the Login
# already there when it accepts (no poll for the new connection).
at_once=$(hb_stat_sum connected_at_once "$WORK/a.stats" "$WORK/b.stats")
log "server: read at accept $(stat "$WORK/server.stats" read_at_accept) of $USERS; clients connected at once $at_once of $USERS"
expect_ge "clients: connects complete when connect() returned (loopback)" "$at_once" $((USERS / 2))
expect_ge "server: Logins read at accept" "$(stat "$WORK/server.stats" read_at_accept)" $((USERS / 10))
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
  "$(hb_stat_sum replies "$WORK/a.stats" "$WORK/b.stats")"

# the money: everything configured was made, won and opened, and the
# clients heard of every grant the server counted
S=$WORK/server.stats
expect_ge "server: shake-flow packets made (something was produced)" "$(stat "$S" made_shake)" 1
expect_eq "server: shake-flow packets made (--total)" "$(stat "$S" made_shake)" $TOTAL
expect_eq "server: send-flow packets made (--send-total)" "$(stat "$S" made_send)" $SEND_TOTAL
expect_eq "server: packets won" "$(stat "$S" wins)" $TOTAL
expect_eq "clients: packets won" "$(hb_stat_sum wins "$WORK/a.stats" "$WORK/b.stats")" $TOTAL
expect_eq "server: send-flow notices (--send-total x --send-split)" "$(stat "$S" notices)" $((SEND_TOTAL * SPLIT))
expect_eq "server: shares opened" "$(stat "$S" opens_ok)" $((SEND_TOTAL * SPLIT))
expect_eq "clients: shares opened" "$(hb_stat_sum opens_ok "$WORK/a.stats" "$WORK/b.stats")" $((SEND_TOTAL * SPLIT))
expect_ge "server: amount won (cents)" "$(stat "$S" amount_won)" $TOTAL
expect_eq "clients: amount won = server's" "$(hb_stat_sum amount_won "$WORK/a.stats" "$WORK/b.stats")" \
  "$(stat "$S" amount_won)"
expect_eq "clients: share amount = server's" "$(hb_stat_sum share_amount "$WORK/a.stats" "$WORK/b.stats")" \
  "$(stat "$S" share_amount)"
"$BIN/hb-reconcile" --journal "$WORK/j" --server-stats "$WORK/server.stats" --expect-all-won --expect-all-opened \
  --made-per-second "$WORK/made.tsv" "$WORK/a.ledger" "$WORK/b.ledger" || fail "ledger check"
ok "ledger check"
# packets made per second by the journal's clock: every CREATE counted once
expect_eq "made.tsv: shake packets" "$(awk 'NR > 1 { n += $2 } END { print n + 0 }' "$WORK/made.tsv")" \
  "$(stat "$S" made_shake)"
expect_eq "made.tsv: send packets" "$(awk 'NR > 1 { n += $3 } END { print n + 0 }' "$WORK/made.tsv")" \
  "$(stat "$S" made_send)"

# Without CAP_SYS_NICE the urgent threads cannot be real-time: the server
# says so and carries on at the process's priority (no crash, no refusal).
if [ "$(id -u)" = 0 ]; then
  P2=$(free_ports 1)
  start nocap setpriv --inh-caps=-sys_nice --bounding-set=-sys_nice "$BIN/hb-server" --sets 1 --port "$P2" \
    --users 100 --rate 10 --total 10 --journal "$WORK/j2"
  wait_until 10 listening "$(first_port "$P2")" || fail "server without CAP_SYS_NICE did not listen"
  wait_until 5 grep -q "hb-journal: cannot run as real-time" "$WORK/nocap.log" || fail "no word on the fallback"
  expect_eq "server without CAP_SYS_NICE: the journal writer is not SCHED_FIFO" "$(thread_policy hb-journal nocap)" 0
  stop nocap
fi
