#!/usr/bin/env bash
# A client worker wakes up only when it has something to do (issue 14.2):
# counted, not timed.  One worker holding 2,000 connected users:
#   idle (0 shakes/s): at most 3 loop wake-ups a second (the old fixed 1 ms
#   tick woke it about 1,000 times a second);
#   20 shakes/s: at most one tick per due shake plus one a second for the
#   latency hand-over, and at most 3 wake-ups per shake plus 3 a second in
#   all (the tick, the reply, the hand-over), while every second still
#   carries exactly its 20 shakes.
# The counts are the worker's own (`wakeups`: returns from epoll_wait,
# `ticks`) in the client's stats file, read at two rewrites K seconds apart;
# a loaded machine can only make them smaller.
. "$(dirname "$0")/lib.sh"
PORTS=$(free_ports 1)
CP=$(first_port "$(free_ports 1)")
USERS=2000
start server "$BIN/hb-server" --sets 1 --port "$PORTS" --users $USERS --rate 0 --total 0 \
  --journal "$WORK/j" --no-fsync --shake-limit 0 --stats-file "$WORK/server.stats"
wait_until 10 listening "$(first_port "$PORTS")" || fail "server did not listen"
start client "$BIN/hb-client" --port "$PORTS" --uid-to $USERS --qps 0 --threads 1 \
  --control "127.0.0.1:$CP" --stats-file "$WORK/client.stats"
active() { [ "$(stat "$WORK/client.stats" active 2>/dev/null)" = "$USERS" ]; }
wait_until 30 active || fail "not every user logged in: $(stat "$WORK/client.stats" active)"

# sample: "second wakeups ticks shakes" of the client's stats file
sample() { stat "$WORK/client.stats" second wakeups ticks shakes; }
# after SECONDS SECOND: wait until the stats file is SECONDS seconds past SECOND
after() {
  local s
  while :; do
    s=$(stat "$WORK/client.stats" second 2>/dev/null || echo 0)
    [ "$s" -ge $(( $2 + $1 )) ] && return
    sleep 0.2
  done
}

# idle
sleep 2 # the logins' replies are handed over
read -r s0 w0 t0 _ <<<"$(sample)"
after 4 "$s0"
read -r s1 w1 t1 _ <<<"$(sample)"
K=$(( s1 - s0 )) W=$(( w1 - w0 )) TK=$(( t1 - t0 ))
log "idle: $W wake-ups, $TK ticks in $K s"
[ "$W" -le $(( 3 * K )) ] || fail "idle worker woke $W times in $K s (at most $(( 3 * K )))"
ok "idle: $W wake-ups in $K s ($(( W / K ))/s; the 1 ms tick made ~1000/s)"

# 20 shakes/s from the next second on (all users shake once per 100 s)
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "127.0.0.1:$CP/qps?qps=20")" = 200 ] || fail "POST /qps"
sleep 2.5
read -r s0 w0 t0 h0 <<<"$(sample)"
after 5 "$s0"
read -r s1 w1 t1 h1 <<<"$(sample)"
K=$(( s1 - s0 )) W=$(( w1 - w0 )) TK=$(( t1 - t0 )) SH=$(( h1 - h0 ))
log "20/s: $SH shakes, $TK ticks, $W wake-ups in $K s"
if [ "$SH" -lt $(( 20 * K - 20 )) ] || [ "$SH" -gt $(( 20 * K + 20 )) ]; then fail "$SH shakes in $K s, want 20/s"; fi
[ "$TK" -le $(( SH + 2 * K )) ] || fail "$TK ticks for $SH shakes in $K s (at most one per shake + 2/s)"
[ "$W" -le $(( 3 * SH + 3 * K )) ] || fail "$W wake-ups for $SH shakes in $K s (at most 3 per shake + 3/s)"
ok "20/s: $SH shakes, $TK ticks, $W wake-ups in $K s"
stop client
[ "$(stat "$WORK/client.stats" replies)" = "$(stat "$WORK/client.stats" shakes)" ] || fail "unanswered shakes"
ok "every shake answered"
