/* main.c -- hb-client: settings, workers, the once-a-second tick (figures and
 * clock offset from stats.c, due rate changes, ledger flush) and the end of
 * the run (drain, unanswered requests to the ledger, summary). */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <ev.h>
#include "conf.h"
#include "agent.h"
#include "command.h"
#include "control.h"
#include "stats.h"
#include "worker.h"

static cl_client cl = {
    .cfg = {
        .server = "127.0.0.1",
        .ports = "7000",
        .sources = NULL,
        .uid_from = 0,
        .uid_to = 0,
        .users = 0,
        .qps = 1000,
        .groups = 0,
        .threads = 0,
        .connect_rate = 20000,
        .inflight = 2000,
        .duration = 0,
        .drain = 10,
        .connect_timeout = 10,
        .ledger = NULL,
        .secret_file = NULL,
        .token_ttl = 86400,
        .chat_rate = 0,
        .monitor = NULL,
        .instance = NULL,
        .stats_file = NULL,
        .progress = false,
        .backoff_base_ms = 100,
        .backoff_cap_ms = 10000,
        .backoff_jitter = true,
        .tick_ms = 1,
        .pin_workers = -1,
        .clock = "local",
        .clock_skew_us = 0,
        .control = NULL,
        .echo = false,
        .shake = true,
        .wait_connected = true,
        .seed = 0,
        .start_at = 0,
        .stop_at = 0,
        .commands_fd = -1,
        .plan = NULL,
        .hist_file = NULL,
        .agent = NULL,
        .redis_password_file = NULL,
        .agent_name = NULL,
        .agent_dir = NULL,
        .agent_ttl_ms = 3000,
    },
};

