/* agent.c -- the fleet agent's loop (see agent.h).
 *
 * One thread, synchronous hiredis, a 100 ms poll: the task record is small
 * and the agent's decisions (claim, start, forward a change announced two
 * seconds ahead, stop) are far coarser than that.  The run's own timing
 * (start second, rate changes, stop second) is done by the child on its
 * schedule clock, never by this poll. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "fleet.h"
#include "redis.h"

#define POLL_MS 100

typedef struct task {
    long long version, users, qps, groups, slices, start, duration;
    char server[256], port[128], status[16], rates[8192];
} task;

typedef struct run {
    pid_t pid; /* 0: none */
    int fd;    /* its command pipe */
    long long version, slice, from, to;
    char status[16];   /* the last of running/paused it was told */
    size_t rates_sent; /* how much of task.rates it knows */
    bool stop_sent, killed;
    char stats[1024], hist[1024], ledger[1024];
} run;

static volatile sig_atomic_t quit;

static struct {
    const cl_config *c;
    int argc;
    char **argv;
    hb_redis_addr addr;
    redisContext *rc;
    bool down; /* Redis unreachable: said once */
    char name[HB_FLEET_NAME_MAX];
    char lease[HB_FLEET_NAME_MAX + 32];
    char dir[900];
    int64_t lease_ok; /* monotonic us of the last renewal Redis accepted */
    int nice0;        /* the nice value the agent was started with (its runs get it back) */
    long long done;    /* highest version played (or given up) */
    long long waiting; /* version we said "no free slice" for */
    char state[256];
    run r;
    char *report; /* a result not yet written (Redis down) */
    long long report_version;
} ag;

static void on_signal(int sig)
{
    (void)sig;
    quit = 1;
}

/* ---- Redis ------------------------------------------------------------------------------ */

/* One command; NULL when Redis cannot be reached (the connection is dropped
 * and made again on the next call). */
static redisReply *cmd(int argc, const char **argv)
{
    char err[512];
    if (!ag.rc) {
        ag.rc = hb_redis_connect(&ag.addr, 1000, err, sizeof err);
        if (!ag.rc) {
            if (!ag.down)
                hb_log("agent %s: %s (trying again)", ag.name, err);
            ag.down = true;
            return NULL;
        }
        if (ag.down)
            hb_log("agent %s: Redis at %s:%d is back", ag.name, ag.addr.host, ag.addr.port);
        ag.down = false;
    }
    redisReply *r = redisCommandArgv(ag.rc, argc, argv, NULL);
    if (!r) {
        hb_log("agent %s: Redis: %s", ag.name, ag.rc->errstr);
        redisFree(ag.rc);
        ag.rc = NULL;
        ag.down = true;
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR)
        hb_log("agent %s: Redis refused %s: %s", ag.name, argv[0], r->str);
    return r;
}

static void renew_lease(void)
{
    char ttl[24], ms[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)ag.c->agent_ttl_ms);
    snprintf(ms, sizeof ms, "%lld", (long long)(hb_now_us() / 1000));
    const char *set[] = {"SET", ag.lease, ag.state, "PX", ttl};
    redisReply *r = cmd(5, set);
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    if (!ok)
        return;
    ag.lease_ok = hb_mono_us();
    const char *z[] = {"ZADD", HB_FLEET_AGENTS, ms, ag.name};
    if ((r = cmd(4, z)))
        freeReplyObject(r);
}

