#!/usr/bin/env python3
"""pause.py -- what a pause (a hot upgrade) cost the clients, second by second.
Reads hb-monitor --reports' TSV for the clients whose instance names start with
--prefix over activity seconds --first..--last (series.py), merges their
latency histograms per second, and prints one line: the seconds whose p99 is
above --over-ms, the worst second's p99, and the p99 over the whole window.
Exits 0, or 2 when there is no data."""
import argparse
import sys

import series


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tsv", required=True)
    ap.add_argument("--prefix", required=True, help="client instance name prefix")
    ap.add_argument("--first", type=int, required=True, help="first activity second (unix)")
    ap.add_argument("--last", type=int, required=True, help="last activity second (unix), inclusive")
    ap.add_argument("--over-ms", type=float, default=100.0)
    a = ap.parse_args()
    rows = series.select(series.load(a.tsv), "client", a.prefix)
    per = []
    for sec in range(a.first, a.last + 1):
        p99 = series.percentile(series.hist(rows, sec, sec), 99)
        if p99 is not None:
            per.append((sec, p99))
    if not per:
        print("nodata (no client reports for %d..%d)" % (a.first, a.last))
        sys.exit(2)
    over = [s for s, p in per if p > a.over_ms * 1000]
    worst = max(per, key=lambda sp: sp[1])
    whole = series.percentile(series.hist(rows, a.first, a.last), 99)
    print("seconds_over_%gms=%d worst_p99_ms=%.2f worst_second=%d window_p99_ms=%.2f seconds=%d" % (
        a.over_ms, len(over), worst[1] / 1000.0, worst[0], whole / 1000.0, len(per)))


if __name__ == "__main__":
    main()