static const hb_opt opts[] = {
    {"server", HB_OPT_STR, &cl.cfg.server, "HOST[,HOST...]", "server address; in a cluster, several entry nodes (tried in turn when one fails)", 0, 0},
    {"port", HB_OPT_STR, &cl.cfg.ports, "PORTS", "server port(s): PORT, FIRST-LAST or a list; users are spread over them", 0, 0},
    {"source", HB_OPT_STR, &cl.cfg.sources, "ADDRS", "local source addresses (list or FIRST-LAST) to spread connections over", 0, 0},
    {"uid-from", HB_OPT_INT, &cl.cfg.uid_from, "UID", "first uid this process plays", 0, 4e9},
    {"uid-to", HB_OPT_INT, &cl.cfg.uid_to, "UID", "one past the last uid this process plays (required)", 1, 4e9},
    {"users", HB_OPT_INT, &cl.cfg.users, "N", "users in the whole test, over all client processes (default: uid-to)", 0, 4e9},
    {"qps", HB_OPT_INT, &cl.cfg.qps, "N", "aggregate shakes per second of all client processes together", 0, 1e8},
    {"groups", HB_OPT_INT, &cl.cfg.groups, "N", "uid groups of the schedule (default ceil(users/qps))", 0, 4e9},
    {"threads", HB_OPT_INT, &cl.cfg.threads, "N", "worker threads (0 = enough for the descriptor limit)", 0, 1024},
    {"connect-rate", HB_OPT_INT, &cl.cfg.connect_rate, "N", "new connections per second, this process", 1, 1e7},
    {"inflight", HB_OPT_INT, &cl.cfg.inflight, "N", "connects in progress at once, per worker", 1, 1e6},
    {"duration", HB_OPT_DOUBLE, &cl.cfg.duration, "SEC", "stop shaking after SEC (0 = run until signalled)", 0, 1e7},
    {"drain", HB_OPT_DOUBLE, &cl.cfg.drain, "SEC", "at the end, wait up to SEC for outstanding replies", 0, 3600},
    {"connect-timeout", HB_OPT_DOUBLE, &cl.cfg.connect_timeout, "SEC", "give up a connect after SEC and back off", 0.1, 600},
    {"ledger", HB_OPT_STR, &cl.cfg.ledger, "FILE", "write every grant (W/S lines) to FILE", 0, 0},
    {"secret", HB_OPT_STR, &cl.cfg.secret_file, "FILE", "server secret: log in with HMAC-SHA256(secret, uid || expires) tokens", 0, 0},
    {"token-ttl", HB_OPT_INT, &cl.cfg.token_ttl, "SEC", "with --secret: each login's token expires SEC later (made afresh at every (re)connect, so runs may last longer)", 60, 1e9},
    {"chat-rate", HB_OPT_DOUBLE, &cl.cfg.chat_rate, "N", "aggregate chat messages per second to random users", 0, 1e7},
    {"monitor", HB_OPT_STR, &cl.cfg.monitor, "HOST:PORT", "send counters to hb-monitor (UDP) every second", 0, 0},
    {"instance", HB_OPT_STR, &cl.cfg.instance, "NAME", "name in monitor reports (default client-UIDFROM)", 0, 0},
    {"stats-file", HB_OPT_STR, &cl.cfg.stats_file, "FILE", "write all counters to FILE every second and at exit", 0, 0},
    {"progress", HB_OPT_BOOL, &cl.cfg.progress, NULL, "print one line of figures per second", 0, 0},
    {"backoff-base", HB_OPT_INT, &cl.cfg.backoff_base_ms, "MS", "reconnect back-off: first ceiling", 1, 1e6},
    {"backoff-cap", HB_OPT_INT, &cl.cfg.backoff_cap_ms, "MS", "reconnect back-off: largest ceiling", 1, 1e7},
    {"backoff-jitter", HB_OPT_BOOL, &cl.cfg.backoff_jitter, NULL, "random delay in [0, ceiling] (off: exactly the ceiling, for comparison)", 0, 0},
    {"tick", HB_OPT_INT, &cl.cfg.tick_ms, "MS", "scheduler tick: shakes leave within MS of their due time (a worker ticks only when something is due, at most once per MS)", 1, 1000},
    {"clock", HB_OPT_STR, &cl.cfg.clock, "local|server", "schedule on the local clock or on the server's (estimated offset)", 0, 0},
    {"clock-skew", HB_OPT_INT, &cl.cfg.clock_skew_us, "US", "for tests: pretend the local clock is off by US microseconds", -1e12, 1e12},
    {"control", HB_OPT_STR, &cl.cfg.control, "ADDR:PORT", "serve the HTTP control interface (GET /stats, POST /qps /pause /resume)", 0, 0},
    {"echo", HB_OPT_BOOL, &cl.cfg.echo, NULL, "raw echo mode: no login, count echoed shakes (for tools/bench/echo-floor)", 0, 0},
    {"pin-workers", HB_OPT_INT, &cl.cfg.pin_workers, "FIRST", "pin worker i to the ((FIRST + i) mod n)-th of the n CPUs this process may use (-1 = no pinning); give each client process its own FIRST (e.g. host index x threads) so the workers of all processes spread evenly", -1, 1 << 20},
    {"fastopen", HB_OPT_BOOL, &cl.cfg.fastopen, NULL, "TCP Fast Open: send the Login in the SYN once a first connection to the server got a cookie (one packet fewer per connect; the server needs --fastopen, both kernels net.ipv4.tcp_fastopen: sysctl/)", 0, 0},
    {"standby", HB_OPT_BOOL, &cl.cfg.standby, NULL, "cluster: each user also keeps a logged-in standby connection to the node that owns it once its owner is gone (the rendezvous runner-up); when the owner dies, that node promotes it and the user is logged in again without a connect or a Login (twice the connections: --threads accordingly)", 0, 0},
    {"echo-login", HB_OPT_BOOL, &cl.cfg.echo_login, NULL, "with --echo: send a Login at connect and count the connection up when it comes back (the floor of a login: one round trip)", 0, 0},
    {"shake", HB_OPT_BOOL, &cl.cfg.shake, NULL, "send shakes on schedule", 0, 0},
    {"wait-connected", HB_OPT_BOOL, &cl.cfg.wait_connected, NULL, "start shaking once every user is logged in (at most 30 s)", 0, 0},
    {"seed", HB_OPT_INT, &cl.cfg.seed, "N", "random seed (0 = from the clock)", 0, 9e18},
    {"start-at", HB_OPT_INT, &cl.cfg.start_at, "SEC", "shake from unix second SEC on (schedule clock; 0 = at once)", 0, 1e11},
    {"stop-at", HB_OPT_INT, &cl.cfg.stop_at, "SEC", "no shake from unix second SEC on, then drain and end (0 = never)", 0, 1e11},
    {"plan", HB_OPT_STR, &cl.cfg.plan, "T:QPS,...", "rate changes of the run so far and to come, each from its unix second (past ones are built into the schedule)", 0, 0},
    {"hist-file", HB_OPT_STR, &cl.cfg.hist_file, "FILE", "at exit, write the run's latency histogram to FILE (raw buckets, lib/hist.h text form)", 0, 0},
    {"commands-fd", HB_OPT_INT, &cl.cfg.commands_fd, "FD", "read commands (qps N T, pause, resume, stop) from FD; end of file stops the run (the fleet agent's pipe)", -1, 1e6},
    {"agent", HB_OPT_STR, &cl.cfg.agent, "redis://HOST:PORT", "be a fleet agent: take tasks from Redis (tools/fleet --redis), play a slice of each (see client/agent.h)", 0, 0},
    {"redis-password-file", HB_OPT_STR, &cl.cfg.redis_password_file, "FILE", "with --agent: the Redis password (first line of FILE)", 0, 0},
    {"agent-name", HB_OPT_STR, &cl.cfg.agent_name, "NAME", "with --agent: this agent's name (default HOSTNAME-PID)", 0, 0},
    {"agent-dir", HB_OPT_STR, &cl.cfg.agent_dir, "DIR", "with --agent: each task's ledger, stats and histogram files (default /tmp/hb-agent-NAME)", 0, 0},
    {"agent-nice", HB_OPT_INT, &cl.cfg.agent_nice, "N", "with --agent: the agent's own nice value (-20..0; 0 = as started); its runs keep the nice value it was started with.  Its lease must be renewed within half --agent-ttl or its run stops: on a box busy with the runs themselves a raised priority keeps that from happening", -20, 0},
    {"agent-ttl", HB_OPT_INT, &cl.cfg.agent_ttl_ms, "MS", "with --agent: registration lifetime; a dead agent's slice is free again after it", 500, 600000},
    {NULL, 0, NULL, NULL, NULL, 0, 0},
};

