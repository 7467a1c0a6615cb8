/* main.c -- hb-client: settings, workers, the once-a-second tick (report,
 * progress, clock offset, ledger flush), the end of the run and its summary. */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <ev.h>
#include "conf.h"
#include "control.h"
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
        .chat_rate = 0,
        .monitor = NULL,
        .instance = NULL,
        .stats_file = NULL,
        .progress = false,
        .backoff_base_ms = 100,
        .backoff_cap_ms = 10000,
        .backoff_jitter = true,
        .tick_ms = 1,
        .clock = "local",
        .clock_skew_us = 0,
        .control = NULL,
        .echo = false,
        .shake = true,
        .wait_connected = true,
        .seed = 0,
    },
};

static const hb_opt opts[] = {
    {"server", HB_OPT_STR, &cl.cfg.server, "HOST", "server address", 0, 0},
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
    {"secret", HB_OPT_STR, &cl.cfg.secret_file, "FILE", "server secret: log in with HMAC-SHA256(secret, uid) tokens", 0, 0},
    {"chat-rate", HB_OPT_DOUBLE, &cl.cfg.chat_rate, "N", "aggregate chat messages per second to random users", 0, 1e7},
    {"monitor", HB_OPT_STR, &cl.cfg.monitor, "HOST:PORT", "send counters to hb-monitor (UDP) every second", 0, 0},
    {"instance", HB_OPT_STR, &cl.cfg.instance, "NAME", "name in monitor reports (default client-UIDFROM)", 0, 0},
    {"stats-file", HB_OPT_STR, &cl.cfg.stats_file, "FILE", "write all counters to FILE every second and at exit", 0, 0},
    {"progress", HB_OPT_BOOL, &cl.cfg.progress, NULL, "print one line of figures per second", 0, 0},
    {"backoff-base", HB_OPT_INT, &cl.cfg.backoff_base_ms, "MS", "reconnect back-off: first ceiling", 1, 1e6},
    {"backoff-cap", HB_OPT_INT, &cl.cfg.backoff_cap_ms, "MS", "reconnect back-off: largest ceiling", 1, 1e7},
    {"backoff-jitter", HB_OPT_BOOL, &cl.cfg.backoff_jitter, NULL, "random delay in [0, ceiling] (off: exactly the ceiling, for comparison)", 0, 0},
    {"tick", HB_OPT_INT, &cl.cfg.tick_ms, "MS", "scheduler tick: shakes leave within MS of their due time", 1, 1000},
    {"clock", HB_OPT_STR, &cl.cfg.clock, "local|server", "schedule on the local clock or on the server's (estimated offset)", 0, 0},
    {"clock-skew", HB_OPT_INT, &cl.cfg.clock_skew_us, "US", "for tests: pretend the local clock is off by US microseconds", -1e12, 1e12},
    {"control", HB_OPT_STR, &cl.cfg.control, "ADDR:PORT", "serve the HTTP control interface (GET /stats, POST /qps /pause /resume)", 0, 0},
    {"echo", HB_OPT_BOOL, &cl.cfg.echo, NULL, "raw echo mode: no login, count echoed shakes (for tools/bench/echo-floor)", 0, 0},
    {"shake", HB_OPT_BOOL, &cl.cfg.shake, NULL, "send shakes on schedule", 0, 0},
    {"wait-connected", HB_OPT_BOOL, &cl.cfg.wait_connected, NULL, "start shaking once every user is logged in (at most 30 s)", 0, 0},
    {"seed", HB_OPT_INT, &cl.cfg.seed, "N", "random seed (0 = from the clock)", 0, 9e18},
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

int64_t cl_set_qps(cl_client *c, uint64_t qps, int64_t at)
{
    int64_t now_s = cl_sched_now(c) / 1000000;
    if (at <= now_s)
        at = now_s + 1;
    pthread_mutex_lock(&c->plan_mu);
    c->pending_at = at;
    c->pending_qps = qps;
    atomic_fetch_add(&c->plan_version, 1);
    pthread_mutex_unlock(&c->plan_mu);
    return at;
}

/* ---- the once-a-second tick ----------------------------------------------------------- */

typedef struct totals {
#define X(name, help) uint64_t name;
    CL_COUNTERS(X)
#undef X
    uint64_t err[32];
    uint64_t connected, active, outstanding;
} totals;

/* run_hist and second_hist are read by the control thread too */
static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static hb_hist second_hist, run_hist;
static double last_actual_qps;
static totals prev;
static int64_t prev_sec;
#define OFFSET_WINDOW 8
static struct {
    int64_t delay, offset;
} samples[OFFSET_WINDOW];
static int nsamples, sample_at;

void cl_sum(cl_client *c, totals *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < c->nworkers; i++) {
        cl_stats *st = &c->workers[i]->st;
#define X(name, help) t->name += HB_GET(st->name);
        CL_COUNTERS(X)
#undef X
        for (int e = 0; e < 32; e++)
            t->err[e] += HB_GET(st->err[e]);
        t->connected += HB_GET(st->connected);
        t->active += HB_GET(st->active);
        t->outstanding += HB_GET(st->outstanding);
    }
}

