/* fleet.c -- hb-fleet: the task manager of the load fleet.  It writes the
 * task that every agent (hb-client --agent) follows and merges what they
 * report; the records are proto/fleet.h.
 *
 *   hb-fleet --redis URL [--redis-password-file F] COMMAND
 *     task start --server H --port P --users N --qps Q [--groups G]
 *                [--slices K] [--duration SEC] [--in SEC | --at UNIXSECOND]
 *     task qps N [--at UNIXSECOND]    (default: 2 s from now)
 *     task pause | resume | stop
 *     task status
 *     task results [--version V] [--wait SEC] [--raw]
 *
 * Why C and not the shell script: the results are whole histograms (a few
 * thousand buckets per agent) merged bucket by bucket, and Redis replies are
 * nested arrays; both are a few lines with hiredis and lib/hist.h and
 * fragile in bash.  tools/fleet --redis URL ... runs this.
 *
 * Exactness: counters are summed as whole numbers; latency percentiles are
 * taken from the merged histogram (bucket by bucket, as if one process had
 * recorded every reply), never averaged.  Only the version asked for is
 * read: two tasks never mix.  Exit status: 0; 1 when agents that held a
 * slice did not report (results) or a task command was refused; 2 usage or
 * Redis unreachable. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "fleet.h"
#include "hist.h"
#include "redis.h"
#include "util.h"

static redisContext *rc;

static void usage(FILE *f)
{
    fputs("usage: hb-fleet --redis redis://HOST:PORT [--redis-password-file FILE] COMMAND\n"
          "  task start --server HOST --port PORTS --users N --qps Q [--groups G] [--slices K]\n"
          "             [--duration SEC] [--in SEC (5) | --at UNIXSECOND]\n"
          "                                               a new task version (stops the one before);\n"
          "                                               --slices: the live agents; --groups: users/qps\n"
          "  task qps N [--at UNIXSECOND]                 every agent switches at that second (default now+2)\n"
          "  task pause | resume | stop\n"
          "  task status                                  the task, its slices, the agents\n"
          "  task results [--version V] [--wait SEC] [--raw]\n"
          "                                               merged results; names agents that did not report\n",
          f);
}

__attribute__((noreturn, format(printf, 1, 0))) static void die2(const char *fmt, const char *a)
{
    fprintf(stderr, "hb-fleet: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    exit(2);
}

static redisReply *run(int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(rc, argc, argv, NULL);
    if (!r)
        die2("Redis: %s", rc->errstr);
    return r;
}

static long long now_s(void)
{
    return hb_now_us() / 1000000;
}

static bool num(const char *s, long long *v)
{
    char *end;
    if (!s || !*s)
        return false;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return !*end && !errno;
}

/* The task's fields (HGETALL); NULL when there is none. */
typedef struct kv {
    char *k[32], *v[32];
    int n;
    redisReply *r;
} kv;

static bool get_task(kv *t)
{
    const char *a[] = {"HGETALL", HB_FLEET_TASK};
    t->r = run(2, a);
    t->n = 0;
    if (t->r->type != REDIS_REPLY_ARRAY || t->r->elements == 0)
        return false;
    for (size_t i = 0; i + 1 < t->r->elements && t->n < 32; i += 2) {
        t->k[t->n] = t->r->element[i]->str;
        t->v[t->n++] = t->r->element[i + 1]->str;
    }
    return true;
}

static const char *tf(const kv *t, const char *k)
{
    for (int i = 0; i < t->n; i++)
        if (t->k[i] && !strcmp(t->k[i], k))
            return t->v[i] ? t->v[i] : "";
    return "";
}

static void vkey(char *buf, size_t len, long long v, const char *what)
{
    snprintf(buf, len, HB_FLEET_VKEY_FMT, v, what);
}

static bool alive(const char *agent)
{
    char key[128];
    snprintf(key, sizeof key, "%s%s", HB_FLEET_AGENT, agent);
    const char *a[] = {"EXISTS", key};
    redisReply *r = run(2, a);
    bool yes = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return yes;
}

static int live_agents(void)
{
    const char *a[] = {"ZRANGE", HB_FLEET_AGENTS, "0", "-1"};
    redisReply *r = run(4, a);
    int n = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        n += alive(r->element[i]->str);
    freeReplyObject(r);
    return n;
}

