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
expect_eq "client users (from the file)" "$(curl -sf 127.0.0.1:$CP/stats | jq .users)" 500
expect_eq "client aggregate qps (flag overrides file)" "$(curl -sf 127.0.0.1:$CP/stats | jq .aggregate_qps)" 250
printf 'sets = 4\nthis is not a setting\n' >"$WORK/bad.conf"
set +e
"$BIN/hb-server" --config "$WORK/bad.conf" 2>"$WORK/bad.err"; rc=$?
set -e
expect_eq "exit status for a bad config line" $rc 2
grep -q "bad.conf:2:" "$WORK/bad.err" || fail "error does not name file and line: $(cat "$WORK/bad.err")"
ok "bad config line reported as: $(head -1 "$WORK/bad.err")"
for f in "$ROOT/server/server.conf.example" "$ROOT/client/client.conf.example"; do
  # the samples parse (--help after --config prints the values they set)
  bin=$([[ $f == *server* ]] && echo hb-server || echo hb-client)
  "$BIN/$bin" --config "$f" --help >/dev/null || fail "$f does not parse"
done
ok "the sample config files parse"
