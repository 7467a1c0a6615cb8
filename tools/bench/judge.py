#!/usr/bin/env python3
"""judge.py -- did the clients keep up during one step of the rate search?
Reads hb-monitor --reports' TSV for the clients whose instance names start with
--prefix over activity seconds --first..--last (series.py), and passes the
step when replies kept pace with the target rate (mean >= --min-ratio x
--qps, i.e. replies did not fall behind) and the merged p99 latency stayed
within --max-p99-ms.  Prints one line; exits 0 pass, 1 fail, 2 no data."""
import argparse
import sys

import series


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tsv", required=True)
    ap.add_argument("--prefix", required=True, help="client instance name prefix")
    ap.add_argument("--first", type=int, required=True, help="first activity second (unix)")
    ap.add_argument("--last", type=int, required=True, help="last activity second (unix), inclusive")
    ap.add_argument("--qps", type=float, required=True, help="the step's target rate")
    ap.add_argument("--max-p99-ms", type=float, default=10.0)
    ap.add_argument("--min-ratio", type=float, default=0.97)
    a = ap.parse_args()
    rows = series.select(series.load(a.tsv), "client", a.prefix)
    s = series.per_second(rows)
    sent = series.rate_stats(s, "requests", a.first, a.last)
    got = series.rate_stats(s, "replies", a.first, a.last)
    h = series.hist(rows, a.first, a.last)
    p50, p99 = series.percentile(h, 50), series.percentile(h, 99)
    if not got or p99 is None:
        print("nodata qps=%d (no client reports for %d..%d)" % (a.qps, a.first, a.last))
        sys.exit(2)
    why = []
    if got["mean"] < a.min_ratio * a.qps:
        why.append("replies behind")
    if p99 > a.max_p99_ms * 1000:
        why.append("p99 over %g ms" % a.max_p99_ms)
    print("%s qps=%d sent=%.0f/s replies=%.0f/s (min %.0f) p50=%.2fms p99=%.2fms%s" % (
        "fail" if why else "pass", a.qps, sent["mean"] if sent else 0, got["mean"], got["min"], p50 / 1000.0,
        p99 / 1000.0, " (" + ", ".join(why) + ")" if why else ""))
    sys.exit(1 if why else 0)


if __name__ == "__main__":
    main()
