#!/usr/bin/env bash
# tools/plot.sh -- turn an hb-monitor TSV log into PNG charts with gnuplot
# (tools/plot.gp): client QPS, server QPS, both on one chart, packets created
# and won per second, connections, latency p99.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: tools/plot.sh LOG [OUTDIR]

LOG is the TSV file of `hb-monitor --log`.  Writes into OUTDIR (default: a
directory "plots" next to LOG):
  client_qps.png   shakes sent and replies received by the clients, per second
  server_qps.png   shakes received and replies sent by the server, per second
  qps.png          client send rate and server reply rate on one chart
  created.png      packets created per second
  won.png          packets won per second
  conns.png        logged-in connections, server and clients
  latency_p99.png  reply latency p99 (and p50) per second, milliseconds
Needs gnuplot (Debian: gnuplot-nox).
USAGE
}

die() { echo "plot.sh: $*" >&2; exit 2; }
case ${1:-} in -h|--help) usage; exit 0 ;; "") usage >&2; exit 2 ;; esac
[ $# -le 2 ] || die "too many arguments (see --help)"
LOG=$1
OUT=${2:-$(dirname "$LOG")/plots}
[ -r "$LOG" ] || die "cannot read $LOG"
command -v gnuplot >/dev/null || die "gnuplot not found (apt-get install gnuplot-nox)"
head -n 1 "$LOG" | grep -q "^second	" || die "$LOG is not an hb-monitor log (no 'second' header)"
lines=$(( $(wc -l <"$LOG") - 1 ))
[ "$lines" -ge 2 ] || die "$LOG has $lines merged second(s): nothing to plot"
mkdir -p "$OUT"

# gnuplot strings are single-quoted: refuse names that would break them
case "$LOG$OUT" in *"'"*) die "file names with a single quote are not supported" ;; esac
gnuplot -e "log='$LOG'; outdir='$OUT'; run='$(basename "$LOG")'" "$(dirname "$0")/plot.gp"
for f in client_qps server_qps qps created won conns latency_p99; do
  [ -s "$OUT/$f.png" ] || die "gnuplot did not write $OUT/$f.png"
done
echo "plot.sh: 7 charts of $lines seconds in $OUT/"
