/* stats.c -- reading the workers' counters: the stats file, the monitor
 * report, the --progress line, GET /stats, the summary; and the clock-offset
 * estimate, made of the workers' clock samples once a second.
 *
 * The histograms and the offset samples are main's (cl_stats_collect), read
 * by the control thread too (cl_stats_json): stats_mu guards them. */
#include "stats.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "client.h"
#include "statsfile.h"
#include "worker.h"

static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static hb_hist second_hist, run_hist; /* this second's latencies, the run's */
static double last_actual_qps;
static cl_totals prev;
static int64_t prev_sec;

/* The best clock samples of the last few seconds (NTP-style: the one with the
 * smallest round trip is the most trustworthy). */
#define OFFSET_WINDOW 8
static struct {
    int64_t delay, offset;
} samples[OFFSET_WINDOW];
static int nsamples, sample_at;

void cl_stats_sum(cl_client *cl, cl_totals *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < cl->nworkers; i++) {
        cl_stats *st = &cl->workers[i]->st;
#define X(name, help) t->name += HB_GET(st->name);
        CL_COUNTERS(X)
#undef X
        for (int e = 0; e < HB_ERR_N; e++)
            t->err[e] += HB_GET(st->err[e]);
        t->connected += HB_GET(st->connected);
        t->active += HB_GET(st->active);
        t->standby += HB_GET(st->standby);
        t->outstanding += HB_GET(st->outstanding);
    }
}

static uint64_t my_users(const cl_client *cl)
{
    return (uint64_t)(cl->cfg.uid_to - cl->cfg.uid_from);
}

/* This process's share of the aggregate rate. */
static uint64_t my_target_qps(const cl_client *cl)
{
    return (uint64_t)((double)atomic_load(&cl->target_qps) * (double)my_users(cl) / (double)cl->cfg.users + 0.5);
}

static uint64_t errors(const cl_totals *t)
{
    return t->error_frames + t->protocol_errors + t->connect_fail;
}

/* Keep a clock sample and make the least-delayed one of the window the
 * estimate.  Under stats_mu. */
static void offset_sample(cl_client *cl, int64_t delay, int64_t offset)
{
    samples[sample_at].delay = delay;
    samples[sample_at].offset = offset;
    sample_at = (sample_at + 1) % OFFSET_WINDOW;
    if (nsamples < OFFSET_WINDOW)
        nsamples++;
    int b = 0;
    for (int i = 1; i < nsamples; i++)
        if (samples[i].delay < samples[b].delay)
            b = i;
    atomic_store(&cl->offset_us, samples[b].offset);
    if (atomic_exchange(&cl->offset_delay_us, samples[b].delay) < 0)
        cl_client_nudge(cl); /* workers on the server's clock may shake now */
}

void cl_stats_collect(cl_client *cl)
{
    int64_t best_delay = -1, best_offset = 0;
    pthread_mutex_lock(&stats_mu);
    hb_hist_reset(&second_hist);
    for (int i = 0; i < cl->nworkers; i++)
        cl_worker_collect(cl->workers[i], &second_hist, &best_delay, &best_offset);
    hb_hist_merge(&run_hist, &second_hist);
    if (best_delay >= 0)
        offset_sample(cl, best_delay, best_offset);
    pthread_mutex_unlock(&stats_mu);
}

/* The stats file: `name value` lines (proto/statsfile.h), rewritten whole. */
static void write_file(cl_client *cl, const cl_totals *t, int64_t second, bool final)
{
    const char *path = cl->cfg.stats_file;
    if (!path || !*path)
        return;
    static char mem[16384];
    hb_statsbuf b;
    char name[64];
    hb_sb_init(&b, mem, sizeof mem);
    hb_sb_comment(&b, "hb-client counters: 'name value', rewritten every second%s", final ? " (final)" : "");
    hb_sb_u64(&b, "final", final);
    hb_sb_u64(&b, "users", my_users(cl));
    hb_sb_u64(&b, "workers", (uint64_t)cl->nworkers);
    hb_sb_i64(&b, "second", second); /* counters as of the start of this unix second */
#define X(n, help) hb_sb_u64(&b, #n, t->n);
    CL_COUNTERS(X)
#undef X
    hb_sb_u64(&b, "connected", t->connected);
    hb_sb_u64(&b, "active", t->active);
    hb_sb_u64(&b, "standby", t->standby);
    hb_sb_u64(&b, "outstanding", t->outstanding);
    for (int e = 1; e < HB_ERR_N; e++) {
        snprintf(name, sizeof name, "err_%s", hb_error_name(e));
        hb_sb_u64(&b, name, t->err[e]);
    }
    hb_sb_u64(&b, "err_unknown", t->err[0]);
    hb_sb_u64(&b, "target_qps", my_target_qps(cl));
    hb_sb_u64(&b, "reports_sent", HB_GET(cl->reporter.sent));
    hb_sb_u64(&b, "reports_dropped", HB_GET(cl->reporter.dropped));
    hb_sb_i64(&b, "clock_offset_us", atomic_load(&cl->offset_us));
    hb_sb_i64(&b, "clock_delay_us", atomic_load(&cl->offset_delay_us));
    pthread_mutex_lock(&stats_mu);
    hb_sb_u64(&b, "lat_count", run_hist.count);
    hb_sb_u64(&b, "lat_p50_us", hb_hist_percentile(&run_hist, 50));
    hb_sb_u64(&b, "lat_p90_us", hb_hist_percentile(&run_hist, 90));
    hb_sb_u64(&b, "lat_p99_us", hb_hist_percentile(&run_hist, 99));
    hb_sb_u64(&b, "lat_p999_us", hb_hist_percentile(&run_hist, 99.9));
    hb_sb_u64(&b, "lat_max_us", run_hist.max);
    pthread_mutex_unlock(&stats_mu);
    if (hb_sb_write(&b, path) < 0)
        hb_log("warning: cannot write stats file %s: %s", path, b.overflow ? "too long" : strerror(errno));
}