static uint64_t my_users(void)
{
    return (uint64_t)(cl.cfg.uid_to - cl.cfg.uid_from);
}

static uint64_t my_target_qps(void)
{
    /* this process's share of the aggregate rate */
    return (uint64_t)((double)atomic_load(&cl.target_qps) * (double)my_users() / (double)cl.cfg.users + 0.5);
}

static int64_t stats_second;

static void write_stats(const totals *t, bool final)
{
    if (!cl.cfg.stats_file)
        return;
    static char buf[16384];
    size_t n = 0;
#define P(...) n += (size_t)snprintf(buf + n, n < sizeof buf ? sizeof buf - n : 0, __VA_ARGS__)
    P("# hb-client counters: 'name value', rewritten every second%s\n", final ? " (final)" : "");
    P("final %d\nusers %llu\nworkers %d\n", final, (unsigned long long)my_users(), cl.nworkers);
    P("second %lld\n", (long long)stats_second); /* counters as of the start of this unix second */
#define X(name, help) P("%s %llu\n", #name, (unsigned long long)t->name);
    CL_COUNTERS(X)
#undef X
    P("connected %llu\nactive %llu\noutstanding %llu\n", (unsigned long long)t->connected,
      (unsigned long long)t->active, (unsigned long long)t->outstanding);
    for (int e = 1; e < 32; e++)
        if (t->err[e])
            P("err_%d %llu\n", e, (unsigned long long)t->err[e]);
    P("target_qps %llu\n", (unsigned long long)my_target_qps());
    P("reports_sent %llu\nreports_dropped %llu\n", (unsigned long long)HB_GET(cl.reporter.sent),
      (unsigned long long)HB_GET(cl.reporter.dropped));
    P("clock_offset_us %lld\nclock_delay_us %lld\n", (long long)atomic_load(&cl.offset_us),
      (long long)atomic_load(&cl.offset_delay_us));
    P("lat_count %llu\nlat_p50_us %llu\nlat_p90_us %llu\nlat_p99_us %llu\nlat_p999_us %llu\nlat_max_us %llu\n",
      (unsigned long long)run_hist.count, (unsigned long long)hb_hist_percentile(&run_hist, 50),
      (unsigned long long)hb_hist_percentile(&run_hist, 90), (unsigned long long)hb_hist_percentile(&run_hist, 99),
      (unsigned long long)hb_hist_percentile(&run_hist, 99.9), (unsigned long long)run_hist.max);
#undef P
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    if (hb_write_file_atomic(cl.cfg.stats_file, buf, n) < 0)
        hb_log("warning: cannot write stats file %s", cl.cfg.stats_file);
}

static void collect(void)
{
    int64_t best_delay = -1, best_offset = 0;
    pthread_mutex_lock(&stats_mu);
    hb_hist_reset(&second_hist);
    for (int i = 0; i < cl.nworkers; i++)
        cl_worker_collect(cl.workers[i], &second_hist, &best_delay, &best_offset);
    hb_hist_merge(&run_hist, &second_hist);
    if (best_delay >= 0) {
        samples[sample_at] = (typeof(samples[0])){best_delay, best_offset};
        sample_at = (sample_at + 1) % OFFSET_WINDOW;
        if (nsamples < OFFSET_WINDOW)
            nsamples++;
        /* the least-delayed sample of the last few seconds */
        int b = 0;
        for (int i = 1; i < nsamples; i++)
            if (samples[i].delay < samples[b].delay)
                b = i;
        atomic_store(&cl.offset_us, samples[b].offset);
        atomic_store(&cl.offset_delay_us, samples[b].delay);
    }
    pthread_mutex_unlock(&stats_mu);
}

