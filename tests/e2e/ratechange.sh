#!/usr/bin/env bash
# Rate changes are never lost (issue 13.2): a client on the server's clock
# whose local clock is 0.5 s off runs its once-a-second tick half a second
# into every schedule second.  It gets "2,000/s from second T", then, at
# T+0.2 s (the first change already due, the tick not yet run), "1,000/s from
# T+4".  Both must happen: 1,000 before T, 2,000 in T..T+3, 1,000 from T+4.
# (Before the fix the second change overwrote the first: the rate stayed at
# 1,000 throughout.)  Then /stats lists queued changes in order, and a full
# queue is refused with an HTTP error rather than dropping a change.
# Per-second counts come from the server's stats file: it is rewritten just
# after every second boundary of the real clock, which is the schedule clock
# of a client on --clock server.
. "$(dirname "$0")/lib.sh"
PORTS=$(free_ports 1)
CP=$(first_port "$(free_ports 1)")
USERS=4000
start server "$BIN/hb-server" --sets 2 --port "$PORTS" --users $USERS --rate 100 --total 100000 \
  --journal "$WORK/j" --no-fsync --stats-file "$WORK/server.stats"
wait_until 10 listening "$(first_port "$PORTS")" || fail "server did not listen"
start client "$BIN/hb-client" --port "$PORTS" --uid-to $USERS --qps 1000 --clock server --clock-skew 500000 \
  --control "127.0.0.1:$CP"
ready() {
  local s; s=$(curl -sf "127.0.0.1:$CP/stats") || return 1
  local off; off=$(echo "$s" | jq .clock_offset_us)
  [ "$(echo "$s" | jq .active)" = "$USERS" ] && [ $(( off + 500000 )) -le 5000 ] && [ $(( -500000 - off )) -le 5000 ]
}
wait_until 20 ready || fail "client not connected with its offset known: $(curl -sf "127.0.0.1:$CP/stats")"
ok "client connected, clock offset $(curl -sf "127.0.0.1:$CP/stats" | jq .clock_offset_us) us (injected skew +500000)"

# Record every version of the server's stats file by its second, from now on.
record() {
  while :; do
    awk '$1=="time_us"{t=$2} $1=="shakes"{n=$2} END{if (t != "" && n != "") print int(t / 1000000), n}' \
      "$WORK/server.stats" 2>/dev/null >>"$WORK/samples" || true
    sleep 0.1
  done
}
record &
PIDS+=($!)
post() { curl -s -o "$WORK/post.out" -w '%{http_code}' -X POST "127.0.0.1:$CP/qps?qps=$1&at=$2"; }
T=$(( $(date +%s) + 3 ))
[ "$(post 2000 $T)" = 200 ] || fail "POST qps=2000 at T: $(cat "$WORK/post.out")"
# the second change: 0.2 s into second T (schedule = server = real clock)
while [ "$(date +%s%N)" -lt $(( T * 1000000000 + 200000000 )) ]; do sleep 0.01; done
[ "$(post 1000 $((T + 4)))" = 200 ] || fail "POST qps=1000 at T+4: $(cat "$WORK/post.out")"
log "qps=2000 at T=$T posted before T, qps=1000 at T+4 posted at T+0.2"

while [ "$(date +%s)" -le $(( T + 6 )) ]; do sleep 0.2; done
# shellcheck disable=SC2034 # S is read by check_rates (a nameref)
{
  declare -A S
  while read -r sec n; do S[$sec]=$n; done <"$WORK/samples"
}
due() { if [ "$1" -ge "$T" ] && [ "$1" -lt $((T + 4)) ]; then echo 2000; else echo 1000; fi; }
check_rates S $((T - 1)) $((T + 4)) "$T" due || fail "shakes per span (got/want): ${RATES[*]}"
ok "shakes per span (got/want): ${RATES[*]}"

# /stats lists the queued changes in the order they apply.
N=$(( $(date +%s) + 100 ))
if [ "$(post 1500 $((N + 1)))" != 200 ] || [ "$(post 1200 "$N")" != 200 ]; then
  fail "POST future changes: $(cat "$WORK/post.out")"
fi
q=$(curl -sf "127.0.0.1:$CP/stats" | jq -c '[.queued[] | [.at, .qps]]')
expect_eq "queued changes" "$q" "[[$N,1200],[$((N + 1)),1500]]"
# the same second again replaces that second's change
[ "$(post 1300 $N)" = 200 ] || fail "POST same second: $(cat "$WORK/post.out")"
q=$(curl -sf "127.0.0.1:$CP/stats" | jq -c '[.queued[] | [.at, .qps]]')
expect_eq "queued changes after a second change for second N" "$q" "[[$N,1300],[$((N + 1)),1500]]"
# fill the queue: the change that does not fit is refused, none is dropped
i=2
while code=$(post 1000 $((N + i))) && [ "$code" = 200 ]; do
  i=$((i + 1))
  [ $i -lt 1000 ] || fail "the queue never filled"
done
expect_eq "a change beyond a full queue: HTTP status" "$code" 409
grep -q "queue" "$WORK/post.out" || fail "refusal does not say why: $(cat "$WORK/post.out")"
ok "refused: $(cat "$WORK/post.out")"
n=$(curl -sf "127.0.0.1:$CP/stats" | jq '.queued | length')
expect_eq "changes kept in the full queue" "$n" "$i"