static const char *hms(long long t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    strftime(buf, len, "%H:%M:%S", &tm);
    return buf;
}

/* ---- task start / qps / pause / resume / stop ------------------------------------------ */

static int task_start(int argc, char **argv)
{
    const char *server = NULL, *port = NULL;
    long long users = 0, qps = -1, slices = 0, duration = 0, in = 5, at = 0, groups = 0;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die2("task start: %s needs a value", o);
        i++;
        if (!strcmp(o, "--server"))
            server = v;
        else if (!strcmp(o, "--port"))
            port = v;
        else if (!strcmp(o, "--users") ? !num(v, &users) : !strcmp(o, "--qps") ? !num(v, &qps)
                 : !strcmp(o, "--slices")   ? !num(v, &slices)
                 : !strcmp(o, "--duration") ? !num(v, &duration)
                 : !strcmp(o, "--in")       ? !num(v, &in)
                 : !strcmp(o, "--at")       ? !num(v, &at)
                 : !strcmp(o, "--groups")   ? !num(v, &groups)
                                            : (die2("task start: unknown option '%s'", o), 0))
            die2("task start: %s needs a whole number", o);
    }
    if (!server || !port || users < 1 || qps < 0)
        die2("task start needs --server, --port, --users N (at least 1) and --qps Q%s", "");
    if (qps == 0 && groups < 1)
        die2("task start: --qps 0 (shake only once told) needs --groups G for the schedule%s", "");
    if (groups < 0 || groups > users)
        die2("task start: --groups between 1 and --users%s", "");
    if (qps > users)
        die2("task start: --qps above --users%s: a user cannot shake twice in one second", "");
    if (slices < 0 || duration < 0 || in < 0)
        die2("task start: %s must not be negative", "--slices, --duration and --in");
    if (!slices && !(slices = live_agents()))
        die2("task start: no live agent to count%s: start agents first or give --slices K", "");
    if (slices > users)
        die2("task start: more slices than users%s", "");
    long long start = at ? at : now_s() + in;
    if (start <= now_s())
        die2("task start: the start second has passed%s", "");
    const char *inc[] = {"INCR", HB_FLEET_VERSION};
    redisReply *r = run(2, inc);
    if (r->type != REDIS_REPLY_INTEGER)
        die2("Redis refused INCR: %s", r->str ? r->str : "?");
    long long version = r->integer;
    freeReplyObject(r);
    char f[7][32];
    snprintf(f[0], 32, "%lld", version);
    snprintf(f[1], 32, "%lld", users);
    snprintf(f[2], 32, "%lld", qps);
    /* the schedule's groups: the same for every agent, whatever its first rate */
    snprintf(f[3], 32, "%lld", groups ? groups : (users + qps - 1) / qps);
    snprintf(f[4], 32, "%lld", slices);
    snprintf(f[5], 32, "%lld", start);
    snprintf(f[6], 32, "%lld", duration);
    /* one HSET of every field: agents see the whole new task or the old one */
    const char *a[] = {"HSET", HB_FLEET_TASK, "version", f[0], "server", server, "port", port, "users", f[1],
                       "qps", f[2], "groups", f[3], "slices", f[4], "start", f[5], "duration", f[6],
                       "status", "running", "rates", "", "stopped_at", ""};
    r = run((int)(sizeof a / sizeof *a), a);
    if (r->type == REDIS_REPLY_ERROR)
        die2("Redis refused the task: %s", r->str);
    freeReplyObject(r);
    char t1[16];
    printf("fleet: task v%lld: %lld users in %lld slices -> %s port %s, %lld shakes/s in aggregate from second %lld "
           "(%s)%s",
           version, users, slices, server, port, qps, start, hms(start, t1, sizeof t1),
           duration ? "" : ", until stopped\n");
    if (duration)
        printf(" for %lld s\n", duration);
    return 0;
}

/* Append "AT:QPS" to the task's rates if the version is still V, AT is
 * after the last change, fewer than CL_CHANGES_MAX (8) changes wait for
 * their second (a run queues no more: client/schedule.h), and the list fits
 * the agents' record (8,192 characters). */
