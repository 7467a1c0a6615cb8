# shellcheck shell=bash
# lib.sh -- helpers for the monitor's bash tests (sourced).  Builds on
# tests/e2e/lib.sh (temporary $WORK, start/stop, wait_until, expect_*, and
# the cleanup that kills every process started) and adds: a small real run
# (hb-server + hb-client reporting to a monitor), the monitor itself, and
# reading its TSV log by column name.
# shellcheck source=../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
# shellcheck disable=SC2034 # for the tests
ROOT=${HB_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

# The real run's shape: 600 users, 300 shakes/s, 50 packets/s, a send flow
# alongside.  Small enough for a shared 2-core machine.
USERS=600
QPS=300

# Ports: the server's, then the monitor's HTTP and UDP.
PORT=$(first_port "$(free_ports 1)")
MPORTS=$(free_ports 2)
HTTP=$(first_port "$MPORTS")
UDP=$((HTTP + 1))

# start_monitor NAME LOG [FLAGS...]
start_monitor() {
  local name=$1 logf=$2; shift 2
  start "$name" "$BIN/hb-monitor" --udp 127.0.0.1:"$UDP" --http 127.0.0.1:"$HTTP" --log "$logf" --settle 1 "$@"
  wait_until 10 listening "$HTTP" || fail "$name: not listening on $HTTP"
}

# start_server [FLAGS...]: reports to the monitor's UDP port, running or not
# shellcheck disable=SC2120 # the flags are optional
start_server() {
  start server "$BIN/hb-server" --sets 2 --port "$PORT" --users "$USERS" --rate 50 --total 100000 \
    --send-rate 20 --send-total 100000 --send-concurrent --journal "$WORK/server.journal" \
    --stats-file "$WORK/server.stats" --monitor 127.0.0.1:"$UDP" "$@"
  wait_until 10 listening "$PORT" || fail "server did not listen on $PORT"
}

# start_client SECONDS [FLAGS...]
start_client() {
  local secs=$1; shift
  start client "$BIN/hb-client" --port "$PORT" --uid-to "$USERS" --users "$USERS" --qps "$QPS" --duration "$secs" \
    --drain 2 --stats-file "$WORK/client.stats" --monitor 127.0.0.1:"$UDP" --instance client-a "$@"
}

# stat_or0 FILE NAME: a stats-file counter, 0 while the file or the counter
# is not there yet (hb-stats --default 0)
stat_or0() { hb_stat_or 0 "$1" "$2"; }

# tsv_count FILE CONDITION: data lines of a monitor log where the awk
# CONDITION holds; v("name") is the value of column `name`.
tsv_count() {
  awk -F'\t' -v cond_error=0 '
    function v(k) { if (!(k in h)) { print "no column " k > "/dev/stderr"; exit 3 } return $h[k] + 0 }
    NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i; next }
    ('"$2"') { n++ }
    END { print n + 0 }' "$1"
}

# tsv_max FILE COLUMN: largest value of a column (0 for no data lines)
tsv_max() {
  awk -F'\t' -v k="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == k) c = i; if (!c) exit 3; next }
    $c + 0 > m { m = $c + 0 } END { print m + 0 }' "$1"
}

# tsv_sum FILE COLUMN UPTO: sum of a column over the lines with second <= UPTO
tsv_sum() {
  awk -F'\t' -v k="$2" -v upto="$3" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == k) c = i; if (!c) exit 3; next }
    $1 + 0 <= upto + 0 { s += $c } END { print s + 0 }' "$1"
}

# tsv_complete FILE: every line has as many fields as the header
tsv_complete() {
  awk -F'\t' 'NR == 1 { n = NF; next } NF != n { bad++ } END { exit bad > 0 }' "$1"
}

# json_seconds: the seconds of the rows /api/series returns (one per line)
json_seconds() { curl -sf "http://127.0.0.1:$HTTP/api/series" | grep -o '^\[[0-9]*' | tr -d '['; }