size_t cl_stats_json(cl_client *c, char *buf, size_t cap)
{
    totals t;
    cl_sum(c, &t);
    pthread_mutex_lock(&c->plan_mu);
    uint64_t pending_qps = c->pending_at ? c->pending_qps : 0;
    int64_t pending_at = c->pending_at;
    pthread_mutex_unlock(&c->plan_mu);
    pthread_mutex_lock(&stats_mu);
    int n = snprintf(buf, cap,
                     "{\"instance\":\"%s\",\"users\":%llu,\"connected\":%llu,\"active\":%llu,"
                     "\"target_qps\":%llu,\"aggregate_qps\":%llu,\"actual_qps\":%.1f,\"paused\":%s,"
                     "\"pending_qps\":%llu,\"pending_at\":%lld,"
                     "\"shakes\":%llu,\"retries\":%llu,\"replies\":%llu,\"outstanding\":%llu,"
                     "\"wins\":%llu,\"amount_won\":%llu,\"losses\":%llu,\"not_yet\":%llu,\"rate_limited\":%llu,"
                     "\"notices\":%llu,\"opens_ok\":%llu,\"share_amount\":%llu,"
                     "\"errors\":%llu,\"reconnects\":%llu,"
                     "\"latency_us\":{\"count\":%llu,\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu},"
                     "\"clock\":\"%s\",\"clock_offset_us\":%lld,\"clock_delay_us\":%lld}\n",
                     c->reporter.instance, (unsigned long long)my_users(), (unsigned long long)t.connected,
                     (unsigned long long)t.active, (unsigned long long)my_target_qps(),
                     (unsigned long long)atomic_load(&c->target_qps), last_actual_qps,
                     atomic_load(&c->paused) ? "true" : "false", (unsigned long long)pending_qps,
                     (long long)pending_at, (unsigned long long)t.shakes,
                     (unsigned long long)t.retries, (unsigned long long)t.replies, (unsigned long long)t.outstanding,
                     (unsigned long long)t.wins, (unsigned long long)t.amount_won, (unsigned long long)t.losses,
                     (unsigned long long)t.not_yet, (unsigned long long)t.rate_limited,
                     (unsigned long long)t.notices, (unsigned long long)t.opens_ok,
                     (unsigned long long)t.share_amount,
                     (unsigned long long)(t.error_frames + t.protocol_errors + t.connect_fail),
                     (unsigned long long)t.closes, (unsigned long long)run_hist.count,
                     (unsigned long long)hb_hist_percentile(&run_hist, 50),
                     (unsigned long long)hb_hist_percentile(&run_hist, 90),
                     (unsigned long long)hb_hist_percentile(&run_hist, 99),
                     (unsigned long long)hb_hist_percentile(&run_hist, 99.9), (unsigned long long)run_hist.max,
                     c->server_clock ? "server" : "local", (long long)atomic_load(&c->offset_us),
                     (long long)atomic_load(&c->offset_delay_us));
    pthread_mutex_unlock(&stats_mu);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}


static void tick(int64_t sec)
{
    collect();
    /* a rate change that is now due becomes the plan (checked, applied and
     * cleared under the lock: a /qps arriving meanwhile is not lost) */
    pthread_mutex_lock(&cl.plan_mu);
    if (cl.pending_at && cl_sched_now(&cl) / 1000000 >= cl.pending_at) {
        cl_plan_change(&cl.plan, cl.pending_at, cl.pending_qps);
        atomic_store(&cl.target_qps, cl.pending_qps);
        cl.pending_at = 0;
        atomic_fetch_add(&cl.plan_version, 1);
        hb_log("rate is now %llu shakes/s in aggregate", (unsigned long long)cl.plan.qps);
    }
    pthread_mutex_unlock(&cl.plan_mu);
    totals t;
    cl_sum(&cl, &t);
    stats_second = sec;
    if (prev_sec && sec > prev_sec)
        last_actual_qps = (double)(t.shakes - prev.shakes) / (double)(sec - prev_sec);
    write_stats(&t, false);
    cl_ledger_flush(&cl.ledger);

    Hb__Report rep = HB__REPORT__INIT;
    rep.connections = t.active;
    rep.requests = t.shakes + t.retries;
    rep.replies = t.replies;
    rep.wins = t.wins;
    rep.losses = t.losses + t.not_yet + t.rate_limited;
    rep.amount_won = t.amount_won + t.share_amount;
    rep.notices = t.notices;
    rep.opens = t.opens_ok;
    rep.errors = t.error_frames + t.protocol_errors + t.connect_fail;
    rep.chats = t.chats_recv;
    rep.clock_offset_us = atomic_load(&cl.offset_us);
    rep.target_qps = my_target_qps();
    pthread_mutex_lock(&stats_mu);
    hb_reporter_send(&cl.reporter, &rep, sec, &second_hist);
    pthread_mutex_unlock(&stats_mu);

    if (cl.cfg.progress && prev_sec) {
        double dt = (double)(sec - prev_sec);
        if (dt <= 0)
            dt = 1;
        hb_log("%5llds active %llu/%llu  shakes/s %.0f  replies/s %.0f  wins %llu  opens %llu  p99 %.1f ms  "
               "offset %.1f ms%s",
               (long long)((hb_now_us() - cl.start_us) / 1000000), (unsigned long long)t.active,
               (unsigned long long)my_users(), (double)(t.shakes - prev.shakes) / dt,
               (double)(t.replies - prev.replies) / dt, (unsigned long long)t.wins, (unsigned long long)t.opens_ok,
               (double)hb_hist_percentile(&second_hist, 99) / 1000.0, (double)atomic_load(&cl.offset_us) / 1000.0,
               atomic_load(&cl.paused) ? "  (paused)" : "");
    }
    prev = t;
    prev_sec = sec;
}