static void field(task *t, const char *k, const char *v)
{
#define NUM(name)                         \
    if (!strcmp(k, #name)) {              \
        t->name = strtoll(v, NULL, 10);   \
        return;                           \
    }
    NUM(version) NUM(users) NUM(qps) NUM(groups) NUM(slices) NUM(start) NUM(duration)
#undef NUM
#define STR(name)                                          \
    if (!strcmp(k, #name)) {                               \
        snprintf(t->name, sizeof t->name, "%s", v);        \
        return;                                            \
    }
    STR(server) STR(port) STR(status) STR(rates)
#undef STR
}

/* The current task; 0 when there is none, -1 when Redis did not answer. */
static int read_task(task *t)
{
    memset(t, 0, sizeof *t);
    const char *a[] = {"HGETALL", HB_FLEET_TASK};
    redisReply *r = cmd(2, a);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -1;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *k = hb_redis_str(r->element[i]), *v = hb_redis_str(r->element[i + 1]);
        if (k && v)
            field(t, k, v);
    }
    freeReplyObject(r);
    return t->version > 0 && t->users > 0 && t->slices > 0 && t->server[0] && t->port[0] ? 1 : 0;
}

static void vkey(char *buf, size_t len, long long version, const char *what)
{
    snprintf(buf, len, HB_FLEET_VKEY_FMT, version, what);
}

/* HB_FLEET_CLAIM: the slice, -1 none free, -2 lost, -3 Redis unreachable. */
static long long claim(const task *t)
{
    char slices[128], claims[128], n[24], keep[24];
    vkey(slices, sizeof slices, t->version, "slices");
    vkey(claims, sizeof claims, t->version, "claims");
    snprintf(n, sizeof n, "%lld", t->slices);
    snprintf(keep, sizeof keep, "%d", HB_FLEET_KEEP_S);
    const char *a[] = {"EVAL", HB_FLEET_CLAIM, "2", slices, claims, ag.name, n, HB_FLEET_AGENT, keep};
    redisReply *r = cmd(9, a);
    long long s = -3;
    if (r && r->type == REDIS_REPLY_INTEGER)
        s = r->integer;
    if (r)
        freeReplyObject(r);
    return s;
}

/* ---- the run ------------------------------------------------------------------------------ */

static bool agent_only(const char *name, size_t len)
{
    static const char *const own[] = {"agent", "redis-password-file", "agent-name", "agent-dir", "agent-ttl", "agent-nice"};
    for (size_t i = 0; i < sizeof own / sizeof *own; i++)
        if (strlen(own[i]) == len && !strncmp(name, own[i], len))
            return true;
    return false;
}

static bool task_decides(const char *name, size_t len)
{
    static const char *const task_opts[] = {"server",   "port",     "users",     "uid-from",  "uid-to",
                                            "qps",      "groups",   "duration",  "start-at",  "stop-at",
                                            "plan",     "hist-file", "stats-file", "ledger",   "commands-fd",
                                            "instance"};
    for (size_t i = 0; i < sizeof task_opts / sizeof *task_opts; i++)
        if (strlen(task_opts[i]) == len && !strncmp(name, task_opts[i], len))
            return true;
    return false;
}

static int send_line(const char *line)
{
    if (ag.r.fd < 0)
        return -1;
    size_t n = strlen(line);
    ssize_t w = write(ag.r.fd, line, n);
    if (w != (ssize_t)n) {
        hb_log("agent %s: cannot tell the run '%.*s': %s", ag.name, (int)n - 1, line,
               w < 0 ? strerror(errno) : "short write");
        return -1;
    }
    return 0;
}

static int spawn(const task *t, long long slice)
{
    run *r = &ag.r;
    memset(r, 0, sizeof *r);
    r->fd = -1;
    r->version = t->version;
    r->slice = slice;
    hb_fleet_slice(t->users, t->slices, slice, &r->from, &r->to);
    if (r->to <= r->from) {
        hb_log("agent %s: v%lld slice %lld holds no uid (%lld users in %lld slices): nothing to play", ag.name,
               t->version, slice, t->users, t->slices);
        return -1;
    }
    snprintf(r->stats, sizeof r->stats, "%s/v%lld.stats", ag.dir, t->version);
    snprintf(r->hist, sizeof r->hist, "%s/v%lld.hist", ag.dir, t->version);
    snprintf(r->ledger, sizeof r->ledger, "%s/v%lld.ledger", ag.dir, t->version);
    unlink(r->stats);
    unlink(r->hist);

    char num[10][32];
    const char *av[128];
    int n = 0;
    av[n++] = ag.argv[0];
    for (int i = 1; i < ag.argc && n < 80; i++) {
        const char *a = ag.argv[i];
        if (!strncmp(a, "--", 2)) {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            if (agent_only(name, len)) {
                if (!eq)
                    i++; /* and its value */
                continue;
            }
        }
        av[n++] = a;
    }
    snprintf(num[0], sizeof num[0], "%lld", t->users);
    snprintf(num[1], sizeof num[1], "%lld", r->from);
    snprintf(num[2], sizeof num[2], "%lld", r->to);
    snprintf(num[3], sizeof num[3], "%lld", t->qps);
    snprintf(num[4], sizeof num[4], "%lld", t->groups);
    snprintf(num[5], sizeof num[5], "%lld", t->start);
    snprintf(num[6], sizeof num[6], "%lld", t->duration ? t->start + t->duration : 0);
    const char *add[] = {"--server", t->server, "--port", t->port, "--users", num[0], "--uid-from", num[1],
                         "--uid-to", num[2], "--qps", num[3], "--groups", num[4], "--start-at", num[5],
                         "--stop-at", num[6], "--plan", t->rates, "--stats-file", r->stats, "--hist-file", r->hist,
                         "--ledger", r->ledger, "--commands-fd", "0", "--instance", ag.name};
    for (size_t i = 0; i < sizeof add / sizeof *add; i++)
        av[n++] = add[i];
    av[n] = NULL;

    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        hb_log("agent %s: pipe: %s", ag.name, strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        hb_log("agent %s: fork: %s", ag.name, strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        /* dies with the agent: its uids may be claimed by another agent */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        dup2(p[0], 0); /* dup2 clears close-on-exec on 0 */
        if (ag.c->agent_nice)
            setpriority(PRIO_PROCESS, 0, ag.nice0); /* the run at the level the agent was started with */
        execv("/proc/self/exe", (char *const *)av);
        fprintf(stderr, "hb-client: agent: cannot run /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    close(p[0]);
    r->pid = pid;
    r->fd = p[1];
    r->rates_sent = strlen(t->rates);
    snprintf(r->status, sizeof r->status, "running");
    hb_log("agent %s: v%lld: slice %lld of %lld, uids [%lld, %lld) of %lld, from second %lld for %lld s (0: until "
           "stopped), %lld shakes/s in aggregate%s%s (pid %d)",
           ag.name, t->version, slice, t->slices, r->from, r->to, t->users, t->start, t->duration, t->qps,
           t->rates[0] ? ", changes " : "", t->rates, (int)pid);
    snprintf(ag.state, sizeof ag.state, "v%lld slice %lld uids %lld-%lld running", t->version, slice, r->from, r->to);
    return 0;
}

/* Follow the task: new rates, pause/resume, stop (another version, or
 * stopped).  tr: 1 task read, 0 no task, -1 Redis did not answer. */
static void steer(const task *t, int tr)
{
    run *r = &ag.r;
    if (r->stop_sent)
        return;
    if (tr == 0 || (tr == 1 && (t->version != r->version || !strcmp(t->status, "stopped")))) {
        hb_log("agent %s: v%lld: %s: stopping the run", ag.name, r->version,
               tr == 0 ? "the task is gone" : t->version != r->version ? "a new task version" : "task stopped");
        send_line("stop\n");
        r->stop_sent = true;
        return;
    }
    if (tr < 0)
        return;
    size_t len = strlen(t->rates);
    if (len > r->rates_sent) {
        char more[sizeof t->rates];
        snprintf(more, sizeof more, "%s", t->rates + r->rates_sent);
        for (char *save = NULL, *tok = strtok_r(more, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            long long at, q;
            char line[96];
            if (sscanf(tok, "%lld:%lld", &at, &q) != 2)
                continue;
            snprintf(line, sizeof line, "qps %lld %lld\n", q, at);
            send_line(line);
        }
        r->rates_sent = len;
    }
    if ((!strcmp(t->status, "paused") || !strcmp(t->status, "running")) && strcmp(t->status, r->status)) {
        send_line(!strcmp(t->status, "paused") ? "pause\n" : "resume\n");
        snprintf(r->status, sizeof r->status, "%s", t->status);
    }
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = 0;
    return buf;
}

/* Our result for version r->version: the run's final stats file and
 * histogram, with who played what. */
static void make_report(int status)
{
    run *r = &ag.r;
    char *stats = slurp(r->stats), *hist = slurp(r->hist);
    char head[512];
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    snprintf(head, sizeof head, "agent %s\nslice %lld\nuid_from %lld\nuid_to %lld\nexit_status %d\n", ag.name, r->slice,
             r->from, r->to, code);
    if (hist)
        hist[strcspn(hist, "\n")] = 0;
    size_t len = strlen(head) + (stats ? strlen(stats) : 0) + (hist ? strlen(hist) : 0) + 64;
    free(ag.report);
    ag.report = malloc(len);
    if (ag.report)
        snprintf(ag.report, len, "%s%s%slatency_hist %s\n", head, stats ? stats : "",
                 stats && stats[0] && stats[strlen(stats) - 1] != '\n' ? "\n" : "", hist ? hist : "hist1 0 0 0 0");
    ag.report_version = r->version;
    if (!stats || !hist)
        hb_log("agent %s: v%lld: the run left %s%s%s (exit status %d): reporting what there is", ag.name, r->version,
               stats ? "" : "no stats file", !stats && !hist ? " and " : "", hist ? "" : "no histogram", code);
    free(stats);
    free(hist);
}

static void send_report(void)
{
    if (!ag.report)
        return;
    char key[128], keep[24];
    vkey(key, sizeof key, ag.report_version, "results");
    snprintf(keep, sizeof keep, "%d", HB_FLEET_KEEP_S);
    const char *a[] = {"HSET", key, ag.name, ag.report};
    redisReply *r = cmd(4, a);
    bool ok = r && r->type == REDIS_REPLY_INTEGER;
    if (r)
        freeReplyObject(r);
    if (!ok)
        return; /* again on the next poll */
    const char *e[] = {"EXPIRE", key, keep};
    if ((r = cmd(3, e)))
        freeReplyObject(r);
    hb_log("agent %s: v%lld: results reported", ag.name, ag.report_version);
    free(ag.report);
    ag.report = NULL;
}

static void reap(void)
{
    run *r = &ag.r;
    int status;
    pid_t p = waitpid(r->pid, &status, WNOHANG);
    if (p == 0)
        return;
    if (p < 0)
        status = 127 << 8;
    hb_log("agent %s: v%lld: run ended (%s %d)", ag.name, r->version,
           WIFEXITED(status) ? "exit status" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    if (r->fd >= 0)
        close(r->fd);
    make_report(status);
    ag.done = r->version;
    snprintf(ag.state, sizeof ag.state, "v%lld slice %lld done", r->version, r->slice);
    r->pid = 0;
    r->fd = -1;
    send_report();
}

/* A run must not outlive our lease: once it is old, stop shaking; once it
 * ran out (the slice may be someone else's now), kill the run. */
static void guard_lease(void)
{
    run *r = &ag.r;
    int64_t age = hb_mono_us() - ag.lease_ok, ttl = ag.c->agent_ttl_ms * 1000;
    if (!r->stop_sent && age > ttl / 2) {
        hb_log("agent %s: v%lld: lease not renewed for %lld ms: stopping the run", ag.name, r->version,
               (long long)(age / 1000));
        send_line("stop\n");
        r->stop_sent = true;
    }
    if (!r->killed && age > ttl * 9 / 10) {
        hb_log("agent %s: v%lld: lease about to run out: killing the run", ag.name, r->version);
        kill(r->pid, SIGKILL);
        r->killed = true;
    }
}

static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void step(void)
{
    renew_lease();
    task t;
    int tr = read_task(&t);
    if (ag.r.pid) {
        steer(&t, tr);
        guard_lease();
        reap();
        return;
    }
    send_report();
    if (tr != 1 || t.version <= ag.done || !strcmp(t.status, "stopped") ||
        (t.duration && hb_now_us() / 1000000 >= t.start + t.duration))
        return;
    if (hb_mono_us() - ag.lease_ok > ag.c->agent_ttl_ms * 1000 / 2)
        return; /* no claim without a fresh lease */
    long long s = claim(&t);
    if (s >= 0) {
        if (spawn(&t, s) < 0)
            ag.done = t.version;
    } else if (s == -2) {
        hb_log("agent %s: v%lld: my slice went to another agent (my lease had run out): not playing again in this "
               "version",
               ag.name, t.version);
        ag.done = t.version;
    } else if (s == -1 && ag.waiting != t.version) {
        hb_log("agent %s: v%lld: all %lld slices are held by live agents: waiting for one to come free", ag.name,
               t.version, t.slices);
        ag.waiting = t.version;
        snprintf(ag.state, sizeof ag.state, "v%lld waiting for a slice", t.version);
    }
}

int cl_agent_run(const cl_config *c, int argc, char **argv)
{
    char err[512];
    ag.c = c;
    ag.argc = argc;
    ag.argv = argv;
    ag.r.fd = -1;
    if (hb_redis_parse_url(c->agent, &ag.addr) < 0) {
        fprintf(stderr, "hb-client: --agent '%s': expected redis://HOST:PORT\n", c->agent);
        return 2;
    }
    if (c->redis_password_file && hb_redis_read_password(c->redis_password_file, &ag.addr, err, sizeof err) < 0) {
        fprintf(stderr, "hb-client: %s\n", err);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i] + 2, *eq = strchr(name, '=');
        if (strncmp(argv[i], "--", 2) != 0)
            continue;
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (task_decides(name, len)) {
            fprintf(stderr, "hb-client: --%.*s is the task's to say (tools/fleet task start), not the agent's\n",
                    (int)len, name);
            return 2;
        }
    }
    if (c->agent_name) {
        if (!*c->agent_name || strlen(c->agent_name) >= HB_FLEET_NAME_MAX || strpbrk(c->agent_name, " \t\r\n")) {
            fprintf(stderr, "hb-client: --agent-name: 1-%d characters, no spaces\n", HB_FLEET_NAME_MAX - 1);
            return 2;
        }
        snprintf(ag.name, sizeof ag.name, "%s", c->agent_name);
    } else {
        char host[40] = "host";
        gethostname(host, sizeof host - 1);
        snprintf(ag.name, sizeof ag.name, "%s-%d", host, (int)getpid());
    }
    snprintf(ag.lease, sizeof ag.lease, "%s%s", HB_FLEET_AGENT, ag.name);
    if (c->agent_dir)
        snprintf(ag.dir, sizeof ag.dir, "%s", c->agent_dir);
    else
        snprintf(ag.dir, sizeof ag.dir, "/tmp/hb-agent-%s", ag.name);
    if (mkdir(ag.dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "hb-client: --agent-dir %s: %s\n", ag.dir, strerror(errno));
        return 1;
    }
    snprintf(ag.state, sizeof ag.state, "idle");
    errno = 0;
    ag.nice0 = getpriority(PRIO_PROCESS, 0);
    if (c->agent_nice && setpriority(PRIO_PROCESS, 0, (int)c->agent_nice) < 0)
        hb_log("agent %s: --agent-nice %lld: %s (needs CAP_SYS_NICE): renewing the lease at nice %d", ag.name,
               (long long)c->agent_nice, strerror(errno), ag.nice0);

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* A password Redis refuses is a mistake to say at once; a Redis not
     * up yet (machines booting in any order) is waited for. */
    ag.rc = hb_redis_connect(&ag.addr, 2000, err, sizeof err);
    if (!ag.rc && strncmp(err, "cannot reach", 12) != 0) {
        fprintf(stderr, "hb-client: agent: %s\n", err);
        return 1;
    }
    if (!ag.rc) {
        hb_log("agent %s: %s: waiting for it", ag.name, err);
        ag.down = true;
    }
    hb_log("agent %s: waiting for tasks at %s:%d (lease %lld ms, files in %s)", ag.name, ag.addr.host, ag.addr.port,
           (long long)c->agent_ttl_ms, ag.dir);
    /* Tasks that were over when we came are not ours to play. */
    task t;
    if (read_task(&t) == 1 && (!strcmp(t.status, "stopped") ||
                               (t.duration && hb_now_us() / 1000000 >= t.start + t.duration)))
        ag.done = t.version;

    while (!quit) {
        step();
        nap(POLL_MS);
    }
    if (ag.r.pid) {
        hb_log("agent %s: signalled: stopping the run of v%lld", ag.name, ag.r.version);
        if (!ag.r.stop_sent)
            send_line("stop\n");
        ag.r.stop_sent = true;
        int64_t until = hb_mono_us() + (int64_t)(c->drain + 5) * 1000000;
        while (ag.r.pid && hb_mono_us() < until) {
            reap();
            if (ag.r.pid)
                nap(50);
        }
        if (ag.r.pid) {
            kill(ag.r.pid, SIGKILL);
            while (ag.r.pid)
                reap();
        }
    }
    for (int i = 0; i < 10 && ag.report; i++) {
        send_report();
        if (ag.report)
            nap(200);
    }
    /* gone: no lease, and off the list tools/fleet task status shows */
    const char *del[] = {"DEL", ag.lease}, *zrem[] = {"ZREM", HB_FLEET_AGENTS, ag.name};
    redisReply *r = cmd(2, del);
    if (r)
        freeReplyObject(r);
    if ((r = cmd(3, zrem)))
        freeReplyObject(r);
    if (ag.rc)
        redisFree(ag.rc);
    free(ag.report);
    hb_log("agent %s: gone", ag.name);
    return 0;
}
