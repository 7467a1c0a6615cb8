#!/usr/bin/env bash
# The dashboard with two server instances (a cluster's nodes s0 and s1, each
# with a client of its own): /api/series names both nodes and gives every
# row a [replies, connections] pair per node; the page then draws two more
# charts, shakes answered and connections per node, one line per node (the
# ?check mode counts each line's pixels into data-ink).  dashboard.sh keeps
# the one-server view: six charts, no per-node ones.
. "$(dirname "$0")/lib.sh"
CHROME=${CHROME:-/usr/bin/chromium}
[ -x "$CHROME" ] || fail "chromium not installed (tools/dev/setup.sh installs it)"
[ -f "$ROOT/monitor/web/node_modules/uplot/dist/uPlot.iife.min.js" ] ||
  fail "monitor/web/node_modules is missing: run tools/dev/setup.sh (npm ci)"

PORT2=$(first_port "$(free_ports 1)")
start_monitor mon "$WORK/mon.tsv" --web "$ROOT/monitor/web"
start_server --instance s0
start server2 "$BIN/hb-server" --sets 1 --port "$PORT2" --users "$USERS" --rate 50 --total 100000 \
  --journal "$WORK/server2.journal" --stats-file "$WORK/server2.stats" --monitor 127.0.0.1:"$UDP" --instance s1
wait_until 10 listening "$PORT2" || fail "server s1 did not listen on $PORT2"
start_client 20 --qps 200
start client2 "$BIN/hb-client" --port "$PORT2" --uid-to 200 --users "$USERS" --qps 100 --duration 20 --drain 2 \
  --stats-file "$WORK/client2.stats" --monitor 127.0.0.1:"$UDP" --instance client-b
enough() { [ "$(tsv_count "$WORK/mon.tsv" 'v("servers") == 2 && v("clients") == 2 && v("server_reply_qps") > 150')" -ge 4 ]; }
for _ in $(seq 150); do enough && break; sleep 0.1; done
enough || fail "the monitor has not merged 4 seconds of both nodes"

api=$(curl -sf "http://127.0.0.1:$HTTP/api/series")
grep -q '"nodes":\["s0","s1"\]' <<<"$api" || fail "/api/series does not name the nodes: $(head -c 300 <<<"$api")"
ok "/api/series names nodes s0 and s1"
# every row ends with the pairs: s0 ~200/s with 600 users, s1 ~33/s with 200 (its share of --qps 100 for 600 users)
grep '^\[[0-9]' <<<"$api" | grep -o '\[\[[0-9]*,[0-9]*\],\[[0-9]*,[0-9]*\]\]' | tr -c '0-9\n' ' ' >"$WORK/pairs" ||
  fail "no per-node pairs in the rows: $(grep '^\[[0-9]' <<<"$api" | tail -n 1)"
expect_eq "rows with pairs" "$(wc -l <"$WORK/pairs")" "$(grep -c '^\[[0-9]' <<<"$api")"
# the busiest second of each (a second may catch a client starting), the newest connections
q0=$(awk 'BEGIN { m = 0 } $1 > m { m = $1 } END { print m }' "$WORK/pairs")
q1=$(awk 'BEGIN { m = 0 } $3 > m { m = $3 } END { print m }' "$WORK/pairs")
read -r _ c0 _ c1 <<<"$(tail -n 1 "$WORK/pairs")"
expect_ge "node s0: replies/s" "$q0" 100
expect_le "node s0: replies/s" "$q0" 300
expect_ge "node s1: replies/s" "$q1" 20
expect_le "node s1: replies/s" "$q1" 60
expect_eq "node s0: connections" "$c0" "$USERS"
expect_eq "node s1: connections" "$c1" 200

chrome() {
  timeout 30 "$CHROME" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$(mktemp -d "$WORK/chrome.XXXXXX")" \
    --window-size=1280,2400 --virtual-time-budget=5000 "$@" 2>>"$WORK/chrome.log"
}
chrome --dump-dom "http://127.0.0.1:$HTTP/?check" >"$WORK/dom.html" || fail "chromium --dump-dom failed"
charts=$(grep -o 'class="uplot' "$WORK/dom.html" | wc -l)
expect_eq "uPlot charts rendered (6 + 2 per-node)" "$charts" 8
for c in node-qps node-conns; do
  tag=$(grep -o "id=\"chart-$c\"[^>]*" "$WORK/dom.html") || fail "chart $c not in the page"
  pts=$(sed -n 's/.*data-points="\([0-9]*\)".*/\1/p' <<<"$tag")
  ink=$(sed -n 's/.*data-ink="\([0-9,]*\)".*/\1/p' <<<"$tag")
  expect_ge "chart $c: points" "${pts:-0}" 4
  IFS=, read -r i0 i1 <<<"$ink"
  # s1's line is drawn last; s0's may be partly under it, but not all
  expect_ge "chart $c: pixels of node s0's line (ink $ink)" "${i0:-0}" 20
  expect_ge "chart $c: pixels of node s1's line (ink $ink)" "${i1:-0}" 50
done