static const char QPS_SCRIPT[] =
    "if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return redis.error_reply('the task changed meanwhile') end\n"
    "local st = redis.call('HGET', KEYS[1], 'status')\n"
    "if st == 'stopped' then return redis.error_reply('the task is stopped') end\n"
    "local r = redis.call('HGET', KEYS[1], 'rates') or ''\n"
    "local last = tonumber(string.match(r, '(%d+):%d+$') or '0')\n"
    "if tonumber(ARGV[2]) <= last then return redis.error_reply('a change at second ' .. last .. ' is announced already: "
    "changes go in order') end\n"
    "if #r > 8000 then return redis.error_reply('the task has had too many rate changes (start a new version)') end\n"
    "local now, ahead = tonumber(redis.call('TIME')[1]), 0\n"
    "for at in string.gmatch(r, '(%d+):%d+') do if tonumber(at) > now then ahead = ahead + 1 end end\n"
    "if ahead >= 8 then return redis.error_reply('8 changes are waiting for their second already (a run queues 8)') end\n"
    "if r ~= '' then r = r .. ',' end\n"
    "redis.call('HSET', KEYS[1], 'rates', r .. ARGV[2] .. ':' .. ARGV[3])\n"
    "return 1\n";

static int task_qps(int argc, char **argv)
{
    long long q, at = 0;
    if (argc < 1 || !num(argv[0], &q) || q < 0)
        die2("task qps needs a whole number%s", "");
    if (argc == 3 && !strcmp(argv[1], "--at")) {
        if (!num(argv[2], &at))
            die2("--at needs a unix second%s", "");
    } else if (argc != 1) {
        die2("usage: task qps N [--at UNIXSECOND]%s", "");
    }
    if (!at)
        at = now_s() + 2;
    if (at <= now_s())
        die2("task qps: second %s has begun already: every agent must get the change before it", argv[2]);
    kv t;
    if (!get_task(&t))
        die2("no task%s", "");
    long long users;
    num(tf(&t, "users"), &users);
    if (q > users)
        die2("task qps: above the task's users%s", "");
    char qs[32], as[32];
    snprintf(qs, sizeof qs, "%lld", q);
    snprintf(as, sizeof as, "%lld", at);
    const char *a[] = {"EVAL", QPS_SCRIPT, "1", HB_FLEET_TASK, tf(&t, "version"), as, qs};
    redisReply *r = run(7, a);
    int rc2 = 0;
    char t1[16];
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "hb-fleet: task qps refused: %s\n", r->str);
        rc2 = 1;
    } else {
        printf("fleet: task v%s: %lld shakes/s in aggregate from second %lld (%s)\n", tf(&t, "version"), q, at,
               hms(at, t1, sizeof t1));
    }
    freeReplyObject(r);
    freeReplyObject(t.r);
    return rc2;
}

static const char STATUS_SCRIPT[] =
    "if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return redis.error_reply('the task changed meanwhile') end\n"
    "local st = redis.call('HGET', KEYS[1], 'status')\n"
    "if st == 'stopped' then return redis.error_reply('the task is stopped already') end\n"
    "redis.call('HSET', KEYS[1], 'status', ARGV[2])\n"
    "if ARGV[2] == 'stopped' then redis.call('HSET', KEYS[1], 'stopped_at', ARGV[3]) end\n"
    "return 1\n";

static int task_status_set(const char *status)
{
    kv t;
    if (!get_task(&t))
        die2("no task%s", "");
    char ms[32];
    snprintf(ms, sizeof ms, "%lld", (long long)(hb_now_us() / 1000));
    const char *a[] = {"EVAL", STATUS_SCRIPT, "1", HB_FLEET_TASK, tf(&t, "version"), status, ms};
    redisReply *r = run(7, a);
    int rc2 = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "hb-fleet: task %s refused: %s\n", status, r->str);
        rc2 = 1;
    } else {
        printf("fleet: task v%s %s\n", tf(&t, "version"), status);
    }
    freeReplyObject(r);
    freeReplyObject(t.r);
    return rc2;
}

/* ---- status ------------------------------------------------------------------------------ */

