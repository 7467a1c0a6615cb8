#!/usr/bin/env bash
# A journal damaged in the middle (a flipped byte in an entry with intact
# entries after it) is not a torn tail: the server refuses to start rather
# than cut off durable grants, says where and why, and starts only when told
# to cut (--journal-cut).  hb-reconcile reports the damage too.  A torn tail
# (half an entry at the end) is cut silently, as after any crash.
. "$(dirname "$0")/lib.sh"
PORTS=$(free_ports 1)
P=$(first_port "$PORTS")
ARGS=(--sets 2 --port "$PORTS" --users 100 --rate 1000 --total 300 --journal "$WORK/j" --no-fsync)
start server "$BIN/hb-server" "${ARGS[@]}" --stats-file "$WORK/s1.stats"
wait_until 10 listening "$P" || fail "server did not listen"
all_made() { [ "$(stat "$WORK/s1.stats" made_shake)" = 300 ]; }
wait_until 5 all_made || fail "packets not made"
stop server
size=$(wc -c <"$WORK/j")
cp "$WORK/j" "$WORK/j.orig"

# torn tail: cut silently
head -c $((size - 3)) "$WORK/j.orig" >"$WORK/j"
start server2 "$BIN/hb-server" "${ARGS[@]}"
wait_until 10 listening "$P" || fail "server did not start on a torn tail"
grep -q "cut a torn last entry" "$WORK/server2.log" || fail "torn tail not reported as cut"
stop server2
ok "torn tail: cut, server started"

# damage in the middle: flip one byte of an entry about a third of the way in
cp "$WORK/j.orig" "$WORK/j"
off=$((size / 3))
b=$(od -An -tu1 -j $off -N1 "$WORK/j" | tr -d ' ')
printf '%b' "$(printf '\\%03o' $((b ^ 0x40)))" | dd of="$WORK/j" bs=1 seek=$off conv=notrunc status=none
rc=0
"$BIN/hb-server" "${ARGS[@]}" >"$WORK/refused.log" 2>&1 || rc=$?
expect_eq "exit status on a journal damaged in the middle" $rc 1
grep -q "intact entries follow" "$WORK/refused.log" || fail "refusal does not explain: $(cat "$WORK/refused.log")"
ok "refused to start: $(grep -o 'the entry at byte.*follow (from byte [0-9]*)' "$WORK/refused.log")"
expect_eq "journal untouched by the refusal (bytes)" "$(wc -c <"$WORK/j")" "$size"
rc=0
"$BIN/hb-reconcile" --journal "$WORK/j" >"$WORK/rec.out" 2>&1 || rc=$?
expect_eq "hb-reconcile on a damaged journal: exit (unusable input)" "$rc" 2
grep -q "journal damaged at byte" "$WORK/rec.out" || fail "hb-reconcile does not name the damage"
ok "hb-reconcile reports the damage"
start server3 "$BIN/hb-server" "${ARGS[@]}" --journal-cut
wait_until 10 listening "$P" || fail "server did not start with --journal-cut"
grep -q "journal-cut: cutting" "$WORK/server3.log" || fail "--journal-cut not reported"
stop server3
ok "--journal-cut: started, cut reported"