/* ---- main loop ------------------------------------------------------------------------ */

static ev_timer tick_timer, end_timer, drain_timer;
static int64_t drain_deadline;

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    int64_t now = cl_now(&cl);
    tick(now / 1000000);
    w->repeat = (double)(1000000 - now % 1000000) / 1e6 + 0.002;
    ev_timer_again(loop, w);
}

static void on_drain(struct ev_loop *loop, ev_timer *w, int revents)
{
    totals t;
    cl_sum(&cl, &t);
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

static void summary(void)
{
    totals t;
    collect();
    cl_sum(&cl, &t);
    write_stats(&t, true);
    hb_log("summary: %llu users, %llu logins, %llu shakes sent (+%llu retries), %llu replies, %llu unanswered; "
           "%llu wins (%llu cents), %llu losses, %llu not-yet, %llu rate-limited; %llu notices, %llu opens paid "
           "(%llu cents); %llu chats sent, %llu received; %llu errors; latency p50 %.2f p99 %.2f p999 %.2f max %.2f ms",
           (unsigned long long)my_users(), (unsigned long long)t.logins, (unsigned long long)t.shakes,
           (unsigned long long)t.retries, (unsigned long long)t.replies, (unsigned long long)t.outstanding,
           (unsigned long long)t.wins, (unsigned long long)t.amount_won, (unsigned long long)t.losses,
           (unsigned long long)t.not_yet, (unsigned long long)t.rate_limited, (unsigned long long)t.notices,
           (unsigned long long)(t.opens_ok + t.opens_again), (unsigned long long)t.share_amount,
           (unsigned long long)t.chats_sent, (unsigned long long)t.chats_recv,
           (unsigned long long)(t.error_frames + t.protocol_errors), hb_hist_percentile(&run_hist, 50) / 1000.0,
           hb_hist_percentile(&run_hist, 99) / 1000.0, hb_hist_percentile(&run_hist, 99.9) / 1000.0,
           run_hist.max / 1000.0);
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
    if (c->uid_to <= c->uid_from)
        usage_fail("--uid-to must be above --uid-from (users [uid-from, uid-to) are played)");
    if (c->users == 0)
        c->users = c->uid_to;
    if (c->uid_to > c->users)
        usage_fail("--uid-to is beyond --users");
    if (strcmp(c->clock, "local") && strcmp(c->clock, "server"))
        usage_fail("--clock must be 'local' or 'server'");
    cl.server_clock = !strcmp(c->clock, "server");
    if ((uint64_t)c->qps > (uint64_t)c->users)
        usage_fail("--qps above --users: a user cannot shake twice in one second");
    int ports[HB_MAX_PORTS];
    int np = hb_parse_ports(c->ports, ports, HB_MAX_PORTS, err, sizeof err);
    if (np < 0)
        usage_fail(err);
    for (int i = 0; i < np; i++) {
        char hp[300];
        snprintf(hp, sizeof hp, "%s:%d", c->server, ports[i]);
        if (hb_parse_hostport(hp, &cl.dst[i], err, sizeof err) < 0)
            usage_fail(err);
    }
    cl.ndst = np;
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
    uint64_t n = my_users();
    uint64_t per_table = rl.rlim_cur > 200 ? rl.rlim_cur - 100 : 100;
    if (c->threads == 0)
        c->threads = (int64_t)((n + per_table - 1) / per_table);
    if ((uint64_t)c->threads > n)
        c->threads = (int64_t)n;
    if ((n + (uint64_t)c->threads - 1) / (uint64_t)c->threads > per_table)
        hb_log("warning: %llu connections per worker but a descriptor table holds %llu here: add --threads",
               (unsigned long long)((n + (uint64_t)c->threads - 1) / (uint64_t)c->threads),
               (unsigned long long)per_table);

    cl.seed = c->seed ? (uint64_t)c->seed : hb_seed();
    cl.start_us = hb_now_us();
    cl_layout_init(&cl.layout, (uint64_t)c->users, (uint64_t)c->qps, (uint64_t)c->groups);
    pthread_mutex_init(&cl.plan_mu, NULL);
    cl_plan_init(&cl.plan, (uint64_t)c->qps);
    atomic_store(&cl.target_qps, (uint64_t)c->qps);
    atomic_store(&cl.offset_delay_us, -1);

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
    summary();
    for (int i = 0; i < cl.nworkers; i++)
        cl_worker_record_unanswered(cl.workers[i]);
    cl_ledger_close(&cl.ledger);
    hb_reporter_close(&cl.reporter);
    for (int i = 0; i < cl.nworkers; i++)
        cl_worker_free(cl.workers[i]);
    free(cl.workers);
    return 0;
}