static void send_report(cl_client *cl, const cl_totals *t, int64_t second)
{
    Hb__Report rep = HB__REPORT__INIT;
    rep.connections = t->active;
    rep.requests = t->shakes + t->retries;
    rep.replies = t->replies;
    rep.wins = t->wins;
    rep.losses = t->losses + t->not_yet + t->rate_limited;
    rep.amount_won = t->amount_won + t->share_amount;
    rep.notices = t->notices;
    rep.opens = t->opens_ok;
    rep.errors = errors(t);
    rep.chats = t->chats_recv;
    rep.clock_offset_us = atomic_load(&cl->offset_us);
    rep.target_qps = my_target_qps(cl);
    pthread_mutex_lock(&stats_mu);
    hb_reporter_send(&cl->reporter, &rep, second, &second_hist);
    pthread_mutex_unlock(&stats_mu);
}

static void progress(cl_client *cl, const cl_totals *t, int64_t second)
{
    double dt = (double)(second - prev_sec);
    if (dt <= 0)
        dt = 1;
    hb_log("%5llds active %llu/%llu  shakes/s %.0f  replies/s %.0f  wins %llu  opens %llu  p99 %.1f ms  "
           "offset %.1f ms%s",
           (long long)((hb_now_us() - cl->start_us) / 1000000), (unsigned long long)t->active,
           (unsigned long long)my_users(cl), (double)(t->shakes - prev.shakes) / dt,
           (double)(t->replies - prev.replies) / dt, (unsigned long long)t->wins, (unsigned long long)t->opens_ok,
           (double)hb_hist_percentile(&second_hist, 99) / 1000.0, (double)atomic_load(&cl->offset_us) / 1000.0,
           atomic_load(&cl->paused) ? "  (paused)" : "");
}

void cl_stats_tick(cl_client *cl, int64_t second)
{
    cl_totals t;
    cl_stats_sum(cl, &t);
    pthread_mutex_lock(&stats_mu);
    if (prev_sec && second > prev_sec)
        last_actual_qps = (double)(t.shakes - prev.shakes) / (double)(second - prev_sec);
    pthread_mutex_unlock(&stats_mu);
    write_file(cl, &t, second, false);
    send_report(cl, &t, second);
    if (cl->cfg.progress && prev_sec)
        progress(cl, &t, second);
    prev = t;
    prev_sec = second;
}

/* The waiting rate changes as a JSON array, in the order they apply. */
static size_t queued_json(const cl_changes *q, char *buf, size_t cap)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < q->n && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s{\"at\":%lld,\"qps\":%llu}", i ? "," : "",
                              (long long)q->c[i].at, (unsigned long long)q->c[i].qps);
    if (n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "]");
    return n;
}

