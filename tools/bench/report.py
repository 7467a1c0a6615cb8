#!/usr/bin/env python3
"""report.py -- the result file and the short report of tools/bench/c1m.sh.

Inputs (all in --dir, written by the benchmark):
  reports.tsv  every monitor report of the run (hb-monitor --reports)
  phases.tsv   "stage NAME FIRST LAST QPS", "step TARGET FIRST LAST QPS VERDICT" and (--compare)
               "window TARGET FIRST LAST QPS ROUND VERDICT" lines: activity seconds (series.py), inclusive
  cost.tsv     what each role of the run cost, once a second (sample.py; cost.py reads it)
  facts.txt    "key=value" measured by the script (times, RSS, /proc/meminfo, ledger, ...)
Outputs: result.txt ("key=value", one figure a line, for machines) and
report.md (for people), which is also printed."""
import argparse
import os
import statistics

import cost
import cluster
import series


def facts_of(path):
    f = {}
    with open(path) as fh:
        for line in fh:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                f[k] = v
    return f


def phases_of(path):
    stages, steps, windows = [], [], []
    with open(path) as fh:
        for line in fh:
            p = line.split()
            if p and p[0] == "stage":
                stages.append({"name": p[1], "first": int(p[2]), "last": int(p[3]), "qps": int(p[4])})
            elif p and p[0] == "step":
                steps.append({"target": p[1], "first": int(p[2]), "last": int(p[3]), "qps": int(p[4]),
                              "verdict": p[5]})
            elif p and p[0] == "window":
                windows.append({"target": p[1], "first": int(p[2]), "last": int(p[3]), "qps": int(p[4]),
                                "round": int(p[5]), "verdict": p[6]})
    return stages, steps, windows


def fnum(x, d=0):
    return "-" if x is None else ("{:,.%df}" % d).format(x)


def ms(us):
    return "-" if us is None else "%.2f" % (us / 1000.0)


def made_of(path):
    """hb-reconcile --made-per-second: {second: {"packets_created": n}} by
    the journals' CREATE time stamps, or None without the file."""
    if not os.path.exists(path):
        return None
    out = {}
    with open(path) as f:
        next(f, None)
        for line in f:
            sec, shake, send = line.split("\t")
            out[int(sec)] = {"packets_created": int(shake) + int(send)}
    return out


def producing(srv, st):
    """Packets created per second over the seconds the producer ran in this
    stage, leaving out its first and last second (partial)."""
    secs = [s for s in range(st["first"], st["last"] + 1) if s in srv and srv[s]["packets_created"] > 0.5]
    if not secs:
        return 0, None
    made = sum(srv[s]["packets_created"] for s in secs)
    full = secs[1:-1]
    return made, series.rate_stats({s: srv[s] for s in full}, "packets_created", min(full), max(full)) if full else None


def producer_late(C, st):
    """(packets made > 5 ms after due, the lateness of all packets in µs,
    the latest so far in ms or None if not reached in the stage) from the
    server's counters in cost.tsv; None without samples or counters."""
    e = C and cost.ends(C, st["first"], st["last"])
    if not e:
        return None
    a, b = e[0].get("server", {}), e[1].get("server", {})
    if "producer_late_5ms" not in a or "producer_late_5ms" not in b:
        return None
    made = b.get("producer_late_us", 0) - a.get("producer_late_us", 0)
    n = b["producer_late_5ms"] - a["producer_late_5ms"]
    mx = b.get("producer_late_max_us")
    return n, made, None if mx is None or mx <= a.get("producer_late_max_us", 0) else mx / 1000


def p99_of(rows, ph):
    h = series.hist(series.select(rows, "client", "c" if ph["target"] == "server" else "e"), ph["first"], ph["last"])
    return ms(series.percentile(h, 99))


