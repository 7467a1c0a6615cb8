"""cost.py -- what a window of a benchmark run cost, from sample.py's
cost.tsv (a library for report.py; issue 14).

cost.tsv has one line per second and role with cumulative counters
(sample.py); the cost of a window (activity seconds FIRST..LAST, as in
phases.tsv) is the difference between the samples read just after FIRST
began and just after LAST+1 began, divided by the time between the two
readings: a rate per second, and divided by the answered shakes per second,
a cost per shake.  A window without samples at both ends (the sampler was
not running, or starved) has no figures: None, never zeros."""
import statistics

ROLE_OF_TARGET = {"server": ("server", "clients-c"), "echo": ("floor", "clients-e")}
BUSY = ("user_us", "nice_us", "system_us", "irq_us", "softirq_us")
ALL = BUSY + ("idle_us", "iowait_us", "steal_us")


def load(path):
    """{second: {role: {key: number}}}; the first line of a (second, role) wins."""
    out = {}
    try:
        fh = open(path)
    except OSError:
        return None
    with fh:
        for line in fh:
            p = line.rstrip("\n").split("\t")
            if len(p) < 3 or not p[0].isdigit():
                continue  # a line cut short
            d = {}
            for kv in p[2:]:
                k, _, v = kv.partition("=")
                try:
                    d[k] = float(v)
                except ValueError:
                    pass
            out.setdefault(int(p[0]), {}).setdefault(p[1], d)
    return out


def ends(cost, first, last):
    """The samples bounding activity seconds first..last: the earliest in
    [first, last] and the latest in (that one, last + 1]; None when they span
    less than half the window."""
    a = next((s for s in range(first, last + 1) if s in cost and "box" in cost[s]), None)
    if a is None:
        return None
    b = next((s for s in range(last + 1, a, -1) if s in cost and "box" in cost[s]), None)
    if b is None or cost[b]["box"]["t"] - cost[a]["box"]["t"] < 0.5 * (last - first + 1):
        return None
    return cost[a], cost[b]