static int task_status(void)
{
    kv t;
    if (!get_task(&t)) {
        printf("fleet: no task\n");
        freeReplyObject(t.r);
    } else {
        for (int i = 0; i < t.n; i++)
            printf("%-10s %s\n", t.k[i], t.v[i]);
        long long v;
        num(tf(&t, "version"), &v);
        char key[128];
        vkey(key, sizeof key, v, "slices");
        const char *a[] = {"HGETALL", key};
        redisReply *r = run(2, a);
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
            printf("slice %-4s %s%s\n", r->element[i]->str, r->element[i + 1]->str,
                   alive(r->element[i + 1]->str) ? "" : " (lease expired)");
        freeReplyObject(r);
        freeReplyObject(t.r);
    }
    const char *z[] = {"ZRANGE", HB_FLEET_AGENTS, "0", "-1"};
    redisReply *r = run(4, z);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        char key[128];
        snprintf(key, sizeof key, "%s%s", HB_FLEET_AGENT, r->element[i]->str);
        const char *g[] = {"GET", key};
        redisReply *s = run(2, g);
        printf("agent %-24s %s\n", r->element[i]->str, s->type == REDIS_REPLY_STRING ? s->str : "gone");
        freeReplyObject(s);
    }
    freeReplyObject(r);
    return 0;
}

/* ---- results ------------------------------------------------------------------------------ */

#define MAXF 160
typedef struct sums {
    char *name[MAXF];
    uint64_t v[MAXF];
    int n;
} sums;

static bool additive(const char *k)
{
    static const char *const no[] = {"agent", "slice", "uid_from", "uid_to", "exit_status", "final", "second",
                                     "clock_offset_us", "clock_delay_us", "latency_hist"};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (!strcmp(k, no[i]))
            return false;
    return strncmp(k, "lat_", 4) != 0; /* from the merged histogram instead */
}

static void add(sums *s, const char *k, uint64_t v)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->name[i], k)) {
            s->v[i] += v;
            return;
        }
    if (s->n < MAXF) {
        s->name[s->n] = strdup(k);
        s->v[s->n++] = v;
    }
}

static uint64_t get(const sums *s, const char *k)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->name[i], k))
            return s->v[i];
    return 0;
}

typedef struct one {
    char agent[HB_FLEET_NAME_MAX];
    long long slice, from, to, exit_status;
    sums s;
    hb_hist h;
    bool hist_ok;
} one;

/* One agent's result record -> o. */
static void parse_result(char *text, one *o)
{
    memset(o, 0, sizeof *o);
    o->slice = o->from = o->to = o->exit_status = -1;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (*line == '#')
            continue;
        char *sp = strchr(line, ' ');
        if (!sp)
            continue;
        *sp = 0;
        const char *k = line, *v = sp + 1;
        long long n;
        if (!strcmp(k, "latency_hist"))
            o->hist_ok = hb_hist_decode(&o->h, v) == 0;
        else if (!strcmp(k, "agent"))
            snprintf(o->agent, sizeof o->agent, "%s", v);
        else if (!num(v, &n))
            continue;
        else if (!strcmp(k, "slice"))
            o->slice = n;
        else if (!strcmp(k, "uid_from"))
            o->from = n;
        else if (!strcmp(k, "uid_to"))
            o->to = n;
        else if (!strcmp(k, "exit_status"))
            o->exit_status = n;
        else if (additive(k) && n >= 0)
            add(&o->s, k, (uint64_t)n);
    }
}

static redisReply *hgetall(long long v, const char *what)
{
    char key[128];
    vkey(key, sizeof key, v, what);
    const char *a[] = {"HGETALL", key};
    return run(2, a);
}

static const char *hfind(const redisReply *r, const char *k)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (!strcmp(r->element[i]->str, k))
            return r->element[i + 1]->str;
    return NULL;
}

/* Version v is over (when it is the current task: stopped, or its
 * duration has passed), every slice is held, every slice's holder
 * reported, and every other claimant reported or is gone (its lease ran
 * out: it will never report). */
