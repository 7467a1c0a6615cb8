#!/usr/bin/env bash
# Runtime control (issue 6): tools/fleet changes the aggregate rate of two
# running client processes from 1,000 to 3,000 shakes/s; both switch at the
# same second, the aggregate is exact on both sides of the switch, /stats
# reports the new target; pause stops and resume restarts the shaking.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PORTS=$(free_ports 2)
CPORTS=$(free_ports 2)
C1=${CPORTS%%-*}; C2=$((C1 + 1))
USERS=20000
start server "$BIN/hb-server" --sets 4 --port "$PORTS" --users $USERS --rate 100 --total 100000 \
  --journal "$WORK/j" --stats-file "$WORK/server.stats" --no-fsync
wait_until 10 listening "$(first_port "$PORTS")" || fail "server did not listen"
start client_a "$BIN/hb-client" --port "$PORTS" --uid-from 0 --uid-to 10000 --users $USERS --qps 1000 \
  --control 127.0.0.1:"$C1" --stats-file "$WORK/a.stats"
start client_b "$BIN/hb-client" --port "$PORTS" --uid-from 10000 --uid-to 20000 --users $USERS --qps 1000 \
  --control 127.0.0.1:$C2 --stats-file "$WORK/b.stats"
FLEET=("$ROOT/tools/fleet" --clients "127.0.0.1:$C1,127.0.0.1:$C2")
wait_until 15 bash -c "[ \"\$(curl -sf 127.0.0.1:$C1/stats | jq .active)\" = 10000 ] && \
  [ \"\$(curl -sf 127.0.0.1:$C2/stats | jq .active)\" = 10000 ]" || fail "clients did not connect"
sleep 2

T=$(( $(date +%s) + 3 ))
"${FLEET[@]}" qps 3000 --at $T || fail "fleet qps"
# Record every version of both stats files: 'second S' = counters as of the
# start of unix second S, so shakes(S+1) - shakes(S) were sent during S.
declare -A A B
end=$(( T + 4 ))
while [ "$(date +%s)" -le "$end" ]; do
  for c in a b; do
    read -r s n < <(hb_stat "$WORK/$c.stats" second shakes 2>/dev/null) || continue
    [ -n "${s:-}" ] && [ -n "${n:-}" ] && { if [ $c = a ]; then A[$s]=$n; else B[$s]=$n; fi; }
  done
  sleep 0.1
done
# Both clients' samples summed, per second where both have one.
# shellcheck disable=SC2034 # C is read by check_rates (a nameref)
{
  declare -A C
  for s in "${!A[@]}"; do [ -n "${B[$s]:-}" ] && C[$s]=$((A[$s] + B[$s])); done
}
due() { if [ "$1" -lt "$T" ]; then echo 1000; else echo 3000; fi; }
check_rates C $((T - 2)) $((T + 2)) "$T" due || fail "aggregate shakes per span (got/want): ${RATES[*]}"
ok "aggregate shakes per span (got/want), switching at T: ${RATES[*]}"
for c in $C1 $C2; do
  expect_eq "client :$c /stats target_qps (its share)" "$(curl -sf 127.0.0.1:"$c"/stats | jq .target_qps)" 1500
  expect_eq "client :$c /stats aggregate_qps" "$(curl -sf 127.0.0.1:"$c"/stats | jq .aggregate_qps)" 3000
done

"${FLEET[@]}" pause >/dev/null || fail "fleet pause"
sleep 1.5
a0=$(curl -sf 127.0.0.1:"$C1"/stats | jq .shakes); sleep 1.2; a1=$(curl -sf 127.0.0.1:"$C1"/stats | jq .shakes)
expect_eq "shakes sent while paused" $((a1 - a0)) 0
"${FLEET[@]}" resume >/dev/null || fail "fleet resume"
sleep 1.5
a2=$(curl -sf 127.0.0.1:"$C1"/stats | jq .shakes)
expect_ge "shakes sent within 1.5 s of resume" $((a2 - a1)) 1000
# a client that does not answer is reported, and fleet fails
rc=0
"$ROOT/tools/fleet" --clients "127.0.0.1:$C1,127.0.0.1:1" stats >"$WORK/fleet.out" 2>&1 || rc=$?
expect_eq "tools/fleet with a dead client: exit" "$rc" 1
grep -q "127.0.0.1:1 *NO ANSWER" "$WORK/fleet.out" || fail "dead client not listed"
ok "a client that does not answer is listed and fleet exits non-zero"