def window(cost, first, last, target, shakes):
    """The cost figures of one window; target 'server' or 'echo', shakes the
    answered shakes per second of its clients (None: unknown).  None when
    cost.tsv has no samples around the window."""
    e = cost and ends(cost, first, last)
    if not e:
        return None
    A, Bv = e
    span = Bv["box"]["t"] - A["box"]["t"]

    def rate(role, key):
        if role not in A or role not in Bv or key not in A[role] or key not in Bv[role]:
            return None
        return (Bv[role][key] - A[role][key]) / span

    busy = sum(rate("box", k) or 0 for k in BUSY)
    total = sum(rate("box", k) or 0 for k in ALL)
    tr, cr = ROLE_OF_TARGET[target]
    twin, twin_cr = ROLE_OF_TARGET["echo" if target == "server" else "server"]
    roles = {r: rate(r, "cpu_us") for r in ("server", "floor", "clients-c", "clients-e", "other", "meter", "ksoftirqd")}
    soft = (rate("box", "softirq_us") or 0) + (rate("box", "irq_us") or 0)
    rest = sum(roles[r] or 0 for r in ("other", twin, twin_cr))
    # Without CONFIG_IRQ_TIME_ACCOUNTING (irq_time_acct=0, this box) the kernel
    # charges the softirq work it does in a process's context to that process:
    # /proc/stat's (tick-sampled) softirq then overlaps the roles' CPU, and
    # what is not the run's is the busy time outside every role.
    disjoint = A["box"].get("irq_time_acct") == 1
    run = sum(v or 0 for v in roles.values()) + (soft if disjoint else 0)
    outside = busy - run
    w = {"span": span, "shakes": shakes, "busy_us": busy, "busy_frac": busy / total if total else None,
         "cpus": total / 1e6, "target_us": roles[tr], "clients_us": roles[cr], "softirq_us": soft, "rest_us": rest,
         "meter_us": roles["meter"], "ksoftirqd_us": roles["ksoftirqd"], "run_us": run, "outside_us": outside,
         "softirq_disjoint": disjoint, "steal_us": rate("box", "steal_us")}

    def ctx(role):
        cs = rate(role, "cs")  # perf: every switch of the cgroup, exited threads too
        if cs is None:
            v, i = rate(role, "vcsw"), rate(role, "ivcsw")
            cs = None if v is None or i is None else v + i
        return cs
    w.update({"target_cs": ctx(tr), "clients_cs": ctx(cr), "target_sys": rate(tr, "syscalls"),
              "clients_sys": rate(cr, "syscalls"), "target_ivcsw": rate(tr, "ivcsw"),
              "target_rq_ms": None if rate(tr, "rq_workers_ns") is None else rate(tr, "rq_workers_ns") / 1e6,
              "clients_rq_ms": None if rate(cr, "rq_workers_ns") is None else rate(cr, "rq_workers_ns") / 1e6,
              "target_workers": Bv.get(tr, {}).get("workers"), "clients_workers": Bv.get(cr, {}).get("workers"),
              "box_sys": rate("box", "syscalls"), "box_cs": rate("box", "cs")})
    # the server's journal and locks (keys it may not write: None)
    if target == "server":
        nb, su = rate("server", "journal_batches"), rate("server", "journal_sync_us")
        w["fsync_mean_ms"] = su / nb / 1000 if nb and su is not None else None
        w["fsync_batches"] = nb
        m0, m1 = A["server"].get("journal_sync_max_us"), Bv["server"].get("journal_sync_max_us")
        # a maximum since the start: it is this window's only if it rose here
        w["fsync_max_ms"] = None if m1 is None else m1 / 1000
        w["fsync_max_here"] = m1 is not None and m0 is not None and m1 > m0
        w["lock_waits"], lw = rate("server", "lock_waits"), rate("server", "lock_wait_us")
        w["lock_wait_ms"] = None if lw is None else lw / 1000
    if shakes:
        for k in ("busy_us", "run_us", "target_us", "clients_us", "softirq_us", "rest_us", "meter_us", "ksoftirqd_us",
                  "outside_us",
                  "target_cs", "clients_cs", "target_sys", "clients_sys"):
            w[k + "_per"] = None if w[k] is None else w[k] / shakes
    return w


def f(x, d=1):
    return "-" if x is None else ("{:,.%df}" % d).format(x)


def per(w, k, d=1):
    return f(w.get(k + "_per"), d)


