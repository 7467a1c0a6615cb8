#!/usr/bin/env bash
# hb-monitor's command line: --help documents the flags and the log columns,
# bad flags and unusable addresses or files fail at once with a clear message
# and a non-zero status, and tools/plot.sh, tools/netmon and tools/conns
# answer --help and refuse bad arguments.
. "$(dirname "$0")/lib.sh"
MON=$BIN/hb-monitor

"$MON" --help >"$WORK/help.txt" || fail "--help exited with $?"
for w in --udp --http --log --web --settle --max-gap client_send_qps server_reply_qps lat_p99_us; do
  grep -q -- "$w" "$WORK/help.txt" || fail "--help does not mention $w"
done
ok "--help lists the flags and the log columns"

# expect_fail WANT_STATUS MESSAGE_PATTERN CMD...
expect_fail() {
  local want=$1 pat=$2; shift 2
  local rc=0
  timeout 10 "$@" >"$WORK/out.txt" 2>&1 || rc=$?
  [ "$rc" = "$want" ] || { cat "$WORK/out.txt"; fail "$*: status $rc, want $want"; }
  grep -q -- "$pat" "$WORK/out.txt" || { cat "$WORK/out.txt"; fail "$*: message does not match '$pat'"; }
  ok "$(head -n 1 "$WORK/out.txt")"
}
expect_fail 2 "unknown option '--bogus'" "$MON" --bogus
expect_fail 2 "settle: 99 is out of range" "$MON" --settle 99
expect_fail 2 "unexpected argument 'extra'" "$MON" --udp 127.0.0.1:$UDP --http 127.0.0.1:"$HTTP" extra
expect_fail 1 "no-such-dir/x.tsv" "$MON" --udp 127.0.0.1:$UDP --http 127.0.0.1:"$HTTP" --log /no-such-dir/x.tsv
expect_fail 1 "--udp 'nonsense': expected HOST:PORT" "$MON" --udp nonsense --http 127.0.0.1:"$HTTP"
# an address already taken: a real listener on the HTTP port
start_monitor first "$WORK/first.tsv"
expect_fail 1 "bind" "$MON" --udp 127.0.0.1:$UDP --http 127.0.0.1:$((HTTP + 2))
expect_fail 1 "--http 127.0.0.1:$HTTP: cannot listen" "$MON" --udp 127.0.0.1:$((HTTP + 3)) --http 127.0.0.1:"$HTTP"
stop first

for t in plot.sh netmon conns; do
  "$ROOT/tools/$t" --help | grep -q "^Usage: tools/$t" || fail "tools/$t --help"
done
ok "tools/plot.sh, tools/netmon, tools/conns --help"
expect_fail 2 "cannot read" "$ROOT/tools/plot.sh" "$WORK/missing.tsv"
printf 'a\tb\n1\t2\n' >"$WORK/notalog.tsv"
expect_fail 2 "not an hb-monitor log" "$ROOT/tools/plot.sh" "$WORK/notalog.tsv"
expect_fail 2 "no such interface 'nope0'" "$ROOT/tools/netmon" -i nope0 -n 1
expect_fail 2 "is not a whole number" "$ROOT/tools/netmon" -n x
expect_fail 2 "bad port '70a'" "$ROOT/tools/conns" -p 70a

# netmon without -n runs until signalled, then prints its averages and exits 0
"$ROOT/tools/netmon" -i lo >"$WORK/netmon.out" 2>&1 &
NM=$!
PIDS+=("$NM")
sleep 1.5
kill -TERM $NM
rc=0; wait $NM || rc=$?
expect_eq "netmon status after SIGTERM" $rc 0
grep -q '^# average over' "$WORK/netmon.out" || { cat "$WORK/netmon.out"; fail "netmon printed no averages"; }
expect_ge "netmon lines for lo before the signal" "$(awk '$2 == "lo" && $1 != "avg"' "$WORK/netmon.out" | wc -l)" 1
