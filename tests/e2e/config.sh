#!/usr/bin/env bash
# Config files (issue 6): settings come from --config FILE, flags override
# them, and a bad line is a clear error naming the file and line.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PORTS=$(free_ports 1)
cat >"$WORK/server.conf" <<CONF
# test config
port = $PORTS
sets = 3
users = 5000
total = 0
journal = $WORK/j
stats-file = $WORK/server.stats
fsync = off
CONF
start server "$BIN/hb-server" --config "$WORK/server.conf" --sets 2
wait_until 10 listening "$(first_port "$PORTS")" || fail "server did not listen with settings from the file"
wait_until 5 test -f "$WORK/server.stats" || fail "stats file named in the config not written"
expect_eq "sets (flag --sets 2 overrides the file's 3)" "$(stat "$WORK/server.stats" sets)" 2
CP=$(first_port "$(free_ports 1)")
cat >"$WORK/client.conf" <<CONF
server = 127.0.0.1
port = $PORTS
uid-from = 100
uid-to = 600
users = 5000
qps = 100
control = 127.0.0.1:$CP
CONF
start client "$BIN/hb-client" --config "$WORK/client.conf" --qps 250
wait_until 10 bash -c "[ \"\$(curl -sf 127.0.0.1:$CP/stats | jq .active)\" = 500 ]" || fail "client from config did not connect"
expect_eq "client users (from the file)" "$(curl -sf 127.0.0.1:"$CP"/stats | jq .users)" 500
expect_eq "client aggregate qps (flag overrides file)" "$(curl -sf 127.0.0.1:"$CP"/stats | jq .aggregate_qps)" 250
# A bad config fails at once: exit 2, a message naming the file and line.
printf 'users = 4\nthis is not a setting\n' >"$WORK/bad.conf"
printf 'port = 7000\nusers = -1\n' >"$WORK/range.conf"
printf 'bogus-setting = 1\n' >"$WORK/unknown.conf"
for bin in hb-server hb-client; do
  for c in bad:2:"expected 'name = value'" range:2:"out of range" unknown:1:"unknown setting 'bogus-setting'"; do
    name=${c%%:*} rest=${c#*:}; line=${rest%%:*} msg=${rest#*:}
    rc=0
    "$BIN/$bin" --config "$WORK/$name.conf" --print-config >"$WORK/bad.out" 2>"$WORK/bad.err" || rc=$?
    expect_eq "$bin: exit status for $name.conf" $rc 2
    grep -qF "$name.conf:$line: " "$WORK/bad.err" || fail "$bin: error does not name $name.conf:$line: $(cat "$WORK/bad.err")"
    grep -qF -- "$msg" "$WORK/bad.err" || fail "$bin: error does not say '$msg': $(cat "$WORK/bad.err")"
    [ ! -s "$WORK/bad.out" ] || fail "$bin printed settings for a bad config"
  done
done
rc=0
"$BIN/hb-server" --config "$WORK/nonexistent.conf" --print-config 2>"$WORK/bad.err" || rc=$?
expect_eq "exit status for a config file that does not exist" $rc 2
grep -q "nonexistent.conf: No such file" "$WORK/bad.err" || fail "unclear error: $(cat "$WORK/bad.err")"
ok "bad config files fail with exit 2: $(head -1 "$WORK/bad.err")"

# Every sample config in the repository loads: --print-config (the settings
# in effect) shows each of its `name = value` lines with the same value, and
# its output, read back as a config, gives the same settings again.
same_value() { # A B: equal as text, as numbers, or as booleans
  [ "$1" = "$2" ] && return 0
  awk -v a="$1" -v b="$2" 'BEGIN {
    t["1"] = t["true"] = t["yes"] = t["on"] = "T"; t["0"] = t["false"] = t["no"] = t["off"] = "F"
    if ((tolower(a) in t) && (tolower(b) in t)) exit !(t[tolower(a)] == t[tolower(b)])
    if (a ~ /^-?[0-9.eE+-]+$/ && b ~ /^-?[0-9.eE+-]+$/) exit !(a + 0 == b + 0)
    exit 1 }'
}
samples=$(cd "$ROOT" && { git ls-files '*.conf.example' 2>/dev/null || find . -name '*.conf.example' -not -path './build*'; })
[ -n "$samples" ] || fail "no sample configs (*.conf.example) found"
for rel in $samples; do
  f=$ROOT/$rel
  case $rel in
    server/*) bin=hb-server ;;
    client/*) bin=hb-client ;;
    *) fail "$rel: no binary known for this sample (tests/e2e/config.sh)" ;;
  esac
  "$BIN/$bin" --config "$f" --print-config >"$WORK/eff.conf" || fail "$rel does not load"
  n=0
  while IFS= read -r line; do
    line=${line%%#*}
    [[ $line =~ ^[[:space:]]*([a-z0-9-]+)[[:space:]]*=[[:space:]]*(.*[^[:space:]])[[:space:]]*$ ]] || continue
    k=${BASH_REMATCH[1]} v=${BASH_REMATCH[2]}
    got=$(awk -v k="$k" -F' = ' '$1 == k { print substr($0, length(k) + 4) }' "$WORK/eff.conf")
    same_value "$got" "$v" || fail "$rel: $k = $v in the file, '$got' in effect"
    n=$((n + 1))
  done <"$f"
  expect_ge "$rel: settings checked in --print-config" $n 10
  "$BIN/$bin" --config "$WORK/eff.conf" --print-config >"$WORK/eff2.conf" || fail "$bin cannot read its own --print-config"
  cmp -s "$WORK/eff.conf" "$WORK/eff2.conf" || fail "$rel: --print-config output read back differs"
done
ok "every sample config loads with its values ($(echo "$samples" | wc -w) files)"

# And runs: the server sample on loopback (only where it listens and writes
# moved): 64 SETs and 1,000,000 users in its stats, packets being made; the
# client sample against it (only the server address, the uids and the
# control address moved): its aggregate rate, threads and clock in /stats.
SP=$(free_ports 16)
"$BIN/hb-token" --new-secret "$WORK/secret" >/dev/null # the sample's secret path moved too
start sample_server "$BIN/hb-server" --config "$ROOT/server/server.conf.example" --listen 127.0.0.1 --port "$SP" \
  --journal "$WORK/sample.j" --no-fsync --stats-file "$WORK/sample.stats" --secret "$WORK/secret"
wait_until 10 listening "$(first_port "$SP")" || fail "the server sample did not listen"
hb_wait_stat 5 "$WORK/sample.stats" made_shake -ge 1 || fail "the server sample makes no packets"
expect_eq "server sample: sets" "$(stat "$WORK/sample.stats" sets)" 64
grep -q "1000000 users; shake flow 200/s x 40000, send flow 200/s x 20000 split 3" "$WORK/sample_server.log" ||
  fail "the server sample's settings are not in its start line: $(head -1 "$WORK/sample_server.log")"
SC=$(first_port "$(free_ports 1)")
start sample_client "$BIN/hb-client" --config "$ROOT/client/client.conf.example" --server 127.0.0.1 --port "$SP" \
  --uid-from 0 --uid-to 200 --control 127.0.0.1:"$SC" --ledger "$WORK/sample.ledger" --stats-file "$WORK/sample-c.stats" \
  --secret "$WORK/secret"
wait_until 10 bash -c "[ \"\$(curl -sf 127.0.0.1:$SC/stats | jq .active)\" = 200 ]" || fail "the client sample did not connect"
expect_eq "client sample: aggregate qps" "$(curl -sf 127.0.0.1:"$SC"/stats | jq .aggregate_qps)" 30000
expect_eq "client sample: clock" "$(curl -sf 127.0.0.1:"$SC"/stats | jq -r .clock)" server
hb_wait_stat 5 "$WORK/sample-c.stats" workers -eq 4 ||
  fail "client sample: workers $(hb_stat_or none "$WORK/sample-c.stats" workers), want 4 (threads = 4)"
ok "client sample: 4 worker threads"
stop sample_client
stop sample_server
