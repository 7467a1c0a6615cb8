#!/usr/bin/env bash
# Clock offset (issue 6): two clients whose clocks are shifted (+250 ms and
# -123.456 ms, injected with --clock-skew) estimate the server's offset from
# the server time in replies; within a few seconds the estimate is the
# injected value (negated: offset = server - local) to within 5 ms.  With
# --clock server they schedule on the server's clock, so their latency
# figures stay small although their local clocks are wrong.
. "$(dirname "$0")/lib.sh"
PORTS=$(free_ports 1)
CP=$(free_ports 2); C1=${CP%%-*}; C2=$((C1 + 1))
start server "$BIN/hb-server" --sets 2 --port "$PORTS" --users 2000 --rate 100 --total 100000 --journal "$WORK/j" \
  --no-fsync --stats-file "$WORK/server.stats"
wait_until 10 listening "$(first_port "$PORTS")" || fail "server did not listen"
start c1 "$BIN/hb-client" --port "$PORTS" --uid-from 0 --uid-to 1000 --users 2000 --qps 500 --clock server \
  --clock-skew 250000 --control 127.0.0.1:"$C1"
start c2 "$BIN/hb-client" --port "$PORTS" --uid-from 1000 --uid-to 2000 --users 2000 --qps 500 --clock server \
  --clock-skew -123456 --control 127.0.0.1:$C2
check() {
  local port=$1 want=$2
  local off; off=$(curl -sf "127.0.0.1:$port/stats" | jq .clock_offset_us)
  [ -n "$off" ] && [ "$off" != null ] && [ $(( off - want )) -le 5000 ] && [ $(( want - off )) -le 5000 ]
}
t0=$(date +%s%N)
wait_until 8 check "$C1" -250000 || fail "client 1: offset $(curl -sf 127.0.0.1:"$C1"/stats | jq .clock_offset_us), want -250000 +- 5000"
wait_until 8 check $C2 123456 || fail "client 2: offset $(curl -sf 127.0.0.1:$C2/stats | jq .clock_offset_us), want 123456 +- 5000"
ok "offsets converged within $(( ($(date +%s%N) - t0) / 1000000 )) ms: $(curl -sf 127.0.0.1:"$C1"/stats | jq .clock_offset_us) us (injected +250000), $(curl -sf 127.0.0.1:$C2/stats | jq .clock_offset_us) us (injected -123456)"
sleep 3
for p in $C1 $C2; do
  s=$(curl -sf "127.0.0.1:$p/stats")
  expect_eq "client :$p schedules on" "$(echo "$s" | jq -r .clock)" server
  # On its own clock a client would shake 250 ms late (+250 ms) or its
  # latency would count from a clock 123 ms behind: a median far below
  # both says it schedules on the server's clock, loaded machine or not.
  p50=$(echo "$s" | jq .latency_us.p50)
  expect_le "client :$p median latency (us) on the server's clock" "$p50" 60000
done