static bool settled(long long v)
{
    kv t;
    long long cur = 0, slices = 0, start = 0, duration = 0;
    bool have = get_task(&t) && num(tf(&t, "version"), &cur);
    num(tf(&t, "slices"), &slices);
    num(tf(&t, "start"), &start);
    num(tf(&t, "duration"), &duration);
    bool over = !have || cur != v || !strcmp(tf(&t, "status"), "stopped") || (duration && now_s() >= start + duration);
    freeReplyObject(t.r);
    if (!over)
        return false;
    redisReply *sl = hgetall(v, "slices"), *cl = hgetall(v, "claims"), *rs = hgetall(v, "results");
    bool done = cur != v || (sl->type == REDIS_REPLY_ARRAY && (long long)sl->elements / 2 >= slices);
    for (size_t i = 0; done && sl->type == REDIS_REPLY_ARRAY && i + 1 < sl->elements; i += 2)
        done = hfind(rs, sl->element[i + 1]->str) != NULL;
    for (size_t i = 0; done && cl->type == REDIS_REPLY_ARRAY && i + 1 < cl->elements; i += 2)
        done = hfind(rs, cl->element[i]->str) || !alive(cl->element[i]->str);
    freeReplyObject(sl);
    freeReplyObject(cl);
    freeReplyObject(rs);
    return done;
}

static int task_results(int argc, char **argv)
{
    long long v = 0, wait = 0;
    bool raw = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--raw"))
            raw = true;
        else if (!strcmp(argv[i], "--version") && i + 1 < argc && num(argv[i + 1], &v))
            i++;
        else if (!strcmp(argv[i], "--wait") && i + 1 < argc && num(argv[i + 1], &wait))
            i++;
        else
            die2("task results: unknown or incomplete option '%s'", argv[i]);
    }
    if (!v) {
        kv t;
        if (!get_task(&t) || !num(tf(&t, "version"), &v))
            die2("no task%s", "");
        freeReplyObject(t.r);
    }
    int64_t until = hb_mono_us() + wait * 1000000;
    while (!settled(v) && hb_mono_us() < until)
        usleep(200000);

    redisReply *cl = hgetall(v, "claims"), *rs = hgetall(v, "results");
    static one o;
    sums tot = {0};
    hb_hist all;
    hb_hist_reset(&all);
    int reported = 0, missing = 0, bad_hist = 0;
    char missing_list[4096] = "";
    size_t ml = 0;
    if (!raw)
        printf("%-24s %5s %19s %10s %10s %8s %11s %9s %4s\n", "agent", "slice", "uids", "shakes", "replies", "wins",
               "amount_won", "p99_ms", "exit");
    for (size_t i = 0; rs->type == REDIS_REPLY_ARRAY && i + 1 < rs->elements; i += 2) {
        char *text = strdup(rs->element[i + 1]->str);
        parse_result(text, &o);
        free(text);
        reported++;
        for (int k = 0; k < o.s.n; k++) {
            add(&tot, o.s.name[k], o.s.v[k]);
        }
        bad_hist += !o.hist_ok;
        hb_hist_merge(&all, &o.h);
        if (!raw) {
            char uids[40];
            snprintf(uids, sizeof uids, "[%lld,%lld)", o.from, o.to);
            printf("%-24s %5lld %19s %10" PRIu64 " %10" PRIu64 " %8" PRIu64 " %11" PRIu64 " %9.2f %4lld\n",
                   rs->element[i]->str, o.slice, uids, get(&o.s, "shakes"), get(&o.s, "replies"), get(&o.s, "wins"),
                   get(&o.s, "amount_won"), hb_hist_percentile(&o.h, 99) / 1000.0, o.exit_status);
        }
        for (int k = 0; k < o.s.n; k++)
            free(o.s.name[k]);
    }
    for (size_t i = 0; cl->type == REDIS_REPLY_ARRAY && i + 1 < cl->elements; i += 2) {
        const char *a = cl->element[i]->str;
        if (hfind(rs, a))
            continue;
        missing++;
        bool live = alive(a);
        if (raw)
            printf("missing_agent %s\n", a);
        else
            ml += (size_t)snprintf(missing_list + ml, ml < sizeof missing_list ? sizeof missing_list - ml : 0,
                                   "%s%s (slice %s, %s)", ml ? ", " : "", a, cl->element[i + 1]->str,
                                   live ? "alive: still running?" : "gone");
        if (ml >= sizeof missing_list)
            ml = sizeof missing_list - 1;
    }
    if (raw) {
        printf("version %lld\nreported %d\nmissing %d\nbad_hists %d\n", v, reported, missing, bad_hist);
        for (int k = 0; k < tot.n; k++)
            printf("%s %" PRIu64 "\n", tot.name[k], tot.v[k]);
        printf("lat_count %" PRIu64 "\nlat_sum_us %" PRIu64 "\nlat_min_us %" PRIu64 "\nlat_p50_us %" PRIu64
               "\nlat_p90_us %" PRIu64 "\nlat_p99_us %" PRIu64 "\nlat_p999_us %" PRIu64 "\nlat_max_us %" PRIu64 "\n",
               all.count, all.sum, all.min, hb_hist_percentile(&all, 50), hb_hist_percentile(&all, 90),
               hb_hist_percentile(&all, 99), hb_hist_percentile(&all, 99.9), all.max);
    } else {
        printf("%-24s %5s %19s %10" PRIu64 " %10" PRIu64 " %8" PRIu64 " %11" PRIu64 " %9.2f\n", "TOTAL", "", "",
               get(&tot, "shakes"), get(&tot, "replies"), get(&tot, "wins"), get(&tot, "amount_won"),
               hb_hist_percentile(&all, 99) / 1000.0);
        printf("fleet: task v%lld: %d agent%s reported; latency over %" PRIu64
               " replies (histograms merged bucket by bucket): p50 %.2f p90 %.2f p99 %.2f p999 %.2f max %.2f ms\n",
               v, reported, reported == 1 ? "" : "s", all.count, hb_hist_percentile(&all, 50) / 1000.0,
               hb_hist_percentile(&all, 90) / 1000.0, hb_hist_percentile(&all, 99) / 1000.0,
               hb_hist_percentile(&all, 99.9) / 1000.0, all.max / 1000.0);
        if (missing)
            printf("fleet: task v%lld: %d agent%s did not report: %s\n", v, missing, missing == 1 ? "" : "s",
                   missing_list);
        if (bad_hist)
            printf("fleet: task v%lld: %d histogram%s unreadable (left out)\n", v, bad_hist, bad_hist == 1 ? "" : "s");
    }
    for (int k = 0; k < tot.n; k++)
        free(tot.name[k]);
    freeReplyObject(cl);
    freeReplyObject(rs);
    return missing || bad_hist ? 1 : 0;
}

