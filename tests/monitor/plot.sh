#!/usr/bin/env bash
# tools/plot.sh on a monitor log recorded from a real run (sample.tsv in this
# directory): seven non-empty PNG charts, each a real PNG of the size asked
# for, and the charts differ (each drew its own data).
. "$(dirname "$0")/lib.sh"
"$ROOT/tools/plot.sh" "$ROOT/tests/monitor/sample.tsv" "$WORK/plots" || fail "tools/plot.sh failed"
for f in client_qps server_qps qps created won conns latency_p99; do
  p=$WORK/plots/$f.png
  [ -s "$p" ] || fail "$f.png missing or empty"
  [ "$(head -c 8 "$p" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$f.png is not a PNG"
  # width and height from the IHDR chunk: 1100 x 520 (plot.gp's terminal)
  wh=$(od -An -tu1 -j16 -N8 "$p" | awk '{ printf "%dx%d", $3 * 256 + $4, $7 * 256 + $8 }')
  expect_eq "$f.png size" "$wh" 1100x520
  expect_ge "$f.png bytes" "$(wc -c <"$p")" 10000
done
expect_eq "distinct charts" "$(md5sum "$WORK"/plots/*.png | awk '{ print $1 }' | sort -u | wc -l)" 7