HEADER = ["| window | answered/s | box busy | **box µs/shake** | run's own | target | clients | rest of run | "
          "ksoftirqd | meter | outside run | softirq | ctx sw/shake target / clients | "
          "syscalls/shake target / clients | run-queue wait ms/s target / client workers | fsync ms mean / max | "
          "lock waits/s, ms/s |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
IDLE_QPS = 100  # below this many answered shakes a second, a window is idle: per-second figures


def row(label, w):
    if w is None:
        return "| %s | **no cost samples** (cost.tsv has none around this window: the sampler was not running) " \
               "|" % label + " |" * 15
    if not w["shakes"] or w["shakes"] < IDLE_QPS:
        return "| %s | %s | %s%% | idle: per second below |" % (
            label, f(w["shakes"], 0), f(100 * w["busy_frac"] if w["busy_frac"] is not None else None, 0)) + " |" * 13
    fs = "-"
    if w.get("fsync_mean_ms") is not None or w.get("fsync_max_ms") is not None:
        fs = "%s / %s" % (f(w.get("fsync_mean_ms"), 2), "-" if w.get("fsync_max_ms") is None else
                          ("%s" if w["fsync_max_here"] else "≤ %s") % f(w["fsync_max_ms"], 1))
    lk = "-"
    if w.get("lock_waits") is not None or w.get("lock_wait_ms") is not None:
        lk = "%s, %s" % (f(w.get("lock_waits"), 0), f(w.get("lock_wait_ms"), 1))
    return "| %s | %s | %s%% | **%s** | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s / %s | %s | %s |" % (
        label, f(w["shakes"], 0), f(100 * w["busy_frac"] if w["busy_frac"] is not None else None, 0),
        per(w, "busy_us"), per(w, "run_us"), per(w, "target_us"), per(w, "clients_us"), per(w, "rest_us"),
        per(w, "ksoftirqd_us"), per(w, "meter_us"), per(w, "outside_us"), per(w, "softirq_us"),
        per(w, "target_cs", 2), per(w, "clients_cs", 2),
        per(w, "target_sys", 1), per(w, "clients_sys", 1), f(w["target_rq_ms"], 0), f(w["clients_rq_ms"], 0), fs, lk)


LEGEND = ("Per window (activity seconds of phases.tsv; from tools/bench/sample.py's cost.tsv, read once a second): "
          "answered shakes/s (the target's clients' replies); box busy: the non-idle share of all CPUs "
          "(/proc/stat); **box µs/shake**: all non-idle CPU time of the machine per answered shake; run's own: "
          "the part this run's processes used, split into the target (hb-server or hb-echo-floor, all threads), "
          "its clients (their hb-client processes), the rest of the run (script, redis, monitor, and in "
          "--compare the idle twin and its fleet), ksoftirqd (the kernel's deferred network work) and meter "
          "(the sampler and perf themselves); outside the run: the rest of the box's busy time (other work on "
          "a shared box, kernel threads); softirq: /proc/stat's irq + softirq (sampled at the tick; on a kernel "
          "without CONFIG_IRQ_TIME_ACCOUNTING, as here, softirq work done in a process's context is charged "
          "to that process, so this column overlaps the ones before it and is not added); context switches and syscalls per shake "
          "(perf stat per cgroup); run-queue wait: ms per second the worker threads (SETs, client workers, "
          "floor threads) spent runnable but not running, summed over the threads; fsync: the journal's "
          "write+fdatasync per batch, mean over the window / the server's maximum so far (≤: not reached in "
          "this window); lock waits: the server's count and time blocked on mutexes.  '-': not measured (no "
          "perf, or a counter the server does not have).")


STEAL_FLAG = 0.05  # of all CPU time: the host ran its other guests on our cores


def steal_frac(w):
    """The share of the box's CPU time the host took (steal) in window w, or None."""
    if not w or w.get("steal_us") is None or not w.get("cpus"):
        return None
    return w["steal_us"] / (w["cpus"] * 1e6)


def idle_line(label, w):
    """An idle window's figures per second (per shake means nothing there)."""
    def ms(k):
        return f(None if w[k] is None else w[k] / 1000, 1)
    return ("- %s, per second: box busy %s%% of %s CPUs; CPU ms/s: target %s, clients %s, rest of run %s, ksoftirqd "
            "%s, meter %s, outside the run %s, softirq %s; context switches/s target %s, clients %s; syscalls/s "
            "target %s, clients %s; run-queue wait ms/s target %s, client workers %s" % (
                label, f(100 * w["busy_frac"] if w["busy_frac"] is not None else None, 0), f(w["cpus"], 1),
                ms("target_us"), ms("clients_us"), ms("rest_us"), ms("ksoftirqd_us"), ms("meter_us"),
                ms("outside_us"), ms("softirq_us"), f(w["target_cs"], 0), f(w["clients_cs"], 0),
                f(w["target_sys"], 0), f(w["clients_sys"], 0), f(w["target_rq_ms"], 0), f(w["clients_rq_ms"], 0)))


def med_spread(v, d=1):
    """median (min-max, n) of the figures that were measured"""
    v = [x for x in v if x is not None]
    if not v:
        return "-"
    return "%s (%s-%s, n=%d)" % (f(statistics.median(v), d), f(min(v), d), f(max(v), d), len(v))