size_t cl_stats_json(cl_client *cl, char *buf, size_t cap)
{
    cl_totals t;
    cl_stats_sum(cl, &t);
    cl_changes q;
    cl_rate_copy(cl, NULL, &q);
    char queued[CL_CHANGES_MAX * 64 + 8]; /* an entry is at most 57 characters */
    queued_json(&q, queued, sizeof queued);
    pthread_mutex_lock(&stats_mu);
    int n = snprintf(buf, cap,
                     "{\"instance\":\"%s\",\"users\":%llu,\"connected\":%llu,\"active\":%llu,"
                     "\"target_qps\":%llu,\"aggregate_qps\":%llu,\"actual_qps\":%.1f,\"paused\":%s,"
                     "\"pending_qps\":%llu,\"pending_at\":%lld,\"queued\":%s,"
                     "\"shakes\":%llu,\"retries\":%llu,\"replies\":%llu,\"outstanding\":%llu,"
                     "\"wins\":%llu,\"amount_won\":%llu,\"losses\":%llu,\"not_yet\":%llu,\"rate_limited\":%llu,"
                     "\"notices\":%llu,\"opens_ok\":%llu,\"share_amount\":%llu,"
                     "\"errors\":%llu,\"reconnects\":%llu,"
                     "\"latency_us\":{\"count\":%llu,\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu},"
                     "\"clock\":\"%s\",\"clock_offset_us\":%lld,\"clock_delay_us\":%lld}\n",
                     cl->reporter.instance, (unsigned long long)my_users(cl), (unsigned long long)t.connected,
                     (unsigned long long)t.active, (unsigned long long)my_target_qps(cl),
                     (unsigned long long)atomic_load(&cl->target_qps), last_actual_qps,
                     atomic_load(&cl->paused) ? "true" : "false",
                     /* pending_*: the next change (0 = none), as before the queue */
                     (unsigned long long)(q.n ? q.c[0].qps : 0), (long long)(q.n ? q.c[0].at : 0), queued,
                     (unsigned long long)t.shakes, (unsigned long long)t.retries, (unsigned long long)t.replies,
                     (unsigned long long)t.outstanding, (unsigned long long)t.wins,
                     (unsigned long long)t.amount_won, (unsigned long long)t.losses, (unsigned long long)t.not_yet,
                     (unsigned long long)t.rate_limited, (unsigned long long)t.notices,
                     (unsigned long long)t.opens_ok, (unsigned long long)t.share_amount,
                     (unsigned long long)errors(&t), (unsigned long long)t.closes, (unsigned long long)run_hist.count,
                     (unsigned long long)hb_hist_percentile(&run_hist, 50),
                     (unsigned long long)hb_hist_percentile(&run_hist, 90),
                     (unsigned long long)hb_hist_percentile(&run_hist, 99),
                     (unsigned long long)hb_hist_percentile(&run_hist, 99.9), (unsigned long long)run_hist.max,
                     cl->server_clock ? "server" : "local", (long long)atomic_load(&cl->offset_us),
                     (long long)atomic_load(&cl->offset_delay_us));
    pthread_mutex_unlock(&stats_mu);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

void cl_stats_summary(cl_client *cl)
{
    cl_totals t;
    cl_stats_collect(cl);
    cl_stats_sum(cl, &t);
    write_file(cl, &t, prev_sec, true);
    hb_log("summary: %llu users, %llu logins, %llu shakes sent (+%llu retries), %llu replies, %llu unanswered; "
           "%llu wins (%llu cents), %llu losses, %llu not-yet, %llu rate-limited; %llu notices, %llu opens paid "
           "(%llu cents); %llu chats sent, %llu received; %llu errors; latency p50 %.2f p99 %.2f p999 %.2f max %.2f ms",
           (unsigned long long)my_users(cl), (unsigned long long)t.logins, (unsigned long long)t.shakes,
           (unsigned long long)t.retries, (unsigned long long)t.replies, (unsigned long long)t.outstanding,
           (unsigned long long)t.wins, (unsigned long long)t.amount_won, (unsigned long long)t.losses,
           (unsigned long long)t.not_yet, (unsigned long long)t.rate_limited, (unsigned long long)t.notices,
           (unsigned long long)(t.opens_ok + t.opens_again), (unsigned long long)t.share_amount,
           (unsigned long long)t.chats_sent, (unsigned long long)t.chats_recv,
           (unsigned long long)(t.error_frames + t.protocol_errors), hb_hist_percentile(&run_hist, 50) / 1000.0,
           hb_hist_percentile(&run_hist, 99) / 1000.0, hb_hist_percentile(&run_hist, 99.9) / 1000.0,
           run_hist.max / 1000.0);
}

int cl_stats_write_hist(cl_client *cl, const char *path, char *err, size_t errlen)
{
    (void)cl;
    static char text[HB_HIST_TEXT_MAX];
    pthread_mutex_lock(&stats_mu);
    size_t n = hb_hist_encode(&run_hist, text, sizeof text);
    pthread_mutex_unlock(&stats_mu);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    bool ok = f && fprintf(f, "%s\n", text) >= 0;
    ok = (f && fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write the histogram to %s: %s (%zu bytes)", path, strerror(errno), n);
        unlink(tmp);
        return -1;
    }
    return 0;
}
