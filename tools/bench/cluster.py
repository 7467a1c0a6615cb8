"""cluster.py -- the cluster part of the report of tools/bench/c1m.sh
--servers N (a library for report.py).

Inputs in the run's directory, besides report.py's: sI.stats (each node's
final counters), snap/ (every node's stats and Redis's INFO commandstats at
named moments: snap/times.tsv says when), relogin.tsv (--kill-node: users on
the other nodes, on s1 and at the clients, 4 samples a second).
section() returns the report's lines and fills result.txt's keys."""
import glob
import math
import os

import cost
import series


def read_stats(path):
    out = {}
    try:
        with open(path) as fh:
            for line in fh:
                p = line.split()
                if len(p) == 2 and not p[0].startswith("#"):
                    try:
                        out[p[0]] = int(p[1])
                    except ValueError:
                        try:
                            out[p[0]] = float(p[1])
                        except ValueError:
                            pass
    except OSError:
        pass
    return out


def read_commandstats(path):
    """cmdstat_NAME:calls=N,... -> {NAME: N}; None when the file is missing."""
    if not os.path.exists(path):
        return None
    out = {}
    with open(path) as fh:
        for line in fh:
            if line.startswith("cmdstat_"):
                name, rest = line.strip()[8:].split(":", 1)
                for kv in rest.split(","):
                    if kv.startswith("calls="):
                        out[name] = int(kv[6:])
    return out


class Snaps:
    """The named snapshots in time order; deltas of a node's counters between
    two of them, across a restart (a counter that went down started again
    from 0 in a new process)."""

    def __init__(self, d, nodes):
        self.d, self.nodes, self.order, self.at = d, nodes, [], {}
        try:
            with open(os.path.join(d, "snap", "times.tsv")) as fh:
                for line in fh:
                    name, t = line.split()
                    self.order.append(name)
                    self.at[name] = float(t)
        except OSError:
            pass
        self.stats = {(n, i): read_stats(os.path.join(d, "snap", "%s.s%d.stats" % (n, i)))
                      for n in self.order for i in range(nodes)}

    def has(self, *names):
        return all(n in self.at for n in names)

    def delta(self, key, a, b, node=None):
        nodes = range(self.nodes) if node is None else [node]
        seq = self.order[self.order.index(a):self.order.index(b) + 1]
        tot = 0
        for i in nodes:
            vals = [self.stats[(n, i)].get(key) for n in seq]
            vals = [v for v in vals if v is not None]
            for x, y in zip(vals, vals[1:]):
                tot += y - x if y >= x else y
        return tot

    def redis_delta(self, a, b):
        """Calls per command between two snapshots, or None when Redis was
        not reachable at either or restarted in between (its counters reset)."""
        ca = read_commandstats(os.path.join(self.d, "snap", a + ".redis"))
        cb = read_commandstats(os.path.join(self.d, "snap", b + ".redis"))
        if ca is None or cb is None:
            return None
        out = {k: v - ca.get(k, 0) for k, v in cb.items()}
        if any(v < 0 for v in out.values()):
            return None
        return out


def fnum(x, d=0):
    return "-" if x is None else ("{:,.%df}" % d).format(x)


def node_rows(rows, name):
    return [r for r in rows if r["role"] == "server" and r["instance"] == name]


