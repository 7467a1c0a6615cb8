#!/usr/bin/env bash
# /metrics of a monitor fed by a real hb-server and hb-client: it passes
# `promtool check metrics` (format and lint), its values match the run (the
# latency histogram has observations, +Inf = _count, the connection gauges
# equal the users), and the HTTP side refuses what it must (unknown paths,
# escaping the web directory, POST).  While the run is on, tools/conns counts
# the client's connections and tools/netmon sees loopback traffic.
. "$(dirname "$0")/lib.sh"
command -v promtool >/dev/null || fail "promtool not installed (Debian package prometheus; tools/dev/setup.sh installs it)"

start_monitor mon "$WORK/mon.tsv"
start_server
start_client 12
M="http://127.0.0.1:$HTTP/metrics"
metric() { curl -sf "$M" | awk -v k="$1" '$1 == k { print $2 }'; }
wait_until 15 bash -c "[ \"\$(curl -sf $M | awk '\$1 == \"hongbao_connections{role=\\\"server\\\"}\" { print \$2 }')\" = $USERS ]" ||
  fail "server connections never reached $USERS in /metrics"
wait_until 10 bash -c "[ \"\$(curl -sf $M | awk '\$1 == \"hongbao_requests_total{role=\\\"client\\\"}\" { print \$2 }')\" -ge $((QPS * 2)) ]" ||
  fail "client requests in /metrics never reached $((QPS * 2))"

# datagrams that are not reports are counted and change nothing
# (dd writes each file in one write(), so each is one datagram)
printf 'not a frame' >"$WORK/bad1"
printf '\x05\x0a\x03abc' >"$WORK/bad2"                      # a frame, but no report in it
head -c 9000 /dev/zero | tr '\0' '\200' >"$WORK/bad3"        # a run of varint continuation bytes
for f in bad1 bad2 bad3; do dd if="$WORK/$f" bs=65536 count=1 status=none >/dev/udp/127.0.0.1/$UDP; done
wait_until 5 bash -c "curl -sf $M | grep -q '^hongbao_monitor_datagrams_total{outcome=\"bad\"} 3\$'" ||
  fail "bad datagrams not counted: $(curl -sf "$M" | grep 'outcome="bad"')"
ok "3 bad datagrams counted"

curl -sf -D "$WORK/headers" "$M" >"$WORK/metrics.txt"
grep -qi '^content-type: text/plain; version=0.0.4' "$WORK/headers" || fail "wrong Content-Type: $(grep -i content-type "$WORK/headers")"
promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.out" 2>&1 || { cat "$WORK/promtool.out"; fail "promtool check metrics"; }
[ ! -s "$WORK/promtool.out" ] || { cat "$WORK/promtool.out"; fail "promtool reported problems"; }
ok "promtool check metrics: clean ($(grep -vc '^#' "$WORK/metrics.txt") samples)"

m() { awk -v k="$1" '$1 == k { print $2 }' "$WORK/metrics.txt"; }
expect_eq "hongbao_connections{role=client}" "$(m 'hongbao_connections{role="client"}')" $USERS
expect_eq "hongbao_instances{role=server}" "$(m 'hongbao_instances{role="server"}')" 1
expect_eq "hongbao_instances{role=client}" "$(m 'hongbao_instances{role="client"}')" 1
expect_ge "hongbao_requests_total{role=client}" "$(m 'hongbao_requests_total{role="client"}')" $((QPS * 2))
expect_ge "hongbao_reply_latency_seconds_count" "$(m hongbao_reply_latency_seconds_count)" $QPS
expect_ge "hongbao_packets_created_total{role=server}" "$(m 'hongbao_packets_created_total{role="server"}')" 50
expect_eq "latency +Inf bucket = _count" "$(m 'hongbao_reply_latency_seconds_bucket{le="+Inf"}')" \
  "$(m hongbao_reply_latency_seconds_count)"
awk '/^hongbao_reply_latency_seconds_bucket/ { if ($2 + 0 < prev) bad = 1; prev = $2 + 0 } END { exit bad }' \
  "$WORK/metrics.txt" || fail "latency buckets are not cumulative"
ok "latency buckets are cumulative"
# the counters agree with the TSV log: a second's line is written in the same
# step that adds it to the totals, so every second up to last_second is there
upto=$(m hongbao_monitor_last_second)
expect_eq "client requests: /metrics total = sum of the log's client_send_qps up to $upto" \
  "$(m 'hongbao_requests_total{role="client"}')" "$(tsv_sum "$WORK/mon.tsv" client_send_qps "$upto")"
promtool check config "$ROOT/monitor/prometheus.yml" >"$WORK/promtool-config.out" 2>&1 ||
  { cat "$WORK/promtool-config.out"; fail "promtool check config monitor/prometheus.yml"; }
ok "promtool check config monitor/prometheus.yml"

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
expect_eq "GET /nonexistent" "$(code "http://127.0.0.1:$HTTP/nonexistent.js")" 404
expect_eq "GET /../../etc/passwd" "$(code --path-as-is "http://127.0.0.1:$HTTP/../../etc/passwd")" 404
expect_eq "GET /.hidden.js" "$(code "http://127.0.0.1:$HTTP/.hidden.js")" 404
expect_eq "POST /metrics" "$(code -X POST "http://127.0.0.1:$HTTP/metrics")" 405
expect_eq "GET / (dashboard)" "$(code "http://127.0.0.1:$HTTP/")" 200
expect_eq "GET /app.js" "$(code "http://127.0.0.1:$HTTP/app.js")" 200

# tools/conns on the server port: all of the client's connections, from 127.0.0.1
"$ROOT/tools/conns" -p "$PORT" >"$WORK/conns.out"
cat "$WORK/conns.out"
expect_eq "tools/conns: connections from 127.0.0.1" "$(awk '$2 == "127.0.0.1" { print $1 }' "$WORK/conns.out")" $USERS
expect_eq "tools/conns: total" "$(awk '$2 == "total" { print $1 }' "$WORK/conns.out")" $USERS
# tools/netmon: two one-second lines for lo with traffic in both directions
"$ROOT/tools/netmon" -i lo -n 2 >"$WORK/netmon.out"
cat "$WORK/netmon.out"
expect_eq "tools/netmon: lines for lo" "$(awk '$2 == "lo" && $1 != "avg"' "$WORK/netmon.out" | wc -l)" 2
expect_ge "tools/netmon: lo rx packets/s (shakes at $QPS/s)" "$(awk '$2 == "lo" && $1 != "avg" { print $3; exit }' "$WORK/netmon.out")" $QPS
