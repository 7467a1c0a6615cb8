"""series.py -- turning collect.py's reports into per-second figures (a
library for judge.py and report.py).

Counters in reports are cumulative per process, read just after the start of
the second they are stamped with; so the difference between the reports
stamped s and s+1 is what happened during [s, s+1), which this module calls
activity second s.  A lost report makes one difference span several seconds;
it is spread evenly over them.  The latency histogram of the report stamped
s+1 is likewise that of activity second s.  Histograms use proto/hist.h's
buckets and are merged by adding counts, so a stage's percentiles are exact to
the bucket (< 0.8%), not an average of per-second percentiles."""
import statistics

NUMERIC = ("second", "boot_id", "connections", "requests", "replies", "wins", "losses", "packets_created",
           "amount_won", "notices", "opens", "errors", "packets_won", "target_qps")
RATES = ("requests", "replies", "wins", "packets_created", "packets_won", "errors", "opens", "notices")

# proto/hist.h: 0..255 exact, then 128 sub-buckets per power of two
SUB_BITS, SUB, LINEAR = 7, 128, 256


def bucket_high(i):
    """Largest value bucket i stands for (hb_hist_high)."""
    if i < LINEAR:
        return i
    k = (i - LINEAR) // SUB + SUB_BITS + 1
    sub = (i - LINEAR) % SUB
    low = (SUB + sub) << (k - SUB_BITS)
    return low + (1 << (k - SUB_BITS)) - 1


def load(path):
    """The reports of a collect.py TSV, as dicts with numbers parsed."""
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
    """Merged latency buckets {index: count} of activity seconds first..last."""
    h = {}
    for r in rows:
        if first <= r["second"] - 1 <= last and r["lat"] != "-":
            for pair in r["lat"].split(","):
                i, c = pair.split(":")
                h[int(i)] = h.get(int(i), 0) + int(c)
    return h


def percentile(h, p):
    """hb_hist_percentile on merged buckets (microseconds); None when empty."""
    total = sum(h.values())
    if not total:
        return None
    rank = max(1, min(total, int(p / 100.0 * total + 0.999999999)))
    seen = 0
    for i in sorted(h):
        seen += h[i]
        if seen >= rank:
            return bucket_high(i)
    return None