def section(d, F, rows, stages, R):
    n = int(F.get("servers", "1"))
    names = ["s%d" % i for i in range(n)]
    final = {nm: read_stats(os.path.join(d, nm + ".stats")) for nm in names}
    S = Snaps(d, n)
    L = ["## Cluster: %d nodes" % n, "",
         "One hb-server per server host (tools/cluster.sh), each making 1/%d of the packets at 1/%d of the rate; "
         "the clients enter at s0 and follow redirects.  Latency is measured by the clients, which do not know "
         "which node answered: percentiles are for the whole cluster (Stages above)." % (n, n), ""]

    # -- per node, per stage: rates from the reports (1 s resolution)
    per = {nm: series.per_second(node_rows(rows, nm)) for nm in names}
    L += ["| node | stage | shakes in/s | replies/s | wins/s | packets made/s | notices/s | opens/s | "
          "logged in at start / end |", "|---|---|---|---|---|---|---|---|---|"]
    for st in stages:
        f, l = st["first"], st["last"]
        tot = {}
        for nm in names + ["all"]:
            if nm == "all":
                vals = tot
            else:
                s = per[nm]
                vals = {}
                for k in ("requests", "replies", "wins", "packets_created", "notices", "opens"):
                    rs = series.rate_stats(s, k, f, l)
                    vals[k] = rs["mean"] if rs else None
                    if vals[k] is not None:
                        tot[k] = tot.get(k, 0) + vals[k]
                c0, c1 = s.get(f, {}).get("conns"), s.get(l + 1, s.get(l, {})).get("conns")
                vals["c0"], vals["c1"] = c0, c1
                for k in ("c0", "c1"):
                    if vals[k] is not None:
                        tot[k] = tot.get(k, 0) + vals[k]
                for k, v in vals.items():
                    if v is not None and k not in ("c0", "c1"):
                        R["%s.%s.%s_per_s" % (st["name"], nm, k)] = round(v, 1)
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |" % (
                "**all**" if nm == "all" else nm, st["name"], fnum(vals.get("requests")), fnum(vals.get("replies")),
                fnum(vals.get("wins"), 1), fnum(vals.get("packets_created"), 1), fnum(vals.get("notices"), 1),
                fnum(vals.get("opens"), 1), fnum(vals.get("c0")), fnum(vals.get("c1"))))
    L.append("")

    # -- per node, whole run: final counters
    keys = ("logins", "redirected", "rehomed", "shakes", "wins", "notices", "opens_ok", "opens_remote",
            "xmsg_xadd", "xmsg_duplicates", "replayed_wins", "cluster_reconnects")
    L += ["Whole run, each node's final counters (a restarted node's count from its restart):", "",
          "| node | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for nm in names:
        L.append("| %s | %s |" % (nm, " | ".join(fnum(final[nm].get(k)) for k in keys)))
        for k in keys:
            if k in final[nm]:
                R["%s.%s" % (nm, k)] = final[nm][k]
    L.append("| **all** | %s |" % " | ".join(fnum(sum(final[nm].get(k, 0) for nm in names)) for k in keys))
    L.append("")

    # -- Redis commands per shake, per notice, per open
    L += ["### Redis commands", ""]
    if S.has("stage2_begin", "shake_end"):
        # the shake flow until its end or the first thing killed, whichever came first
        a = "stage2_begin"
        b = min((x for x in ("shake_end", "prekill", "preredis") if x in S.at), key=lambda x: S.at[x])
        shakes = S.delta("shakes", a, b)
        msg = S.delta("xmsg_xadd", a, b) + S.delta("xmsg_xack", a, b)
        polls = S.delta("xmsg_xread", a, b)
        secs = S.at[b] - S.at[a]
        R["redis_cmds_per_shake"] = round(msg / shakes, 6) if shakes else None
        L.append("- stage 2, shake flow (%.0f s%s, %s shakes): **%s Redis commands per shake** (%s XADD + XACK from "
                 "the nodes); the nodes' fixed cost meanwhile: %.0f XREADGROUP polls/s per node, membership "
                 "refresh 1/s per node" % (secs, "" if b == "shake_end" else ", until the kill", fnum(shakes), fnum(msg / shakes, 4) if shakes else "-",
                                          fnum(msg), polls / secs / n if secs > 0 else 0))
        rd = S.redis_delta(a, b)
        if rd is not None:
            # the fixed cost: polls, the membership script and what it calls, this script's INFO
            fixed = ("xreadgroup", "eval", "evalsha", "time", "zadd", "zrem", "hset", "hdel", "hget", "zrange",
                     "zrangebyscore", "zremrangebyscore", "info", "auth", "ping", "hello", "client", "xgroup|create")
            other = {k: v for k, v in rd.items() if k not in fixed and not k.startswith("client|")}
            L.append("  - as Redis counted them (INFO commandstats): %s in all: %s; beyond the fixed cost (polls, "
                     "membership script) %s, %s per shake" % (
                         fnum(sum(rd.values())), ", ".join("%s %s" % (k, fnum(v)) for k, v in sorted(rd.items()) if v),
                         fnum(sum(other.values())), fnum(sum(other.values()) / shakes, 4) if shakes else "-"))
            R["redis_server_cmds_per_shake"] = round(sum(other.values()) / shakes, 6) if shakes else None
    if S.has("shake_end", "stage2_end"):
        a, b = "shake_end", "stage2_end"
        xadd, xack = S.delta("xmsg_xadd", a, b), S.delta("xmsg_xack", a, b)
        entries, remote = S.delta("xmsg_xread_entries", a, b), S.delta("opens_remote", a, b)
        notices, opens = S.delta("notices", a, b), S.delta("opens_ok", a, b)
        xn = xadd - 2 * remote
        ack = xack / entries if entries else 0.0
        R["redis_cmds_per_notice"] = round(1 + ack, 3)
        R["redis_cmds_per_open"] = round(2 * (1 + ack), 3)
        L.append("- stage 2, send flow: %s notices delivered (%s crossed nodes), %s opens paid (%s forwarded to the "
                 "packet's node): %s XADD + %s XACK for %s entries read, so **per notice crossing nodes %.2f "
                 "commands, per open crossing nodes %.2f** (there and back); 0 for those that stay on one node"
                 % (fnum(notices), fnum(xn), fnum(opens), fnum(remote), fnum(xadd), fnum(xack), fnum(entries),
                    1 + ack, 2 * (1 + ack)))
        rd = S.redis_delta(a, b)
        if rd is not None:
            L.append("  - as Redis counted them: %s" % ", ".join("%s %s" % (k, fnum(v)) for k, v in sorted(rd.items()) if v))
    L.append("")

    # -- a node killed
    if "kill_node_at" in F:
        L += ["### Node s1 killed (SIGKILL) in stage 2", ""]
        held = int(F.get("kill_node_held", 0))
        R["kill_node_held"] = held
        R["kill_node_relogin_s"] = F.get("kill_node_relogin_s")
        t99 = None
        back_rate = 0.0
        samples = []
        try:
            with open(os.path.join(d, "relogin.tsv")) as fh:
                fh.readline()
                for line in fh:
                    t, surv, s1, cl, ph = line.split()
                    samples.append((float(t), int(surv), int(s1), int(cl), ph))
        except OSError:
            pass
        users = int(F["users"])
        for t, surv, s1, cl, ph in samples:
            if ph == "down" and t99 is None and surv >= users - held // 100:
                t99 = t
        back = [(t, s1) for t, surv, s1, cl, ph in samples if ph == "back"]
        for (ta, a), (tb, b) in zip(back, back[1:]):
            if tb > ta:
                back_rate = max(back_rate, (b - a) / (tb - ta))
        R["kill_node_relogin_99_s"] = t99
        # the clients' stats files lag up to 1 s: from their first dip on
        dip = next((i for i, x in enumerate(samples) if x[3] < users), None)
        t_cl = None if dip is None else next((x[0] for x in samples[dip:] if x[3] >= users), None)
        R["kill_node_clients_all_s"] = t_cl
        restart = float(F["kill_node_restart_at"]) - float(F["kill_node_at"]) if "kill_node_restart_at" in F else None
        if F.get("kill_node_relogin_s"):
            # the sample before: how sharp the figure is (samples slow down on a saturated box)
            prev = None
            for t, surv, s1, cl, ph in samples:
                if ph == "down" and t < float(F["kill_node_relogin_s"]) and surv < users:
                    prev = (t, users - surv)
            R["kill_node_relogin_prev_s"] = prev[0] if prev else None
            last = F.get("kill_node_last_login_s")
            R["kill_node_last_login_s"] = last
            if last:
                # the survivors' own stamp of their latest login: exact to a loop turn
                L.append("- s1 held **%s users** when killed; all of them logged in on the other nodes after **%s s** "
                         "(the survivors' stamp of their last login; the watch, whose samples lag by their gap and the "
                         "stats files' second, saw it at %s s%s; 99%% after %s s); the goal: within 10 s"
                         % (fnum(held), last, F["kill_node_relogin_s"],
                            ", the sample before at %.2f s still missed %s" % (prev[0], fnum(prev[1])) if prev else "",
                            fnum(t99, 2)))
            else:
                L.append("- s1 held **%s users** when killed; all of them logged in on the other nodes after **%s s** "
                         "(99%% after %s s%s); the goal: within 10 s"
                         % (fnum(held), F["kill_node_relogin_s"], fnum(t99, 2),
                            "; the sample before, at %.2f s, still missed %s" % (prev[0], fnum(prev[1])) if prev else ""))
        else:
            L.append("- s1 held **%s users** when killed; 99%% of them were logged in on the other nodes after %s s, "
                     "not all before s1 came back (a longer --kill-down shows the whole curve)" % (fnum(held), fnum(t99, 2)))
        if F.get("standby"):
            pr = int(F.get("kill_node_promoted", 0))
            R["kill_node_promoted"] = pr
            L.append("- standbys (--standby, %s held before stage 2): the survivors promoted **%s** of them to s1's "
                     "users' sessions (%.1f%% of the %s): logged in again without a connect or a Login"
                     % (fnum(int(F.get("standby_held", 0))), fnum(pr), 100.0 * pr / held if held else 0, fnum(held)))
        # liveness (server/liveness.h): when the survivors saw s1's liveness
        # connection close and proved it gone, by their stamps after the watch
        if S.has("postkill"):
            k = float(F["kill_node_at"])
            closed, gone = [], []
            for i in range(n):
                if i == 1:
                    continue
                st = S.stats[("postkill", i)]
                cu, gu = st.get("cluster_live_closed_us", 0), st.get("cluster_gone_us", 0)
                if cu and cu / 1e6 >= k:
                    closed.append(cu / 1e6 - k)
                if gu and gu / 1e6 >= k:
                    gone.append(gu / 1e6 - k)
            R["kill_node_live_closed_s"] = [round(x, 2) for x in sorted(closed)]
            R["kill_node_live_gone_s"] = [round(x, 2) for x in sorted(gone)]
            L.append("- liveness: %d of the %d survivors saw s1's liveness connection close (%s s after the kill) and "
                     "%d proved it gone (%s s): %s" % (
                         len(closed), n - 1, ", ".join("%.2f" % x for x in sorted(closed)) or "-", len(gone),
                         ", ".join("%.2f" % x for x in sorted(gone)) or "-",
                         "dropped at once" if gone else "dropped when its registration expired (--cluster-ttl)"))
        if F.get("kill_node_exit_s"):
            R["kill_node_exit_s"] = F["kill_node_exit_s"]
            L.append("- the killed process was gone %s s after the SIGKILL: the kernel closes its sockets as it "
                     "exits, and a user notices the loss only when its connection is closed" % F["kill_node_exit_s"])
        L.append("- the clients had every user logged in again (anywhere) %s s after the kill (their stats files "
                 "lag up to 1 s)" % fnum(t_cl, 2))
        if restart is not None:
            bh = F.get("kill_node_back_held")
            L.append("- restarted on its journal %.1f s after the kill (replayed %s wins); it held %s users again "
                     "when its count settled, taken back at most %s/s (paced by --rehome-rate, the most the cluster sends one node a second; "
                     "rehomed by all nodes over the run: %s)" % (
                         restart, fnum(final["s1"].get("replayed_wins")), fnum(int(bh)) if bh else "-",
                         fnum(back_rate), fnum(sum(final[nm].get("rehomed", 0) for nm in names))))
            R["kill_node_back_max_per_s"] = round(back_rate)
            # Users between nodes during the take-back: redirected by a
            # survivor, not yet logged in on s1 (the nodes' counts), and the
            # clients' own count of users logged in at its lowest.
            bk = [(t, users - surv - s1x, cl) for t, surv, s1x, cl, ph in samples if ph == "back"]
            if bk:
                tw, worst, _ = max(bk, key=lambda x: x[1])
                low = min(x[2] for x in bk)
                R["kill_node_back_transit_max"] = worst
                R["kill_node_back_clients_min"] = low
                L.append("- during the take-back at most **%s users were between nodes** at once (%.1f s after the "
                         "kill; redirected, not yet logged in on s1: %s minus the nodes' counts); the clients' count "
                         "of logged-in users at its lowest: %s" % (fnum(max(worst, 0)), tw, fnum(users), fnum(low)))
            # The watch ends with stage 2; the restarted node's own final
            # counters say how many came home over the whole run and, by its
            # stamp of its latest login, by when (a later login for another
            # reason would only make that a bound).
            logins, last_us = final["s1"].get("logins"), final["s1"].get("login_last_us")
            if logins and last_us and "kill_node_restart_at" in F:
                took = last_us / 1e6 - float(F["kill_node_restart_at"])
                R["kill_node_back_logins"] = logins
                R["kill_node_back_last_s"] = round(took, 1)
                L.append("- over the whole run the restarted s1 logged in **%s users** (of the %s it held), the last "
                         "%.1f s after its restart (its own stamp): **%s a second** on average, no storm"
                         % (fnum(logins), fnum(held), took, fnum(logins / took) if took > 0 else "-"))
        L += relogin_budget(d, F, rows, held, R)
        L.append("- the curve: plots/relogin.png (relogin.tsv); money: see the ledger below (every notice "
                 "delivered once, nothing paid twice) and xmsg_duplicates above")
        L.append("")

    # -- Redis killed
    if "redis_kill_at" in F:
        L += ["### The cluster's redis-server killed (SIGKILL) in stage 2", ""]
        k, b = float(F["redis_kill_at"]), float(F.get("redis_back_at", F["redis_kill_at"]))
        srv = series.per_second(series.select(rows, "server"))
        ki, bi = int(k), int(b)
        before = series.rate_stats(srv, "replies", ki - 10, ki - 1)
        during = series.rate_stats(srv, "replies", ki + 1, bi - 1)
        after = series.rate_stats(srv, "replies", bi + 1, bi + 10)

        def m(s):
            return "%s (min %s)" % (fnum(s["mean"]), fnum(s["min"])) if s else "-"
        L.append("- down %.1f s; shakes answered per second, all nodes: 10 s before %s, while down %s, 10 s after %s"
                 % (b - k, m(before), m(during), m(after)))
        for key, s in (("before", before), ("down", during), ("after", after)):
            if s:
                R["kill_redis.replies_per_s_" + key] = round(s["mean"], 1)
        ks = ("xmsg_xadd", "xmsg_xadd_failed", "xmsg_queue_full", "xmsg_dropped", "xmsg_acked", "xmsg_duplicates",
              "cluster_reconnects", "cluster_redis_up")
        seq = [x for x in ("preredis", "redisdown", "redisback10", "stage2_end") if x in S.at]
        L += ["", "| counter (all nodes) | " + " | ".join(seq) + " |", "|---|" + "---|" * len(seq)]
        for key in ks:
            L.append("| %s | %s |" % (key, " | ".join(
                fnum(sum(S.stats[(x, i)].get(key, 0) for i in range(n))) for x in seq)))
        L.append("")
        L.append("- the cross-node messages of the down time waited in the nodes' queues and went out after "
                 "(xmsg_queue_full and xmsg_dropped stay 0 if none was lost); the ledger below checks delivery")
        L.append("")
    return L


def relogin_budget(d, F, rows, held, R):
    """What the box had to give for the relogins (issue 15's 10 s goal), from
    cost.tsv: whole-box CPU in the 10 s before the kill and over the relogin
    window, the shakes answered in each, and so what a relogin cost beyond
    the shakes.  An estimate (a shake is taken to cost what it did before the
    kill), printed as one: it says whether 10 s fits in the box at all."""
    rs = F.get("kill_node_last_login_s") or F.get("kill_node_relogin_s")
    C = cost.load(os.path.join(d, "cost.tsv"))
    if not rs or not C or "kill_node_at" not in F:
        return []
    k, took = int(float(F["kill_node_at"])), float(rs)
    e = k + max(1, int(math.ceil(took))) - 1
    cli = series.per_second(series.select(rows, "client", "c"))

    def shakes(a, b):
        st = series.rate_stats(cli, "replies", a, b)
        return st["mean"] if st else None
    wb = cost.window(C, k - 10, k - 1, "server", shakes(k - 10, k - 1))
    wr = cost.window(C, k, e, "server", shakes(k, e))
    if not wb or not wr or not wb["shakes"] or wr["shakes"] is None:
        return ["- the box during the relogins: no cost samples around the kill (cost.tsv)"]
    per_shake = wb["busy_us"] / wb["shakes"]
    logins = held / took
    login_us = (wr["busy_us"] - wr["shakes"] * per_shake) / logins
    need = wr["shakes"] * per_shake + held / 10.0 * login_us
    R.update({"kill_node_busy_before_pct": round(100 * wb["busy_frac"], 1),
              "kill_node_busy_relogin_pct": round(100 * wr["busy_frac"], 1),
              "kill_node_login_us": round(login_us, 1), "kill_node_need_cores_10s": round(need / 1e6, 2)})
    return ["- the box during the relogins (cost.tsv): in the 10 s before the kill %.0f%% busy (%.2f of %.0f cores), "
            "%s shakes/s answered at %.1f µs of the whole box each; from the kill until all were back %.0f%% busy, "
            "%s shakes/s and %s logins/s, so **a relogin cost about %.1f µs** of the box beyond the shakes "
            "(servers %s, clients %s cores in that window).  Moving %s users in 10 s beside those shakes needs "
            "**about %.2f cores** of the box's %.0f (an estimate: a shake taken at its cost before the kill)"
            % (100 * wb["busy_frac"], wb["busy_us"] / 1e6, wb["cpus"], fnum(wb["shakes"]), per_shake,
               100 * wr["busy_frac"], fnum(wr["shakes"]), fnum(logins), login_us,
               cost.f(None if wr["target_us"] is None else wr["target_us"] / 1e6, 2),
               cost.f(None if wr["clients_us"] is None else wr["clients_us"] / 1e6, 2),
               fnum(held), need / 1e6, wb["cpus"])]
