#!/usr/bin/env bash
# hb-monitor --reports FILE: one raw TSV line per report received, from a
# real hb-server and hb-client: the header names the columns tools/bench's
# Python reads, every line is complete, both roles report once a second with
# rising counters, the histogram is "high:count" pairs of lib/hist.h bucket
# tops, and tools/bench/series.py turns the file into the run's shake rate
# and a latency percentile.  An unwritable --reports fails at once.
. "$(dirname "$0")/lib.sh"
R=$WORK/reports.tsv

rc=0
"$BIN/hb-monitor" --udp 127.0.0.1:"$UDP" --http 127.0.0.1:"$HTTP" --reports /no-such-dir/r.tsv >"$WORK/bad.out" 2>&1 || rc=$?
expect_eq "exit status for an unwritable --reports" "$rc" 1
grep -q -- "--reports /no-such-dir/r.tsv: No such file" "$WORK/bad.out" || fail "unclear error: $(cat "$WORK/bad.out")"

start_monitor mon "$WORK/mon.tsv" --reports "$R"
start_server
start_client 8
wait_exit client 30
stop mon
stop server

want="recv_us role instance second boot_id connections requests replies wins losses packets_created packets_won"
want+=" amount_won notices opens errors chats reports_dropped target_qps lat"
expect_eq "--reports header" "$(head -n 1 "$R" | tr '\t' ' ')" "$want"
tsv_complete "$R" || fail "a line of $R does not have every column"
expect_ge "server report lines" "$(awk -F'\t' '$2 == "server"' "$R" | wc -l)" 6
expect_ge "client report lines" "$(awk -F'\t' '$2 == "client" && $3 == "client-a"' "$R" | wc -l)" 6
# per process: seconds rise by one (no report lost on loopback; the final
# report at exit may repeat the last second), counters never fall
awk -F'\t' 'NR > 1 {
    k = $2 "/" $3 "/" $5
    if ((k in sec) && ($4 < sec[k] || $4 > sec[k] + 1 || $7 < req[k])) { print "bad sequence at line " NR ": " $0; bad = 1 }
    sec[k] = $4; req[k] = $7 }
  END { exit bad }' "$R" || fail "reports out of sequence"
ok "seconds and counters rise in every process's reports"
# the histogram: high:count pairs, highs rising and each the top of a bucket
# (0..255 exact, then 128 per power of two: high + 1 is a multiple of 2^(k-7))
awk -F'\t' 'NR > 1 && $20 != "-" {
    n = split($20, p, ","); prev = -1
    for (i = 1; i <= n; i++) {
      if (split(p[i], hc, ":") != 2 || hc[1] !~ /^[0-9]+$/ || hc[2] !~ /^[1-9][0-9]*$/ || hc[1] + 0 <= prev) { print "bad pair " p[i] " at line " NR; exit 1 }
      h = hc[1] + 0; prev = h
      if (h >= 256) { b = 1; while (2 ^ (b + 8) <= h + 1) b++; step = 2 ^ (b + 1 - 1); if ((h + 1) % step) { print "not a bucket top: " h; exit 1 } }
      total += hc[2] }
  } END { if (!total) { print "no latency counts"; exit 1 } print total > "/dev/stderr" }' "$R" 2>"$WORK/lat_total" ||
  fail "the histogram column is not high:count pairs of bucket tops"
lat_total=$(cat "$WORK/lat_total")
expect_ge "latencies in the client's reports" "$lat_total" $((QPS * 3))
expect_le "latencies in the client's reports (<= the client's own count)" "$lat_total" "$(stat "$WORK/client.stats" lat_count)"

# tools/bench/series.py reads it: the client's shake rate and its p99; the
# p99 of all its reports merged is the client's own (to within a bucket)
read -r rate p99 p99_all < <(python3 - "$ROOT/tools/bench" "$R" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import series
rows = series.select(series.load(sys.argv[2]), "client")
ps = series.per_second(rows)
secs = sorted(ps)[2:-2]  # leave out the connect ramp and the drain
st = series.rate_stats(ps, "requests", secs[0], secs[-1])
print(round(st["mean"]), series.percentile(series.hist(rows, secs[0], secs[-1]), 99),
      series.percentile(series.hist(rows, -1, 1 << 62), 99))
EOF
)
expect_ge "series.py: client shakes/s" "$rate" $((QPS * 9 / 10))
expect_le "series.py: client shakes/s" "$rate" $((QPS * 11 / 10))
expect_ge "series.py: client p99 (us)" "$p99" 1
expect_le "series.py: client p99 (us)" "$p99" 1000000
own=$(stat "$WORK/client.stats" lat_p99_us)
expect_ge "series.py: p99 of all reports (us) vs the client's $own" "$p99_all" $((own * 99 / 100))
expect_le "series.py: p99 of all reports (us) vs the client's $own" "$p99_all" $((own * 101 / 100 + 1))