static const hb_cli cli = {
    .synopsis = "hb-client --uid-to N [OPTIONS]",
    .description =
        "Simulated phones for hb-server: users [uid-from, uid-to), one long-lived TCP connection each, that\n"
        "shake on a clock-driven schedule shared by every client process (aggregate --qps over --users),\n"
        "open the send-flow packets they are notified of, and record every grant in a ledger.",
    .epilog = "Example (two processes, 20,000 users, 2,000 shakes/s together):\n"
              "  hb-client --uid-from 0     --uid-to 10000 --users 20000 --qps 2000 --duration 20 --ledger a.ledger\n"
              "  hb-client --uid-from 10000 --uid-to 20000 --users 20000 --qps 2000 --duration 20 --ledger b.ledger",
    .opts = opts,
};

/* ---- the once-a-second tick ----------------------------------------------------------- */

static void tick(int64_t sec)
{
    cl_stats_collect(&cl);
    cl_rate_tick(&cl);
    cl_stats_tick(&cl, sec);
    cl_ledger_flush(&cl.ledger);
}

/* ---- main loop ------------------------------------------------------------------------ */

static ev_timer tick_timer, end_timer, drain_timer;
static int64_t drain_deadline;

static void begin_end(struct ev_loop *loop);

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    int64_t now = cl_now(&cl);
    tick(now / 1000000);
    if (cl.cfg.stop_at && cl_sched_now(&cl) >= cl.cfg.stop_at * 1000000)
        begin_end(loop); /* the workers stopped shaking at the second itself */
    w->repeat = (double)(1000000 - now % 1000000) / 1e6 + 0.002;
    ev_timer_again(loop, w);
}

static void on_drain(struct ev_loop *loop, ev_timer *w, int revents)
{
    cl_totals t;
    cl_stats_sum(&cl, &t);
    if (t.outstanding == 0 && !atomic_load(&cl.closing)) {
        /* No new open may start from here on; count once more (a worker
         * may have counted one just before it saw the flag). */
        atomic_store(&cl.closing, true);
        atomic_thread_fence(memory_order_seq_cst);
        cl_stats_sum(&cl, &t);
    }
    if (t.outstanding == 0 || hb_mono_us() >= drain_deadline) {
        if (t.outstanding)
            hb_log("drain: %llu requests still unanswered after %.0f s", (unsigned long long)t.outstanding,
                   cl.cfg.drain);
        ev_break(loop, EVBREAK_ALL);
    }
}