def seconds_p99(stages, srv, cli_rows, R):
    """Lines on the p99 of each second of every shaking stage (issue 14's "no
    second above 50 ms"): median, worst, how many seconds over 50 ms, and the
    medians of the seconds without and with send-flow notices (the send half
    adds notices and opens, and commits, to the same shakes).  The stage's
    first and last second are left out, as for the rates."""
    out = []
    for st in stages:
        if not st["qps"]:
            continue
        secs = [t for t in range(st["first"] + 1, st["last"]) if t in srv]
        p99 = {t: series.percentile(series.hist(cli_rows, t, t), 99) for t in secs}
        p99 = {t: v for t, v in p99.items() if v is not None}
        if not p99:
            continue
        vals = sorted(p99.values())
        worst = max(p99, key=p99.get)
        send = [p99[t] for t in p99 if srv[t].get("notices", 0) > 0]
        shake = [p99[t] for t in p99 if srv[t].get("notices", 0) <= 0]
        over = sum(1 for v in vals if v > 50000)
        name = st["name"]
        R["%s.second_p99_median_us" % name] = statistics.median(vals)
        R["%s.second_p99_worst_us" % name] = p99[worst]
        R["%s.seconds_over_50ms" % name] = over
        halves = "; the seconds without send-flow notices %s ms, with them %s ms (medians)" % (
            ms(statistics.median(shake)) if shake else "-", ms(statistics.median(send)) if send else "-")
        out.append("- %s, the p99 of each second (%d seconds): median %s ms, worst %s ms (second %d of the stage), "
                   "**%d second(s) over 50 ms**%s" % (name, len(vals), ms(statistics.median(vals)), ms(p99[worst]),
                                                    worst - st["first"], over, halves))
    return ["", "Latency second by second (all clients' histograms of that second merged):", ""] + out if out else []


def hms(t0, t):
    return "+%d s" % (t - t0)


