"""series.py -- turning the raw reports of `hb-monitor --reports FILE` into
per-second figures (a library for judge.py and report.py).  The file's
format has one home, monitor/tsvlog.c (mon_reports_line): a header naming
the columns, one line per report received, the latency histogram as
"high:count" pairs (high: the largest microsecond value of the bucket).

Counters in reports are cumulative per process, read just after the start of
the second they are stamped with; so the difference between the reports
stamped s and s+1 is what happened during [s, s+1), which this module calls
activity second s.  A lost report makes one difference span several seconds;
it is spread evenly over them.  The latency histogram of the report stamped
s+1 is likewise that of activity second s.  Histograms (lib/hist.h's
buckets) are merged by adding counts, so a stage's percentiles are exact to
the bucket (< 0.8%), not an average of per-second percentiles."""
import statistics

NUMERIC = ("second", "boot_id", "connections", "requests", "replies", "wins", "losses", "packets_created",
           "amount_won", "notices", "opens", "errors", "packets_won", "target_qps")
RATES = ("requests", "replies", "wins", "packets_created", "packets_won", "errors", "opens", "notices")

def load(path):
    """The reports of an hb-monitor --reports file, as dicts with numbers parsed."""
    rows = []
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != len(header):
                continue  # a line cut by a crash
            r = dict(zip(header, parts))
            for k in NUMERIC:
                r[k] = int(r[k])
            rows.append(r)
    return rows


def select(rows, role, prefix=None):
    return [r for r in rows if r["role"] == role and (prefix is None or r["instance"].startswith(prefix))]


def per_second(rows):
    """Activity second -> {counter: amount summed over processes, 'conns': gauge sum}."""
    out = {}
    procs = {}
    for r in rows:
        procs.setdefault((r["instance"], r["boot_id"]), {})[r["second"]] = r
    for reps in procs.values():
        secs = sorted(reps)
        for a, b in zip(secs, secs[1:]):
            span = b - a
            for s in range(a, b):
                d = out.setdefault(s, {k: 0.0 for k in RATES})
                for k in RATES:
                    d[k] += (reps[b][k] - reps[a][k]) / span
        for s in secs:  # gauges: as read at the start of activity second s
            out.setdefault(s, {k: 0.0 for k in RATES})
            out[s]["conns"] = out[s].get("conns", 0) + reps[s]["connections"]
    return out


def rate_stats(series, key, first, last):
    """mean, min, max, stddev of series[s][key] over activity seconds first..last."""
    v = [series[s][key] for s in range(first, last + 1) if s in series]
    if not v:
        return None
    return {"n": len(v), "mean": statistics.fmean(v), "min": min(v), "max": max(v),
            "stddev": statistics.pstdev(v) if len(v) > 1 else 0.0}


def hist(rows, first, last):
    """Merged latency buckets {high: count} of activity seconds first..last."""
    h = {}
    for r in rows:
        if first <= r["second"] - 1 <= last and r["lat"] != "-":
            for pair in r["lat"].split(","):
                high, c = pair.split(":")
                h[int(high)] = h.get(int(high), 0) + int(c)
    return h


def percentile(h, p):
    """hb_hist_percentile on merged buckets (microseconds); None when empty."""
    total = sum(h.values())
    if not total:
        return None
    rank = max(1, min(total, int(p / 100.0 * total + 0.999999999)))
    seen = 0
    for high in sorted(h):
        seen += h[high]
        if seen >= rank:
            return high
    return None