static void begin_end(struct ev_loop *loop)
{
    if (atomic_exchange(&cl.stop_sending, true))
        return;
    drain_deadline = hb_mono_us() + (int64_t)(cl.cfg.drain * 1e6);
    ev_timer_init(&drain_timer, on_drain, 0, 0.05);
    ev_timer_again(loop, &drain_timer);
}

static void on_end(struct ev_loop *loop, ev_timer *w, int revents)
{
    begin_end(loop);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    if (atomic_load(&cl.stop_sending)) {
        hb_log("second signal: stopping now");
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    hb_log("signal %d: draining (up to %.0f s; again to stop at once)", w->signum, cl.cfg.drain);
    begin_end(loop);
}

static void usage_fail(const char *msg)
{
    fprintf(stderr, "hb-client: %s\nhb-client: see 'hb-client --help'\n", msg);
    exit(2);
}

int main(int argc, char **argv)
{
    hb_prog = "hb-client";
    int first = hb_cli_parse(&cli, argc, argv);
    char err[512];
    if (first < argc) {
        snprintf(err, sizeof err, "unexpected argument '%s'", argv[first]);
        usage_fail(err);
    }
    cl_config *c = &cl.cfg;
    if (c->agent && *c->agent)
        return cl_agent_run(c, argc, argv);
    if (c->uid_to <= c->uid_from)
        usage_fail("--uid-to must be above --uid-from (users [uid-from, uid-to) are played)");
    if (c->users == 0)
        c->users = c->uid_to;
    if (c->uid_to > c->users)
        usage_fail("--uid-to is beyond --users");
    if (strcmp(c->clock, "local") && strcmp(c->clock, "server"))
        usage_fail("--clock must be 'local' or 'server'");
    if (c->echo_login && !c->echo)
        usage_fail("--echo-login needs --echo (it is for the echo floor)");
    if (c->standby && c->echo)
        usage_fail("--standby is for a cluster of hb-servers, not the echo floor");
    if (c->fastopen && c->echo && !c->echo_login) /* a Fast Open connect sends its SYN with the first write */
        usage_fail("--fastopen with --echo needs --echo-login: a connection that writes nothing would never connect");
    cl.server_clock = !strcmp(c->clock, "server");
    if ((uint64_t)c->qps > (uint64_t)c->users)
        usage_fail("--qps above --users: a user cannot shake twice in one second");
    int ports[HB_MAX_PORTS];
    int np = hb_parse_ports(c->ports, ports, HB_MAX_PORTS, err, sizeof err);
    if (np < 0)
        usage_fail(err);
    /* --server A,B,...: entry nodes tried in turn (a connect that fails or
     * times out moves that user to the next one), dst[host * np + port]. */
    int nh = 0;
    for (const char *h = c->server; *h && nh < CL_MAX_SERVERS; nh++) {
        size_t len = strcspn(h, ",");
        if (!len || len > 255)
            usage_fail("--server: an empty or too long host in the list");
        for (int i = 0; i < np; i++) {
            char hp[300];
            snprintf(hp, sizeof hp, "%.*s:%d", (int)len, h, ports[i]);
            if (hb_parse_hostport(hp, &cl.dst[nh * np + i], err, sizeof err) < 0)
                usage_fail(err);
        }
        h += len + (h[len] == ',');
    }
    if (!nh)
        usage_fail("--server: no host");
    cl.ndst = nh * np;
    cl.nports = np;
    if (c->sources && *c->sources && (cl.nsrc = hb_parse_addrs(c->sources, cl.src, HB_MAX_ADDRS, err, sizeof err)) < 0)
        usage_fail(err);
    if (c->secret_file && *c->secret_file && hb_secret_load(c->secret_file, cl.secret, &cl.secret_len, err, sizeof err) < 0)
        hb_die("%s", err);
    signal(SIGPIPE, SIG_IGN);

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    uint64_t n = (uint64_t)(c->uid_to - c->uid_from);
    uint64_t per_table = rl.rlim_cur > 200 ? rl.rlim_cur - 100 : 100;
    if (c->threads == 0)
        c->threads = (int64_t)((n + per_table - 1) / per_table);
    if ((uint64_t)c->threads > n)
        c->threads = (int64_t)n;
    if ((n + (uint64_t)c->threads - 1) / (uint64_t)c->threads > per_table)
        hb_log("warning: %llu connections per worker but a descriptor table holds %llu here: add --threads",
               (unsigned long long)((n + (uint64_t)c->threads - 1) / (uint64_t)c->threads),
               (unsigned long long)per_table);

    cl_client_init(&cl);
    if (c->plan && *c->plan && cl_rate_history(&cl, c->plan, err, sizeof err) < 0)
        usage_fail(err);

    char header[256], inst[64];
    snprintf(header, sizeof header, "uids %lld..%lld of %lld, qps %lld", (long long)c->uid_from, (long long)c->uid_to - 1,
             (long long)c->users, (long long)c->qps);
    if (cl_ledger_open(&cl.ledger, c->ledger, header, err, sizeof err) < 0)
        hb_die("%s", err);
    snprintf(inst, sizeof inst, "client-%lld", (long long)c->uid_from);
    if (hb_reporter_init(&cl.reporter, c->monitor, HB__ROLE__ROLE_CLIENT, c->instance ? c->instance : inst, err,
                         sizeof err) < 0)
        hb_die("%s", err);

    cl.nworkers = (int)c->threads;
    cl.workers = calloc((size_t)cl.nworkers, sizeof *cl.workers);
    uint64_t per = n / (uint64_t)cl.nworkers, extra = n % (uint64_t)cl.nworkers, uid = (uint64_t)c->uid_from;
    for (int i = 0; i < cl.nworkers; i++) {
        uint64_t k = per + ((uint64_t)i < extra);
        if (!(cl.workers[i] = cl_worker_new(&cl, i, (uint32_t)uid, (uint32_t)k, err, sizeof err)))
            hb_die("%s", err);
        uid += k;
    }

    /* Signals go to main only (libev's handler), never to a worker. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    if (c->control && *c->control && cl_control_start(&cl, c->control, err, sizeof err) < 0)
        hb_die("%s", err);
    for (int i = 0; i < cl.nworkers; i++)
        if (cl_worker_start(cl.workers[i], err, sizeof err) < 0)
            hb_die("%s", err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    hb_log("%llu users [%lld, %lld) of %lld on %d worker%s -> %s port %s; %lld shakes/s in aggregate (%llu groups)%s",
           (unsigned long long)n, (long long)c->uid_from, (long long)c->uid_to, (long long)c->users, cl.nworkers,
           cl.nworkers > 1 ? "s" : "", c->server, c->ports, (long long)c->qps, (unsigned long long)cl.layout.groups,
           cl.workers[0]->unshared ? "" : " (shared descriptor table)");

    struct ev_loop *loop = EV_DEFAULT;
    ev_signal sint, sterm;
    ev_signal_init(&sint, on_signal, SIGINT);
    ev_signal_init(&sterm, on_signal, SIGTERM);
    ev_signal_start(loop, &sint);
    ev_signal_start(loop, &sterm);
    if (c->commands_fd >= 0)
        cl_command_start(&cl, loop, (int)c->commands_fd, begin_end);
    ev_init(&tick_timer, on_tick);
    tick_timer.repeat = 1.0;
    ev_timer_again(loop, &tick_timer);
    if (c->duration > 0) {
        ev_timer_init(&end_timer, on_end, c->duration, 0);
        ev_timer_start(loop, &end_timer);
    }
    ev_run(loop, 0);

    atomic_store(&cl.stopping, true);
    cl_control_stop();
    for (int i = 0; i < cl.nworkers; i++)
        cl_worker_stop(cl.workers[i]);
    /* one last report with the counts since the last tick, for the current
     * second (the monitor takes it as a later snapshot of that second) */
    tick(cl_now(&cl) / 1000000);
    cl_stats_summary(&cl);
    if (c->hist_file && *c->hist_file && cl_stats_write_hist(&cl, c->hist_file, err, sizeof err) < 0)
        hb_log("warning: %s", err);
    for (int i = 0; i < cl.nworkers; i++)
        cl_worker_record_unanswered(cl.workers[i]);
    cl_ledger_close(&cl.ledger);
    hb_reporter_close(&cl.reporter);
    for (int i = 0; i < cl.nworkers; i++)
        cl_worker_free(cl.workers[i]);
    free(cl.workers);
    return 0;
}