int main(int argc, char **argv)
{
    hb_prog = "hb-fleet";
    const char *url = NULL, *pwfile = NULL;
    int i = 1;
    for (; i < argc && !strncmp(argv[i], "-", 1); i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc)
            die2("%s needs a value", argv[i]);
        if (!strcmp(argv[i], "--redis"))
            url = argv[++i];
        else if (!strcmp(argv[i], "--redis-password-file"))
            pwfile = argv[++i];
        else
            die2("unknown option '%s' (see --help)", argv[i]);
    }
    if (!url || i + 1 >= argc || strcmp(argv[i], "task") != 0) {
        usage(stderr);
        return 2;
    }
    hb_redis_addr addr = {0};
    char err[512];
    if (hb_redis_parse_url(url, &addr) < 0)
        die2("--redis '%s': expected redis://HOST:PORT", url);
    if (pwfile && hb_redis_read_password(pwfile, &addr, err, sizeof err) < 0)
        die2("%s", err);
    if (!(rc = hb_redis_connect(&addr, 3000, err, sizeof err)))
        die2("%s", err);
    const char *c = argv[i + 1];
    int n = argc - i - 2;
    char **rest = argv + i + 2;
    int status;
    if (!strcmp(c, "start"))
        status = task_start(n, rest);
    else if (!strcmp(c, "qps"))
        status = task_qps(n, rest);
    else if (!strcmp(c, "pause"))
        status = task_status_set("paused");
    else if (!strcmp(c, "resume"))
        status = task_status_set("running");
    else if (!strcmp(c, "stop"))
        status = task_status_set("stopped");
    else if (!strcmp(c, "status"))
        status = task_status();
    else if (!strcmp(c, "results"))
        status = task_results(n, rest);
    else
        die2("unknown task command '%s' (start, qps, pause, resume, stop, status, results)", c);
    redisFree(rc);
    return status;
}
