#!/usr/bin/env bash
# The monitor is down when a real hb-server and hb-client start, comes up,
# is killed (SIGKILL) mid-run and comes back: server and client never stall
# (their counters and their report counters keep moving), reports resume by
# themselves, the restarted monitor logs fresh seconds without a spike from
# the senders' cumulative counters, a client restart is detected without a
# spike either, and SIGTERM flushes the monitor's log with a summary line.
. "$(dirname "$0")/lib.sh"

# stats_moving FILE COUNTER SECONDS: the counter grows within SECONDS
stats_moving() {
  local a; a=$(stat_or0 "$1" "$2")
  hb_wait_stat "$3" "$1" "$2" -gt "$a"
}

# 1. no monitor: both run and count reports they could not deliver
start_server
start_client 40
wait_until 10 test -f "$WORK/client.stats" || fail "client wrote no stats file"
stats_moving "$WORK/client.stats" shakes 5 || fail "client is not shaking with the monitor down"
stats_moving "$WORK/server.stats" replies 5 || fail "server is not replying with the monitor down"
stats_moving "$WORK/server.stats" reports_dropped 5 || fail "server: reports_dropped does not grow with the monitor down"
stats_moving "$WORK/client.stats" reports_dropped 5 || fail "client: reports_dropped does not grow with the monitor down"
ok "monitor down: server and client run, reports_dropped grows ($(stat "$WORK/server.stats" reports_dropped) server, $(stat "$WORK/client.stats" reports_dropped) client)"

# 2. the monitor comes up: seconds with both roles appear
start_monitor mon1 "$WORK/mon1.tsv"
has_rows() { [ "$(tsv_count "$1" 'v("servers") == 1 && v("clients") == 1 && v("client_send_qps") > 0')" -ge "$2" ]; }
for _ in $(seq 120); do has_rows "$WORK/mon1.tsv" 3 && break; sleep 0.1; done
has_rows "$WORK/mon1.tsv" 3 || fail "monitor 1: no merged seconds with the server and the client"
ok "monitor 1 merged $(tsv_count "$WORK/mon1.tsv" 1) seconds"
# the senders had been running for seconds: their totals must not show up as one huge second
expect_le "monitor 1: largest client send rate" "$(tsv_max "$WORK/mon1.tsv" client_send_qps)" $((QPS * 3 / 2))
expect_le "monitor 1: largest server reply rate" "$(tsv_max "$WORK/mon1.tsv" server_reply_qps)" $((QPS * 3 / 2))

# 3. killed mid-run: nothing stalls, reports are dropped and counted again
stop mon1 KILL
tsv_complete "$WORK/mon1.tsv" || fail "monitor 1's log has a partial line after SIGKILL"
stats_moving "$WORK/client.stats" shakes 5 || fail "client stalled after the monitor was killed"
stats_moving "$WORK/server.stats" replies 5 || fail "server stalled after the monitor was killed"
stats_moving "$WORK/server.stats" reports_dropped 5 || fail "server: reports_dropped does not grow after the kill"
stats_moving "$WORK/client.stats" reports_dropped 5 || fail "client: reports_dropped does not grow after the kill"
{ kill -0 "$(hb_pid server)" && kill -0 "$(hb_pid client)"; } || fail "a sender died with the monitor"
ok "monitor killed: server and client keep running"

# 4. back: reports resume by themselves, fresh seconds in the log and the JSON
t_back=$(date +%s)
start_monitor mon2 "$WORK/mon2.tsv"
fresh() { [ "$(tsv_count "$WORK/mon2.tsv" "v(\"second\") >= $t_back && v(\"servers\") == 1 && v(\"clients\") == 1 && v(\"client_send_qps\") > 0")" -ge 3 ]; }
for _ in $(seq 120); do fresh && break; sleep 0.1; done
fresh || fail "monitor 2: no fresh seconds from both roles"
ok "monitor 2: $(tsv_count "$WORK/mon2.tsv" "v(\"second\") >= $t_back") fresh seconds in the log"
newest=$(json_seconds | tail -n 1 || true)
expect_ge "monitor 2: newest second in /api/series" "${newest:-0}" "$t_back"
expect_le "monitor 2: largest client send rate" "$(tsv_max "$WORK/mon2.tsv" client_send_qps)" $((QPS * 3 / 2))
expect_ge "monitor 2: client connections" "$(tsv_max "$WORK/mon2.tsv" client_conns)" $USERS

# 5. the client restarts under the same instance name: a new boot_id, its
# counters from zero; the monitor counts a restart, and no second goes
# negative (it would print as a huge number) or spikes
stop client TERM
start_client 30
restarted() { curl -sf "http://127.0.0.1:$HTTP/metrics" | grep -q '^hongbao_monitor_events_total{event="restarts"} 1$'; }
wait_until 15 restarted || fail "monitor 2 did not see the client restart"
t_new=$(date +%s)
for _ in $(seq 100); do
  [ "$(tsv_count "$WORK/mon2.tsv" "v(\"second\") > $t_new && v(\"client_send_qps\") > 0")" -ge 2 ] && break
  sleep 0.1
done
expect_ge "seconds after the client restart" "$(tsv_count "$WORK/mon2.tsv" "v(\"second\") > $t_new && v(\"client_send_qps\") > 0")" 2
expect_le "monitor 2: largest client send rate across the restart" "$(tsv_max "$WORK/mon2.tsv" client_send_qps)" $((QPS * 3 / 2))
expect_le "monitor 2: largest client reply rate across the restart" "$(tsv_max "$WORK/mon2.tsv" client_reply_qps)" $((QPS * 3 / 2))

# 6. SIGTERM: exit 0, summary line, complete log
stop mon2 TERM 0
grep -q "summary: .* seconds merged into $WORK/mon2.tsv" "$WORK/mon2.log" || fail "no summary line on SIGTERM"
tsv_complete "$WORK/mon2.tsv" || fail "monitor 2's log is not complete after SIGTERM"
ok "$(grep summary: "$WORK/mon2.log")"
