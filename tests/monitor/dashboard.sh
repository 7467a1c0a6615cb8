#!/usr/bin/env bash
# The live dashboard in headless Chromium, against a monitor fed with real
# reports from a running hb-server and hb-client: the page loads the chart
# library, every chart has points and its lines are on the canvas (the
# page's ?check mode counts each series' pixels into data-ink), the value
# tiles show the run's figures, and a screenshot is written.
. "$(dirname "$0")/lib.sh"
CHROME=${CHROME:-/usr/bin/chromium}
[ -x "$CHROME" ] || fail "chromium not installed (tools/dev/setup.sh installs it)"
[ -f "$ROOT/monitor/web/node_modules/uplot/dist/uPlot.iife.min.js" ] ||
  fail "monitor/web/node_modules is missing: run tools/dev/setup.sh (npm ci)"

start_monitor mon "$WORK/mon.tsv" --web "$ROOT/monitor/web"
start_server
start_client 20
enough() { [ "$(tsv_count "$WORK/mon.tsv" 'v("servers") == 1 && v("clients") == 1 && v("server_reply_qps") > 0')" -ge 4 ]; }
for _ in $(seq 150); do enough && break; sleep 0.1; done
enough || fail "the monitor has not merged 4 seconds of the run"

chrome() {
  timeout 30 "$CHROME" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$(mktemp -d "$WORK/chrome.XXXXXX")" \
    --window-size=1280,1800 --virtual-time-budget=5000 "$@" 2>>"$WORK/chrome.log"
}
chrome --dump-dom "http://127.0.0.1:$HTTP/?check" >"$WORK/dom.html" || fail "chromium --dump-dom failed"
grep -q 'id="libmissing"[^>]*hidden' "$WORK/dom.html" || fail "the page says the chart library is missing"
charts=$(grep -o 'class="uplot' "$WORK/dom.html" | wc -l)
expect_eq "uPlot charts rendered" "$charts" 6
for c in conns qps packets send latency errors; do
  tag=$(grep -o "id=\"chart-$c\"[^>]*" "$WORK/dom.html") || fail "chart $c not in the page"
  pts=$(sed -n 's/.*data-points="\([0-9]*\)".*/\1/p' <<<"$tag")
  ink=$(sed -n 's/.*data-ink="\([0-9,]*\)".*/\1/p' <<<"$tag")
  expect_ge "chart $c: points" "${pts:-0}" 4
  # the line drawn last is on top everywhere: it must have left pixels
  top=${ink##*,}
  expect_ge "chart $c: pixels of its top series (ink $ink)" "${top:-0}" 50
done
val() { sed -n "s/.*id=\"v-$1\">\([^<]*\)<.*/\1/p" "$WORK/dom.html" | tr -d ,; }
expect_eq "tile: server connections" "$(val server_conns)" $USERS
expect_eq "tile: client connections" "$(val client_conns)" $USERS
expect_ge "tile: client send /s" "$(val client_send_qps)" $((QPS / 2))
expect_le "tile: client send /s" "$(val client_send_qps)" $((QPS * 3 / 2))
expect_ge "tile: server reply /s" "$(val server_reply_qps)" $((QPS / 2))
expect_eq "tile: servers · clients" "$(val instances)" "1 · 1"
p99=$(val lat_p99_us)
{ [[ $p99 =~ ^[0-9.]+$ ]] && awk -v v="$p99" 'BEGIN { exit !(v > 0) }'; } || fail "tile: latency p99 is '$p99'"
ok "tile: latency p99 = $p99 ms"
grep -q 'client-a' "$WORK/dom.html" || fail "the process table does not list client-a"

chrome --screenshot="$WORK/dashboard.png" "http://127.0.0.1:$HTTP/" >/dev/null || fail "chromium --screenshot failed"
[ -s "$WORK/dashboard.png" ] || fail "empty screenshot"
[ "$(head -c 8 "$WORK/dashboard.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "screenshot is not a PNG"
expect_ge "screenshot size (bytes)" "$(wc -c <"$WORK/dashboard.png")" 20000
