#!/usr/bin/env python3
"""sample.py -- what the benchmark's processes cost, once a second (issue 14).

Started by tools/bench/c1m.sh in the background for the whole run; appends to
--out, every wall second (just after it begins), one line per role with
CUMULATIVE counters, so the cost of any window of the run is the difference
of two lines (report.py):

  SECOND<TAB>ROLE<TAB>key=value<TAB>key=value...

Roles: box (the whole machine, /proc/stat), server (hb-server), floor
(hb-echo-floor), clients-c and clients-e (hb-client agents and their runs,
by the prefix of --agent-name/--instance: c drives hb-server, e the floor),
other (everything else the benchmark started: the script, redis-server,
hb-monitor, tools/fleet's curl and jq), meter (this sampler, perf, hb-stats).
Only the benchmark's own processes are counted in roles (other helpers'
work on a shared box shows as box time outside them).

How: a cgroup v2 directory per role under /sys/fs/cgroup/unified (or
/sys/fs/cgroup when that is the v2 mount) named --cgroup.  --adopt PID (the
script) goes into "other", so everything it starts is born there; every
0.2 s this moves the processes of "other" named hb-server, hb-echo-floor or
hb-client to their role (a process's CPU before its move, at most 0.2 s,
counts as other).  A cgroup counts exited threads and processes too, and
`perf stat -a -G` counts syscalls and context switches per cgroup.
Without cgroup v2 (--no-cgroup or not mounted), roles are found by process
name among --adopt's descendants and CPU is summed over live threads (a
thread that ended between two samples loses its last second; no perf per
role).

Keys, all cumulative unless marked (gauge):
  every line: t (unix time of the reading, s)
  box:  user_us nice_us system_us idle_us iowait_us irq_us softirq_us steal_us
        (/proc/stat), ctxt (context switches, /proc/stat), and with perf
        syscalls, cs (the whole box)
  role: cpu_us user_us system_us (cgroup cpu.stat; without cgroups cpu_us is
        the threads' summed run time), procs threads workers (gauges),
        vcsw ivcsw (voluntary / involuntary context switches, summed over
        threads), rq_ns (run-queue wait, /proc/TID/schedstat field 2, summed
        over threads), rq_workers_ns vcsw_workers ivcsw_workers (the same over
        the worker threads: hb-set-* in the server, hb-worker-* in the
        clients, every thread but the main one in the floor), with perf
        syscalls cs (per cgroup)
  ksoftirqd: the kernel's softirq threads (everybody's deferred network
        work; CPU from their run time, no cgroup)
  box also: irq_time_acct (1: the kernel accounts irq and softirq time apart
        from the tasks it interrupts, CONFIG_IRQ_TIME_ACCOUNTING; 0: it
        charges it to them, so /proc/stat's softirq overlaps the roles' CPU)
  server also: journal_sync_us journal_batches lock_waits lock_wait_us,
        journal_sync_max_us (as the server's stats file has it), read with
        hb-stats; a key the server does not write is left out
Per-thread counters are kept per thread id with their last values, so a
thread or process that ends does not take its counts back.
"""
import argparse
import gzip
import os
import signal
import subprocess
import sys
import threading
import time

ROLES = ("server", "floor", "clients-c", "clients-e", "other", "meter")
ALL_ROLES = ROLES + ("ksoftirqd",)
PROCESS_ROLE = {"hb-server": "server", "hb-echo-floor": "floor"}
SERVER_KEYS = ("journal_sync_us", "journal_batches", "journal_sync_max_us", "lock_waits", "lock_wait_us",
               "producer_late_5ms", "producer_late_us", "producer_late_max_us")
HZ = os.sysconf("SC_CLK_TCK")


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def cgroup2_mount():
    for path in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if os.path.exists(os.path.join(path, "cgroup.procs")) and os.path.exists(
                os.path.join(path, "cgroup.subtree_control")):
            return path
    return None