def cost_section(C, F, stages, steps, windows, rows, R):
    """The cost breakdown (issue 14) from cost.tsv's samples C: one row per
    stage, search step and --compare window, the server/floor ratios, and
    the order they ran in."""
    L = ["## What a shake costs", ""]
    if C is None:
        R["cost"] = "missing"
        L += ["- **no cost.tsv**: the cost sampler did not run (%s); nothing below is measured" % (
            "it was started: see sample.log" if F.get("cost_sampler") else "--no-cost"), ""]
        return L
    L += [cost.LEGEND, ""] + cost.HEADER
    answered = {}

    def shakes(prefix, first, last):
        if prefix not in answered:
            answered[prefix] = series.per_second(series.select(rows, "client", prefix))
        s = series.rate_stats(answered[prefix], "replies", first, last)
        return s["mean"] if s else None
    name = {"server": "hb-server", "echo": "floor"}
    done, missing = [], []  # (label, key, target, qps, round, window figures)
    stage_name = {"idle": "stage 1 (idle)", "stage2": "stage 2", "stage3": "stage 3"}
    for st in stages:
        done.append(("%s %s/s" % (stage_name.get(st["name"], st["name"]), fnum(st["qps"])), "stage." + st["name"],
                     "server", st["qps"], None, st))
    for i, sp in enumerate(steps):
        done.append(("search %s %s/s %s" % (name[sp["target"]], fnum(sp["qps"]), sp["verdict"]),
                     "step%d.%s.%d" % (i + 1, sp["target"], sp["qps"]), sp["target"], sp["qps"], None, sp))
    for wd in windows:
        done.append(("round %d %s %s/s" % (wd["round"], name[wd["target"]], fnum(wd["qps"])),
                     "round%d.%s" % (wd["round"], wd["target"]), wd["target"], wd["qps"], wd["round"], wd))
    figs = []
    for label, key, target, qps, rnd, ph in done:
        w = cost.window(C, ph["first"], ph["last"], target,
                        shakes("c" if target == "server" else "e", ph["first"], ph["last"]))
        L.append(cost.row(label, w))
        figs.append((label, key, target, qps, rnd, ph, w))
        if w is None:
            missing.append(label)
            continue
        for k in ("busy_us_per", "run_us_per", "target_us_per", "clients_us_per", "softirq_us_per", "outside_us_per",
                  "target_cs_per", "clients_cs_per", "target_sys_per", "clients_sys_per"):
            if w.get(k) is not None:
                R["cost.%s.%s_shake" % (key, k)] = round(w[k], 2)  # e.g. busy_us_per_shake
        R["cost.%s.busy_pct" % key] = round(100 * w["busy_frac"], 1) if w["busy_frac"] is not None else None
    L.append("")
    idle = [cost.idle_line(label, w) for label, _, _, _, _, _, w in figs
            if w and (not w["shakes"] or w["shakes"] < cost.IDLE_QPS)]
    if idle:
        L += idle + [""]
    # a virtual machine's host may run other guests on our cores (steal):
    # then every figure of the window is the host's, not this code's
    stolen = [(label, cost.steal_frac(w)) for label, _, _, _, _, _, w in figs if cost.steal_frac(w) is not None]
    if stolen:
        R["steal_max_pct"] = round(100 * max(f for _, f in stolen), 1)
        bad = [(label, f) for label, f in stolen if f >= cost.STEAL_FLAG]
        R["cost_windows_steal"] = len(bad)
        if bad:
            L += ["- **the host took %.0f%% or more of the CPUs (steal) in %d of %d windows** (%s): another guest "
                  "ran on this machine's cores, so those windows' costs, rates and latencies are not this code's; "
                  "the run is no measure of it (repeat it on a quiet host)" % (
                      100 * cost.STEAL_FLAG, len(bad), len(stolen),
                      "; ".join("%s %.0f%%" % (label, 100 * f) for label, f in bad)), ""]
        else:
            L += ["- steal (CPU the host gave to other guests): at most %.1f%% in any window" % R["steal_max_pct"], ""]
    if missing:
        R["cost_windows_missing"] = len(missing)
        L += ["- **%d window(s) without cost samples** (%s): cost.tsv has no readings around them, so they have no "
              "figures; see sample.log" % (len(missing), "; ".join(missing)), ""]

    def busy(t, q=None, r=None, k="busy_us_per"):
        """the figure k of target t's search steps at rate q, or of its --compare window of round r"""
        return [w[k] for _, key, tg, qq, rr, _, w in figs if w and tg == t and w.get(k)
                and (key.startswith("step") if r is None else rr == r) and (q is None or qq == q)]
    # server against the floor where both ran the same rate
    if windows:
        rounds = sorted({wd["round"] for wd in windows})
        rs, rf, rb, rr_, rt = [], [], [], [], []
        for r in rounds:
            s, e = busy("server", r=r), busy("echo", r=r)
            us, ue = busy("server", r=r, k="run_us_per"), busy("echo", r=r, k="run_us_per")
            ts, te = busy("server", r=r, k="target_us_per"), busy("echo", r=r, k="target_us_per")
            if s and e:
                rs.append(s[0]), rf.append(e[0]), rb.append(s[0] / e[0])
            if us and ue:
                rr_.append(us[0] / ue[0])
            if ts and te:
                rt.append(ts[0] / te[0])
        L += ["Side by side over %d round(s), median (min-max):" % len(rounds), "",
              "- whole box, µs per answered shake: hb-server %s, floor %s" % (cost.med_spread(rs),
                                                                             cost.med_spread(rf)),
              "- **ratio hb-server / floor, whole box per shake: %s** (each round's pair)" % cost.med_spread(rb, 2),
              "- ratio of the run's own CPU per shake (whole box less the work outside the run): %s" %
              cost.med_spread(rr_, 2),
              "- ratio of the target process alone (hb-server / hb-echo-floor, µs per shake): %s" %
              cost.med_spread(rt, 2),
              "- p99 latency per window, in order: %s (a window over %s ms is overloaded or disturbed: its cost "
              "is not that of a steady rate)" % (", ".join(
                  "%s %s ms" % ("S" if wd["target"] == "server" else "F", p99_of(rows, wd)) for wd in
                  sorted(windows, key=lambda w: w["first"])), F.get("max_p99_ms", "10")), ""]
        sat = [w for _, key, _, _, rr, _, w in figs if w and not key.startswith("step") and rr
               and (w.get("busy_frac") or 0) >= 0.97]
        if sat:
            R["cost_windows_saturated"] = len(sat)
            L[-1:] = ["- **the box was saturated (busy >= 97%%) in %d of %d windows**: a saturated box spends both "
                      "cores whatever the target, so its µs per shake there is cores / rate for both and the whole-box "
                      "ratio is 1 by construction.  Run the windows below the "
                      "floor's limit (--compare-qps; the side-by-side search gives it)" % (len(sat), len(windows)), ""]
        if rb:
            R["cost_ratio_box_median"] = round(statistics.median(rb), 3)
            R["cost_ratio_box_min"], R["cost_ratio_box_max"] = round(min(rb), 3), round(max(rb), 3)
        if rr_:
            R["cost_ratio_run_median"] = round(statistics.median(rr_), 3)
        if rt:
            R["cost_ratio_target_median"] = round(statistics.median(rt), 3)
    elif steps:
        both = sorted({sp["qps"] for sp in steps if sp["target"] == "server"} &
                      {sp["qps"] for sp in steps if sp["target"] == "echo"})
        for q in both:
            s, e = busy("server", q), busy("echo", q)
            us, ue = busy("server", q, k="run_us_per"), busy("echo", q, k="run_us_per")
            if s and e:
                r = statistics.median(s) / statistics.median(e)
                R["cost_ratio_box.%d" % q] = round(r, 3)
                ru = statistics.median(us) / statistics.median(ue) if us and ue else None
                if ru:
                    R["cost_ratio_run.%d" % q] = round(ru, 3)
                L.append("- at %s shakes/s, whole-box µs per shake: hb-server %s, floor %s: **ratio %.2f**; the run's "
                         "own CPU: %s against %s, ratio %s" % (
                             fnum(q), cost.med_spread(s), cost.med_spread(e), r, cost.med_spread(us),
                             cost.med_spread(ue), "-" if ru is None else "%.2f" % ru))
        if both:
            L.append("")
    # the order the comparisons ran in
    ph = sorted([p for *_, p, _ in figs], key=lambda p: p["first"])
    if ph:
        t0 = ph[0]["first"]
        if windows:
            order = " ".join("S" if wd["target"] == "server" else "F" for wd in sorted(windows, key=lambda w: w["first"]))
            L.append("- order: %s (S hb-server, F floor), windows of %d s (%d counted), from %s to %s" % (
                order, windows[0]["last"] - windows[0]["first"] + 3, windows[0]["last"] - windows[0]["first"] + 1,
                hms(t0, t0), hms(t0, ph[-1]["last"] + 1)))
        else:
            seg = []
            for label, sel in (("hb-server stages", [p for p in stages]),
                               ("hb-server search", [p for p in steps if p["target"] == "server"]),
                               ("floor search", [p for p in steps if p["target"] == "echo"])):
                if sel:
                    seg.append("%s %s..%s" % (label, hms(t0, sel[0]["first"]), hms(t0, sel[-1]["last"] + 1)))
            ss = [p for p in steps if p["target"] == "server"]
            es = [p for p in steps if p["target"] == "echo"]
            gap = " (the floor's steps ran %d s after the server's: drift of the box between them does not cancel)" \
                % (es[0]["first"] - ss[0]["first"]) if ss and es else ""
            L.append("- order: %s%s" % (", ".join(seg), gap))
        L.append("")
    return L


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    F = facts_of(os.path.join(a.dir, "facts.txt"))
    stages, steps, windows = phases_of(os.path.join(a.dir, "phases.tsv"))
    rows = series.load(os.path.join(a.dir, "reports.tsv"))
    srv_rows = series.select(rows, "server")
    cli_rows = series.select(rows, "client", "c")
    srv, cli = series.per_second(srv_rows), series.per_second(cli_rows)
    # packets per second by the journal's clock when hb-reconcile wrote it:
    # the reports' per-second counts also carry the jitter of when each
    # report was cut (one 5 ms packet early or late moves a second by 1/200)
    made = made_of(os.path.join(a.dir, "made.tsv"))
    R = {}  # result.txt
    users = int(F["users"])
    R.update({k: F[k] for k in ("users", "hosts", "sets", "client_threads", "ports", "addrs") if k in F})

    L = ["# hongbao C1000K benchmark: %s users on %s client hosts (%s)" % (fnum(users), F.get("hosts"), F.get("date")),
         "",
         "Machine: %s.  Server: %s SETs on %s ports; each host: one hb-client, %s worker threads, %s source address(es)."
         % (F.get("machine"), F.get("sets"), F.get("ports"), F.get("client_threads"), F.get("addrs")),
         "Load average before the run: %s (other work on this shared machine skews every figure below)."
         % F.get("loadavg_before", "?")]
    opts = [o for o, on in (("the server's SETs and the floor's threads pinned to CPUs (--pin)", "pin" in F),
                            ("the client workers pinned to CPUs (the default; --no-pin-clients)",
                             F.get("pin_clients") == "1"),
                            ("the client workers not pinned (--no-pin-clients)", F.get("pin_clients") == "0"),
                            ("TCP Fast Open (--fastopen)", "fastopen" in F),
                            ("hb-server flags: %s" % F.get("server_args"), "server_args" in F)) if on]
    L += ["Options: %s." % "; ".join(opts) if opts else "Options: none (threads unpinned).", ""]

    # -- connections and memory
    conn_s = float(F.get("connect_s", "nan"))
    R["connected"] = F.get("connected")
    R["connect_s"] = F.get("connect_s")
    L += ["## Connections and memory", "",
          "- connected: %s of %s in %.1f s (%s/s; 1 s resolution)" % (
              fnum(int(F.get("connected", 0))), fnum(users), conn_s,
              fnum(int(F.get("connected", 0)) / conn_s if conn_s > 0 else None))]
    if "echo_connect_s" in F:
        es = float(F["echo_connect_s"])
        R["echo_connect_s"] = F["echo_connect_s"]
        R["connect_ratio_server_to_floor"] = round(conn_s / es, 2) if es > 0 else None
        L.append("- the echo floor, the same run: %s connected in %.1f s; **hb-server took %s x the floor's time** "
                 "(%s)" % (fnum(int(F.get("echo_connected", users))), es, "%.2f" % (conn_s / es) if es > 0 else "-",
                           "connected side by side, the server's fleet first" if windows else
                           "the floor's connect came after the server's stages and search, %s" % (
                               "the closed connections drained (settle %s s)" % F["settle_s"]
                               if "settle_s" in F else "without waiting for the closed connections")))
    if int(F.get("ramp_login_timeouts", 0) or 0) > 0:
        R["ramp_login_timeouts"] = int(F["ramp_login_timeouts"])
        L.append("- during the ramp the server closed %s connections that sent no login within its login "
                 "timeout (clients too starved of CPU to write it in time); those clients reconnected" %
                 fnum(int(F["ramp_login_timeouts"])))
    if "rss_idle_kb" in F:
        rss, base = int(F["rss_idle_kb"]) * 1024, int(F["rss_base_kb"]) * 1024
        n = max(1, int(F.get("connected", users)))
        R["server_rss_bytes"], R["server_rss_per_conn"] = rss, round(rss / n, 1)
        R["server_rss_per_conn_above_empty"] = round((rss - base) / n, 1)
        L.append("- server RSS with every connection idle: %.1f MiB = %.0f bytes per connection "
                 "(%.0f above the %.1f MiB of the server before any connection)" % (
                     rss / 2**20, rss / n, (rss - base) / n, base / 2**20))
    if "slab_idle_kb" in F:
        # side by side (--compare) both sets were held when it was read
        n = max(1, int(F.get("connected", users)) + (int(F.get("echo_connected", 0)) if windows else 0))
        d = (int(F["slab_idle_kb"]) - int(F["slab_before_kb"])) * 1024
        dm = (int(F["memavail_before_kb"]) - int(F["memavail_idle_kb"])) * 1024
        R["kernel_slab_per_conn"] = round(d / n)
        R["memavailable_drop_per_conn"] = round(dm / n)
        L.append("- kernel memory%s: Slab +%.0f MiB = %.0f bytes per connection, both ends in this kernel "
                 "(MemAvailable -%.0f MiB = %.0f bytes per connection, all users of memory together)" % (
                     " with both sets held (%s connections)" % fnum(n) if windows else "",
                     d / 2**20, d / n, dm / 2**20, dm / n))
    L.append("")

    # -- stages
    i0 = len(L)
    L += ["## Stages", "",
          "Rates are per second over the stage's whole seconds: mean / min / stddev.  Latency: from when a shake "
          "was due to its reply, all clients' histograms merged over the stage.  Packets/s: %s." % (
              "by the journals' CREATE time stamps (hb-reconcile --made-per-second), the stage's first and last "
              "second left out" if made is not None else "from the servers' once-a-second reports (no made.tsv)"), "",
          "| stage | target/s | s | server shakes in/s | server replies/s | client replies/s | p50 ms | p99 ms "
          "| p999 ms | packets made | packets/s mean / min / max |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for st in stages:
        f, l, name = st["first"], st["last"], st["name"]
        rin, rout = series.rate_stats(srv, "requests", f, l), series.rate_stats(srv, "replies", f, l)
        cr = series.rate_stats(cli, "replies", f, l)
        h = series.hist(cli_rows, f, l)
        p50, p99, p999 = (series.percentile(h, p) for p in (50, 99, 99.9))
        made_n, pk = producing(made if made is not None else srv, st)

        def three(s):
            return "-" if not s else "%s / %s / %s" % (fnum(s["mean"]), fnum(s["min"]), fnum(s["stddev"]))
        L.append("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, fnum(st["qps"]), l - f + 1, three(rin), three(rout), fnum(cr["mean"]) if cr else "-",
            ms(p50), ms(p99), ms(p999), fnum(made_n),
            "%s / %s / %s" % (fnum(pk["mean"], 1), fnum(pk["min"]), fnum(pk["max"])) if pk else "-"))
        for key, s in (("server_in", rin), ("server_reply", rout), ("client_reply", cr), ("packets", pk)):
            if s:
                for m in ("mean", "min", "max", "stddev"):
                    R["%s.%s_per_s_%s" % (name, key, m)] = round(s[m], 1)
        for p, v in (("p50", p50), ("p99", p99), ("p999", p999)):
            R["%s.latency_%s_us" % (name, p)] = v
        R["%s.packets_made" % name] = round(made_n)
    L += seconds_p99(stages, srv, cli_rows, R)
    C = cost.load(os.path.join(a.dir, "cost.tsv"))
    lates = [(st["name"], producer_late(C, st)) for st in stages]
    if any(x for _, x in lates):
        L += ["", "The producer's own clock (hb-server's producer_late_* counters): packets made more than 5 ms "
              "after they were due, and the stage's latest if it set a new maximum -- a late producer stamps "
              "late, so this tells a late producer from a busy journal clock: " + "; ".join(
                  "%s %s (%s µs late in all%s)" % (nm, fnum(x[0]), fnum(x[1]),
                                                  "" if x[2] is None else ", latest %.1f ms" % x[2])
                  for nm, x in lates if x)]
        for nm, x in lates:
            if x:
                R["%s.producer_late_5ms" % nm] = round(x[0])
    L.append("")
    if not stages:  # --compare
        del L[i0:]

    # -- rate search: hb-server against the echo floor
    best = {}
    if steps:
        L += ["## Highest sustained shake rate (replies keep pace, p99 <= %s ms)" % F.get("max_p99_ms", "10"), "",
              "| target | step rate/s | client replies/s | p50 ms | p99 ms | verdict |", "|---|---|---|---|---|---|"]
        for sp in steps:
            prefix = "c" if sp["target"] == "server" else "e"
            rws = series.select(rows, "client", prefix)
            s = series.per_second(rws)
            got = series.rate_stats(s, "replies", sp["first"], sp["last"])
            h = series.hist(rws, sp["first"], sp["last"])
            L.append("| %s | %s | %s | %s | %s | %s |" % (
                "hb-server" if sp["target"] == "server" else "hb-echo-floor", fnum(sp["qps"]),
                fnum(got["mean"]) if got else "-", ms(series.percentile(h, 50)), ms(series.percentile(h, 99)),
                sp["verdict"]))
            if sp["verdict"] == "pass":
                best[sp["target"]] = max(best.get(sp["target"], 0), sp["qps"])
        if F.get("search_order") == "interleaved":
            L += ["", "The two searches ran side by side (--compare), interleaved: each round one step of each, in "
                  "the order S F, F S, ..., so a drift of the box falls on both alike."]
        L.append("")
        for t in ("server", "echo"):
            if any(sp["target"] == t for sp in steps):
                R["max_qps_" + t] = best.get(t, 0)
        cap = F.get("step_max")
        for t, name in (("server", "hb-server"), ("echo", "echo floor")):
            if any(sp["target"] == t for sp in steps):
                hit = cap and best.get(t, 0) >= int(cap)
                L.append("- %s: %s shakes/s%s" % (name, fnum(best.get(t, 0)),
                                                 " (the search's ceiling: the real limit is higher)" if hit else ""))
        if best.get("echo"):
            frac = best.get("server", 0) / best["echo"]
            R["server_fraction_of_floor"] = round(frac, 3)
            L.append("- **hb-server sustains %.0f%% of the echo floor's rate**, measured in the same run" % (100 * frac))
            if frac > 1.1:
                L.append("- the floor measured below hb-server, which does strictly more per shake: this run's floor "
                         "steps were disturbed (%s) and the comparison is not valid" % (
                             "see each step's p99 above" if F.get("search_order") == "interleaved"
                             else "see settle_s in facts.txt"))
            elif frac >= 0.9:
                L.append("- the two are within the run-to-run noise of each other: at this scale the ceiling is the "
                         "clients and the kernel's TCP work (all on the same cores), not what the server adds")
        L.append("")

    L += cost_section(C, F, stages, steps, windows, rows, R)

    # -- hot upgrade (--upgrade)
    if "upgrade_rc" in F:
        L += ["## Hot upgrade during stage 2", ""]
        if F["upgrade_rc"] != "0":
            L.append("- **failed** (tools/upgrade.sh exit %s): see upgrade.log" % F["upgrade_rc"])
        else:
            R["upgrade_pause_ms"] = F.get("upgrade_pause_ms")
            R["upgrade_closes"] = F.get("upgrade_closes")
            R["upgrade_retries"] = F.get("upgrade_retries")
            L.append("- %s connections handed over; the clients paused **%s ms** (from the old server's freeze to "
                     "the new one reading)" % (fnum(int(F.get("upgrade_conns", 0))), F.get("upgrade_pause_ms")))
            L.append("- clients: **%s connections lost, %s shakes retried** in the 10 s around it"
                     % (F.get("upgrade_closes"), F.get("upgrade_retries")))
            L.append("- latency around it (per second, all clients merged): %s" % F.get("upgrade_latency", ""))
            L.append("- server RSS: old %s MB, new %s MB 10 s after; kernel slab %s -> %s MB" % (
                fnum(int(F.get("upgrade_rss_old_kb", 0)) / 1024), fnum(int(F.get("upgrade_rss_new_kb", 0)) / 1024),
                fnum(int(F.get("upgrade_slab_before_kb", 0)) / 1024),
                fnum(int(F.get("upgrade_slab_after_kb", 0)) / 1024)))
        L.append("")

    # -- the cluster (--servers N)
    if int(F.get("servers", "1")) > 1:
        L += cluster.section(a.dir, F, rows, stages, R)

    # -- ledger
    R["ledger"] = "OK" if F.get("ledger_rc") == "0" else "FAIL"
    L += ["## Ledger", "", "- hb-reconcile: **%s** (exit %s): %s" % (R["ledger"], F.get("ledger_rc"),
                                                                    F.get("ledger_summary", "")), ""]
    if F.get("notes"):
        L += ["## Notes", ""] + ["- " + n for n in F["notes"].split(" | ") if n] + [""]

    with open(os.path.join(a.dir, "result.txt"), "w") as out:
        for k, v in R.items():
            out.write("%s=%s\n" % (k, "" if v is None else v))
    text = "\n".join(L)
    with open(os.path.join(a.dir, "report.md"), "w") as out:
        out.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
