#!/usr/bin/env bash
# A client stopped at once (a second SIGTERM) while the server is stalled
# leaves shakes unanswered; when the server resumes it still reads them and
# pays the winners, but the client is gone: grants the client never heard
# of.  The client writes what was unanswered to its ledger (Q and O lines) so
# that hb-reconcile, which must still report the difference, can say which
# grants were in flight rather than lost.  The control: the same ledger
# without those lines gets no such explanation.
. "$(dirname "$0")/lib.sh"
ports=$(free_ports 1)
start server "$BIN/hb-server" --sets 2 --port "$ports" --users 100 --rate 1000 --total 100000 \
  --send-rate 200 --send-total 40 --send-concurrent --journal "$WORK/j" --no-fsync --stats-file "$WORK/server.stats"
wait_until 10 listening "$(first_port "$ports")" || fail "server did not listen"
start client "$BIN/hb-client" --port "$ports" --uid-to 100 --qps 100 --drain 5 --ledger "$WORK/c.ledger" \
  --stats-file "$WORK/client.stats"
# Events, not sleeps: the clients shake and win, then the server stalls
# while shakes keep being sent (they wait unanswered), then the client is
# stopped at once and the server resumes and reads what was left.
hb_wait_stat 30 "$WORK/client.stats" wins -ge 20 || fail "no wins before the stall"
kill -STOP "$(hb_pid server)"
s0=$(stat "$WORK/client.stats" shakes)
hb_wait_stat 30 "$WORK/client.stats" shakes -ge $((s0 + 50)) || fail "no shakes sent during the stall"
kill -TERM "$(hb_pid client)"
wait_until 10 grep -q "draining\|signal" "$WORK/client.log" || fail "the client did not take the first signal"
kill -TERM "$(hb_pid client)" # the second: stop at once
wait_exit client 30
sent=$(stat "$WORK/client.stats" shakes)
kill -CONT "$(hb_pid server)"
hb_wait_stat 30 "$WORK/server.stats" shakes -ge "$sent" || fail "the server did not read the shakes left in its sockets"
stop server
grep -q "second signal" "$WORK/client.log" || fail "the client did not stop at once"
q=$(grep_count '^Q ' "$WORK/c.ledger")
expect_ge "unanswered shakes in the ledger (Q lines)" "$q" 1

# Opens: take a paid share out of the ledger and name it as unanswered, as a
# client stopped between sending the open and reading its reply would.
s_line=$(grep -m1 '^S ' "$WORK/c.ledger") || fail "no share was paid"
read -r _ pkt uid _ <<<"$s_line"
{ grep -vx "$s_line" "$WORK/c.ledger"; echo "O $pkt $uid"; } >"$WORK/c2.ledger"

rc=0
"$BIN/hb-reconcile" --journal "$WORK/j" --server-stats "$WORK/server.stats" "$WORK/c2.ledger" >"$WORK/rec.txt" || rc=$?
cat "$WORK/rec.txt"
expect_eq "hb-reconcile still reports the difference (exit)" "$rc" 1
# Only the first 40 differences are printed: count from the totals.
jwins=$(sed -n 's/.*server counters .*: \([0-9]*\) wins.*/\1/p' "$WORK/rec.txt")
lwins=$(sed -n 's/.*ledger .*: \([0-9]*\) wins.*/\1/p' "$WORK/rec.txt")
unheard=$((jwins - lwins + 1)) # the wins never read, and the share taken out
expect_ge "grants the client never heard of" "$unheard" 2
explained=$(sed -n 's/^  in flight: .*; \([0-9]*\) grants the clients never heard of.*/\1/p' "$WORK/rec.txt")
expect_eq "each of them explained as in flight" "$explained" "$unheard"
shown=$(grep_count 'no client recorded it\|its client has no record' "$WORK/rec.txt")
expect_eq "every difference shown is explained" "$(grep_count 'unanswered when the client stopped' "$WORK/rec.txt")" "$shown"

# Control: without the Q and O lines the same differences are not explained.
grep -v '^[QO] ' "$WORK/c2.ledger" >"$WORK/c3.ledger"
rc=0
"$BIN/hb-reconcile" --journal "$WORK/j" --server-stats "$WORK/server.stats" "$WORK/c3.ledger" >"$WORK/rec3.txt" || rc=$?
expect_eq "control: exit" "$rc" 1
expect_eq "control: nothing explained" "$(grep_count 'unanswered when the client stopped' "$WORK/rec3.txt")" 0
expect_eq "control: the same differences" "$(sed -n 's/^LEDGER MISMATCH: \([0-9]*\).*/\1/p' "$WORK/rec3.txt")" \
  "$(sed -n 's/^LEDGER MISMATCH: \([0-9]*\).*/\1/p' "$WORK/rec.txt")"