def irq_time_accounting():
    """1 or 0 from the kernel's configuration, None when it cannot be read"""
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            text = f.read()
    except OSError:
        text = read("/boot/config-" + os.uname().release)
    if not text:
        return None
    return 1 if "CONFIG_IRQ_TIME_ACCOUNTING=y" in text else 0


def client_role(pid):
    """clients-c or clients-e from an hb-client's --agent-name / --instance."""
    args = (read("/proc/%d/cmdline" % pid) or "").split("\0")
    for i, a in enumerate(args[:-1]):
        if a in ("--agent-name", "--instance"):
            return "clients-e" if args[i + 1].startswith("e") else "clients-c"
    return "clients-c"


def role_of(pid):
    comm = (read("/proc/%d/comm" % pid) or "").strip()
    if comm == "hb-client":
        return client_role(pid)
    return PROCESS_ROLE.get(comm)


def is_worker(role, name, tid, tgid):
    if role == "server":
        return name.startswith("hb-set-")
    if role.startswith("clients"):
        return name.startswith("hb-worker-")
    if role == "floor":
        return tid != tgid
    return False


class Threads:
    """Cumulative per-thread counters of one role that survive the threads."""

    def __init__(self):
        self.last = {}  # tid -> (name, tgid, [run_ns, rq_ns, vcsw, ivcsw])
        self.gone = [0, 0, 0, 0]
        self.gone_workers = [0, 0, 0, 0]

    def update(self, role, tids):
        now = {}
        for tid in tids:
            st = read("/proc/%d/status" % tid)
            ss = read("/proc/%d/schedstat" % tid)
            if st is None or ss is None:
                continue
            f = {}
            for line in st.splitlines():
                k, _, v = line.partition(":")
                if k in ("Name", "Tgid", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                    f[k] = v.strip()
            try:
                run, rq = (int(x) for x in ss.split()[:2])
                v = [run, rq, int(f["voluntary_ctxt_switches"]), int(f["nonvoluntary_ctxt_switches"])]
                now[tid] = (f["Name"], int(f["Tgid"]), v)
            except (KeyError, ValueError):
                continue
        for tid, (name, tgid, v) in self.last.items():
            n = now.get(tid)
            # ended, or the id reused by another thread (its counters restart)
            if n is None or n[1] != tgid or any(a < b for a, b in zip(n[2], v)):
                self.gone = [a + b for a, b in zip(self.gone, v)]
                if is_worker(role, name, tid, tgid):
                    self.gone_workers = [a + b for a, b in zip(self.gone_workers, v)]
        self.last = now
        tot, wk, nw = list(self.gone), list(self.gone_workers), 0
        for tid, (name, tgid, v) in now.items():
            tot = [a + b for a, b in zip(tot, v)]
            if is_worker(role, name, tid, tgid):
                wk = [a + b for a, b in zip(wk, v)]
                nw += 1
        return tot, wk, len(now), nw


class Perf:
    """perf stat -a, syscalls and context switches per cgroup and for the box,
    100 ms intervals added up (cumulative; the edges of a window are off by
    at most one interval)."""

    def __init__(self, cgroups):
        self.tot = {}
        self.lock = threading.Lock()
        ev = "raw_syscalls:sys_enter,context-switches"
        cmd = ["perf", "stat", "-a", "-x,", "-I", "100"]
        for _ in cgroups:
            cmd += ["-e", ev]
        if cgroups:
            cmd += ["-G", ",".join(c for c in cgroups for _ in (0, 1))]
        cmd += ["-e", ev]  # after the cgroups: the whole box
        self.names = cgroups
        self.p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.p.stderr:
            f = line.strip().split(",")
            if len(f) < 5 or not f[0].replace(".", "").isdigit():
                sys.stderr.write("perf: " + line)
                continue
            key = (f[4] or "box", "syscalls" if f[3].startswith("raw_syscalls") else "cs")
            n = int(f[1]) if f[1].isdigit() else 0
            with self.lock:
                self.tot[key] = self.tot.get(key, 0) + n

    def get(self, cg, what):
        with self.lock:
            return self.tot.get((cg, what), 0)

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(3)
            except subprocess.TimeoutExpired:
                self.p.kill()


class Sampler:
    def __init__(self, a):
        self.a = a
        self.threads = {r: Threads() for r in ALL_ROLES}
        self.ksoftirqd = [int(d) for d in os.listdir("/proc") if d.isdigit() and
                          (read("/proc/%s/comm" % d) or "").startswith("ksoftirqd/")]
        self.irqtime = irq_time_accounting()
        self.mount = None if a.no_cgroup else cgroup2_mount()
        self.cg = {}
        self.perf = None
        self.tree = {}  # without cgroups: pid -> role (None: not ours)
        if self.mount:
            try:
                base = os.path.join(self.mount, a.cgroup)
                os.makedirs(base, exist_ok=True)
                for r in ROLES:
                    os.makedirs(os.path.join(base, r), exist_ok=True)
                    self.cg[r] = os.path.join(base, r)
                self.move(os.getpid(), "meter")
                self.move(a.adopt, "other")
            except OSError as e:
                sys.stderr.write("sample.py: cgroup v2 not usable (%s): per-thread accounting instead\n" % e)
                self.remove_cgroups()
                self.mount, self.cg = None, {}
        if not a.no_perf:
            try:
                cgs = [os.path.join(a.cgroup, r) for r in ROLES] if self.cg else []
                self.perf = Perf(cgs)
            except OSError as e:
                sys.stderr.write("sample.py: perf not usable (%s): no syscall counts\n" % e)

    def move(self, pid, role):
        with open(os.path.join(self.cg[role], "cgroup.procs"), "w") as f:
            f.write("%d\n" % pid)

    def procs(self, role, what="cgroup.procs"):
        out = []
        for line in (read(os.path.join(self.cg[role], what)) or "").split():
            out.append(int(line))
        return out

    def classify(self):
        if self.cg:
            for pid in self.procs("other"):
                r = role_of(pid)
                if r:
                    try:
                        self.move(pid, r)
                    except OSError:
                        pass  # ended meanwhile
            return
        # no cgroups: the descendants of --adopt, by name
        ppid = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                st = read("/proc/%s/stat" % d)
                if st:
                    ppid[int(d)] = int(st[st.rfind(")") + 2:].split()[1])
        tree = {}

        def ours(p, depth=0):
            if p in tree:
                return tree[p]
            if p == self.a.adopt:
                r = "other"
            elif p == os.getpid():
                r = "meter"
            elif p not in ppid or depth > 64:
                r = None
            else:
                up = ours(ppid[p], depth + 1)
                r = None if up is None else (role_of(p) or ("meter" if up == "meter" else up))
            tree[p] = r
            return r
        for p in ppid:
            ours(p)
        self.tree = tree

    def role_tids(self, role):
        if role == "ksoftirqd":
            return self.ksoftirqd, self.ksoftirqd
        if self.cg:
            return self.procs(role), self.procs(role, "cgroup.threads")
        pids = [p for p, r in self.tree.items() if r == role]
        tids = []
        for p in pids:
            try:
                tids += [int(t) for t in os.listdir("/proc/%d/task" % p)]
            except OSError:
                pass
        return pids, tids

    def server_stats(self):
        if not self.a.stats or not self.a.hb_stats:
            return {}
        try:
            out = subprocess.run([self.a.hb_stats, "--default", "-", self.a.stats] + list(SERVER_KEYS),
                                 capture_output=True, text=True, timeout=5).stdout.split()
            # a key the server does not write (yet) is left out, not 0
            return {k: v for k, v in zip(SERVER_KEYS, out) if v != "-"} if len(out) == len(SERVER_KEYS) else {}
        except (OSError, subprocess.SubprocessError):
            return {}

    def sample(self, sec):
        t = time.time()
        lines = []
        cpu = (read("/proc/stat") or "").splitlines()
        box = {"t": "%.3f" % t}
        for line in cpu:
            f = line.split()
            if f and f[0] == "cpu":
                for k, v in zip(("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"), f[1:9]):
                    box[k + "_us"] = int(v) * 1000000 // HZ
            elif f and f[0] == "ctxt":
                box["ctxt"] = f[1]
        if self.perf:
            box["syscalls"], box["cs"] = self.perf.get("box", "syscalls"), self.perf.get("box", "cs")
        if self.irqtime is not None:
            box["irq_time_acct"] = self.irqtime
        lines.append(("box", box))
        for r in ALL_ROLES:
            pids, tids = self.role_tids(r)
            tot, wk, nt, nw = self.threads[r].update(r, tids)
            d = {"t": "%.3f" % t, "procs": len(pids), "threads": nt, "workers": nw}
            if self.cg and r in self.cg:
                cs = dict(line.split() for line in (read(os.path.join(self.cg[r], "cpu.stat")) or "").splitlines()
                          if len(line.split()) == 2)
                d["cpu_us"], d["user_us"], d["system_us"] = (cs.get(k, "0") for k in
                                                             ("usage_usec", "user_usec", "system_usec"))
            else:
                d["cpu_us"] = tot[0] // 1000
            d.update({"vcsw": tot[2], "ivcsw": tot[3], "rq_ns": tot[1], "rq_workers_ns": wk[1],
                      "vcsw_workers": wk[2], "ivcsw_workers": wk[3]})
            if self.perf and r in self.cg:
                cg = os.path.join(self.a.cgroup, r)
                d["syscalls"], d["cs"] = self.perf.get(cg, "syscalls"), self.perf.get(cg, "cs")
            if r == "server":
                d.update(self.server_stats())
            lines.append((r, d))
        with open(self.a.out, "a") as f:
            for r, d in lines:
                f.write("%d\t%s\t%s\n" % (sec, r, "\t".join("%s=%s" % kv for kv in d.items())))

    def remove_cgroups(self):
        """Everything still in our cgroups back to the root, then remove them."""
        if not self.mount:
            return
        base = os.path.join(self.mount, self.a.cgroup)
        for r in ROLES:
            d = os.path.join(base, r)
            for _ in range(3):
                for pid in (read(os.path.join(d, "cgroup.procs")) or "").split():
                    try:
                        with open(os.path.join(self.mount, "cgroup.procs"), "w") as f:
                            f.write(pid + "\n")
                    except OSError:
                        pass
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
        try:
            os.rmdir(base)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="the TSV to append to")
    ap.add_argument("--adopt", type=int, required=True, help="the benchmark script's pid")
    ap.add_argument("--cgroup", default="hb-bench-%d" % os.getpid(), help="cgroup directory name")
    ap.add_argument("--stats", help="hb-server's stats file")
    ap.add_argument("--hb-stats", help="the hb-stats binary")
    ap.add_argument("--no-perf", action="store_true")
    ap.add_argument("--no-cgroup", action="store_true")
    a = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    s = Sampler(a)
    sys.stderr.write("sample.py: %s, %s\n" % (
        "cgroup v2 %s/%s" % (s.mount, a.cgroup) if s.cg else "per-thread accounting (no cgroup)",
        "perf stat per cgroup" if s.perf and s.cg else ("perf stat for the box" if s.perf else "no perf")))
    sys.stderr.flush()
    try:
        s.classify()
        nxt = int(time.time()) + 1
        while not stop.is_set():
            # classify every 0.2 s; sample just after each wall second begins
            while not stop.is_set() and time.time() < nxt + 0.005:
                stop.wait(min(0.2, max(0.0, nxt + 0.005 - time.time())))
                s.classify()
            if stop.is_set():
                break
            s.sample(int(time.time()))
            if s.perf and not s.perf.alive():
                sys.stderr.write("sample.py: perf ended (status %s): no more syscall counts\n" % s.perf.p.returncode)
                s.perf = None
            nxt = max(nxt + 1, int(time.time()) + 1)
    finally:
        if s.perf:
            s.perf.stop()
        s.remove_cgroups()


if __name__ == "__main__":
    main()
