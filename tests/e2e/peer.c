/* peer.c -- blocking protocol peer and server control for C e2e tests.
 * Servers are started through spawn.c: they die with the test binary. */
#include "peer.h"
#include "spawn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PEER_SERVERS_MAX 32 /* servers one test may start (killed at exit if still up) */
static peer_server *running[PEER_SERVERS_MAX];
static int nrunning;
/* every open peer, so a test that ends without closing some does not leak */
static peer **peers;
static size_t npeers;

static void track(peer *p)
{
    peer **n = realloc(peers, (npeers + 1) * sizeof *peers);
    if (n) {
        peers = n;
        peers[npeers++] = p;
    }
}

static void untrack(peer *p)
{
    for (size_t i = 0; i < npeers; i++)
        if (peers[i] == p) {
            peers[i] = peers[--npeers];
            return;
        }
}

/* A sanitizer report in the server's log fails the test. */
static void check_log(peer_server *s)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' %s", s->log);
    CHECK(system(cmd) != 0, "sanitizer report in %s", s->log);
}

void peer_abort(void)
{
    for (int i = 0; i < nrunning; i++)
        if (running[i]->pid > 0) {
            kill(running[i]->pid, SIGKILL);
            fprintf(stderr, "(server files kept in %s)\n", running[i]->dir);
        }
    exit(1);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static bool can_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* A random first port for n consecutive ones, below the kernel's ephemeral
 * range when there is room (10000..its start): a free port inside it can
 * become some connection's local port before the server binds it.  Seeded
 * once per test: reseeding with the same pid and second made a node started
 * right after another was killed pick the dead one's port, which a restart
 * of the dead one then needed (e2e.cluster_msgs). */
static int random_base(int n)
{
    static bool seeded;
    if (!seeded) {
        srand((unsigned)(getpid() ^ time(NULL)));
        seeded = true;
    }
    int lo = 0, from = 20000, span = 30000;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f && fscanf(f, "%d", &lo) == 1 && lo > 10000 + 1000 + n) {
        from = 10000;
        span = lo - 10000 - n;
    }
    if (f)
        fclose(f);
    return from + rand() % span;
}

int peer_free_port(void)
{
    for (int tries = 0; tries < 100; tries++) {
        int port = random_base(1);
        if (port_free(port))
            return port;
    }
    CHECK(0, "no free port");
    return 0;
}

int peer_server_run(const char *const *flags, int ms, char *out, size_t outlen)
{
    const char *bin = getenv("HB_BIN");
    CHECK(bin, "HB_BIN not set");
    char exe[256], log[] = "/tmp/hb-peer-run.XXXXXX";
    snprintf(exe, sizeof exe, "%s/hb-server", bin);
    int fd = mkstemp(log);
    CHECK(fd >= 0, "mkstemp");
    const char *argv[64];
    int n = 0;
    argv[n++] = exe;
    for (int i = 0; flags && flags[i] && n < 62; i++)
        argv[n++] = flags[i];
    argv[n] = NULL;
    pid_t pid = spawn_fd(argv, fd);
    int st, rc = -1;
    for (int64_t end = now_ms() + ms; now_ms() < end; usleep(10000))
        if (waitpid(pid, &st, WNOHANG) == pid) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
    if (rc < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    ssize_t got = pread(fd, out, outlen - 1, 0);
    out[got > 0 ? got : 0] = 0;
    close(fd);
    unlink(log);
    return rc;
}

void peer_server_start(peer_server *s, int nports, const char *const *flags)
{
    peer_server_start_wrapped(s, nports, NULL, flags);
}

static void server_start(peer_server *s, int port, int nports, const char *const *wrap, const char *const *flags);

void peer_server_start_wrapped(peer_server *s, int nports, const char *const *wrap, const char *const *flags)
{
    server_start(s, 0, nports, wrap, flags);
}

void peer_server_start_at(peer_server *s, int port, int nports, const char *const *flags)
{
    server_start(s, port, nports, NULL, flags);
}

/* port 0: a free range chosen here */
static void server_start(peer_server *s, int port, int nports, const char *const *wrap, const char *const *flags)
{
    signal(SIGPIPE, SIG_IGN);
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/hb-peer.XXXXXX");
    if (!mkdtemp(s->dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(s->stats, sizeof s->stats, "%s/server.stats", s->dir);
    snprintf(s->journal, sizeof s->journal, "%s/server.journal", s->dir);
    snprintf(s->log, sizeof s->log, "%s/server.log", s->dir);
    for (int i = 0; i < nports && port; i++)
        CHECK(port_free(port + i), "port %d is taken", port + i);
    s->port = port;
    for (int tries = 0; tries < 100 && !s->port; tries++) {
        int base = random_base(nports);
        bool ok = true;
        for (int i = 0; i < nports && ok; i++)
            ok = port_free(base + i);
        if (ok)
            s->port = base;
    }
    CHECK(s->port, "no free ports");
    char ports[32];
    snprintf(ports, sizeof ports, "%d-%d", s->port, s->port + nports - 1);
    const char *bin = getenv("HB_BIN");
    CHECK(bin, "HB_BIN not set");
    char exe[256];
    snprintf(exe, sizeof exe, "%s/hb-server", bin);
    const char *argv[64];
    int n = 0;
    for (int i = 0; wrap && wrap[i] && n < 16; i++)
        argv[n++] = wrap[i];
    argv[n++] = exe;
    argv[n++] = "--port";
    argv[n++] = ports;
    argv[n++] = "--journal";
    argv[n++] = s->journal;
    argv[n++] = "--stats-file";
    argv[n++] = s->stats;
    for (int i = 0; flags && flags[i] && n < 62; i++)
        argv[n++] = flags[i];
    argv[n] = NULL;
    CHECK(nrunning < PEER_SERVERS_MAX, "more than %d servers in one test", PEER_SERVERS_MAX);
    s->pid = spawn(argv, s->log);
    running[nrunning++] = s;
    int64_t end = now_ms() + 10000;
    while (!can_connect(s->port)) {
        int st;
        CHECK(waitpid(s->pid, &st, WNOHANG) == 0, "hb-server exited at start (see %s)", s->log);
        CHECK(now_ms() < end, "hb-server does not listen");
        usleep(20000);
    }
    /* the probe connection above is refused-by-timeout later; let the stats
     * file appear */
    end = now_ms() + 3000;
    struct stat st;
    while (stat(s->stats, &st) < 0 && now_ms() < end)
        usleep(20000);
}

void peer_server_stop(peer_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    int st;
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    check_log(s);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "hb-server exited with status %d (see %s)",
          WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st), s->log);
}

void peer_server_kill(peer_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    int st;
    waitpid(s->pid, &st, 0);
    s->pid = 0;
}

uint64_t peer_server_rss_kb(peer_server *s)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)s->pid);
    FILE *f = fopen(path, "r");
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

uint64_t peer_server_cpu_ms(peer_server *s)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)s->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* fields after the command name */
    unsigned long long ut = 0, st = 0;
    if (p)
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
    return (ut + st) * 1000 / (uint64_t)sysconf(_SC_CLK_TCK);
}

/* The counter through the one stats-file reader (proto/statsfile.h); *found
 * is 0 when the file or the counter is missing (or not a number). */
static uint64_t read_stat(peer_server *s, const char *name, int *found)
{
    hb_statsfile f;
    char err[256];
    uint64_t v = 0;
    *found = 0;
    if (hb_statsfile_load(&f, s->stats, err, sizeof err) < 0)
        return 0;
    *found = hb_statsfile_u64(&f, name, &v) == 1;
    hb_statsfile_free(&f);
    return v;
}

uint64_t peer_stat(peer_server *s, const char *name)
{
    /* wait for a rewrite newer than now, so counters include what just happened */
    struct stat st0, st1;
    if (s->pid > 0 && stat(s->stats, &st0) == 0) {
        int64_t end = now_ms() + 3000;
        do {
            usleep(50000);
            if (stat(s->stats, &st1) < 0)
                break;
        } while ((st1.st_mtim.tv_sec == st0.st_mtim.tv_sec && st1.st_mtim.tv_nsec == st0.st_mtim.tv_nsec) &&
                 now_ms() < end);
    }
    int found;
    uint64_t v = read_stat(s, name, &found);
    CHECK(found, "counter %s not in %s", name, s->stats);
    return v;
}

uint64_t peer_stat_now(peer_server *s, const char *name)
{
    int found;
    uint64_t v = read_stat(s, name, &found);
    CHECK(found, "counter %s not in %s", name, s->stats);
    return v;
}

uint64_t peer_wait_stat(peer_server *s, const char *name, uint64_t want, int ms)
{
    int64_t end = now_ms() + ms;
    uint64_t v;
    int found;
    do {
        v = read_stat(s, name, &found);
        if (found && v >= want)
            return v;
        usleep(50000);
    } while (now_ms() < end);
    return v;
}

/* ---- connections ---------------------------------------------------------- */

peer *peer_connect(int port)
{
    peer *p = peer_connect_from(port, NULL);
    CHECK(p, "connect: %s", strerror(errno));
    return p;
}

static peer *connect_with(int port, const char *src, int rcvbuf)
{
    peer *p = calloc(1, sizeof *p);
    p->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf) /* before connect(): the window offered from the start */
        setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (src) {
        struct sockaddr_in la = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &la.sin_addr);
        CHECK(bind(p->fd, (struct sockaddr *)&la, sizeof la) == 0, "bind %s: %s", src, strerror(errno));
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(p->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(p->fd);
        free(p);
        return NULL;
    }
    int one = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    hb_stream_init(&p->in, HB_FRAME_DOWN_MAX); /* it reads what a node sends (proto/frame.h) */
    hb_arena_init(&p->arena, p->mem, sizeof p->mem);
    track(p);
    return p;
}

peer *peer_connect_from(int port, const char *src)
{
    return connect_with(port, src, 0);
}

peer *peer_connect_rcvbuf(int port, int rcvbuf)
{
    peer *p = connect_with(port, NULL, rcvbuf);
    CHECK(p, "connect: %s", strerror(errno));
    return p;
}

void peer_close(peer *p)
{
    if (!p)
        return;
    untrack(p);
    close(p->fd);
    free(p);
}

void peer_send_raw(peer *p, const void *data, size_t n)
{
    /* the server may already have closed: a failed send is not a test error */
    (void)!send(p->fd, data, n, MSG_NOSIGNAL);
}

void peer_send(peer *p, const Hb__Frame *f)
{
    uint8_t buf[HB_FRAME_WIRE_MAX];
    size_t n = hb_frame_pack(f, buf, sizeof buf);
    CHECK(n > 0, "frame too large to pack");
    peer_send_raw(p, buf, n);
}

void peer_login(peer *p, uint32_t uid, const uint8_t *token, size_t toklen)
{
    peer_login_exp(p, uid, token, toklen, 0);
}

void peer_login_exp(peer *p, uint32_t uid, const uint8_t *token, size_t toklen, uint64_t expires)
{
    Hb__Login l = HB__LOGIN__INIT;
    l.uid = uid;
    l.token.data = (uint8_t *)token;
    l.token.len = toklen;
    l.expires = expires;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_LOGIN;
    f.login = &l;
    peer_send(p, &f);
}

void peer_shake(peer *p, uint32_t seq, bool retry)
{
    Hb__Shake sh = HB__SHAKE__INIT;
    sh.seq = seq;
    sh.retry = retry;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_SHAKE;
    f.shake = &sh;
    peer_send(p, &f);
}

void peer_open(peer *p, uint64_t packet_id)
{
    Hb__Open o = HB__OPEN__INIT;
    o.packet_id = packet_id;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_OPEN;
    f.open = &o;
    peer_send(p, &f);
}

void peer_chat(peer *p, uint32_t to, const char *text)
{
    Hb__Chat c = HB__CHAT__INIT;
    c.to_uid = to;
    c.text = (char *)text;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_CHAT;
    f.chat = &c;
    peer_send(p, &f);
}

static int enqueue(void *ctx, const uint8_t *body, size_t len)
{
    peer *p = ctx;
    if (p->nq < 64 && len <= HB_FRAME_DOWN_MAX) {
        memcpy(p->queued[p->nq], body, len);
        p->qlen[p->nq++] = len;
    }
    return 0;
}

static bool fill(peer *p, int64_t end)
{
    uint8_t buf[4096];
    int left = (int)(end - now_ms());
    if (left < 0)
        left = 0;
    struct pollfd pf = {.fd = p->fd, .events = POLLIN};
    if (poll(&pf, 1, left) <= 0)
        return false;
    ssize_t n = recv(p->fd, buf, sizeof buf, 0);
    if (n <= 0)
        return false;
    return hb_stream_feed(&p->in, buf, (size_t)n, enqueue, p) == 0;
}

Hb__Frame *peer_next(peer *p, int ms)
{
    int64_t end = now_ms() + ms;
    while (p->nq == 0)
        if (!fill(p, end))
            return NULL;
    static uint8_t body[HB_FRAME_DOWN_MAX];
    size_t len = p->qlen[0];
    memcpy(body, p->queued[0], len);
    memmove(p->queued, p->queued + 1, (size_t)(p->nq - 1) * sizeof p->queued[0]);
    memmove(p->qlen, p->qlen + 1, (size_t)(p->nq - 1) * sizeof p->qlen[0]);
    p->nq--;
    return hb_frame_unpack(&p->arena, body, len);
}

Hb__Frame *peer_expect(peer *p, Hb__Frame__BodyCase kind, int ms)
{
    int64_t end = now_ms() + ms;
    for (;;) {
        int left = (int)(end - now_ms());
        Hb__Frame *f = peer_next(p, left > 0 ? left : 0);
        if (!f || f->body_case == kind)
            return f;
    }
}

bool peer_closed(peer *p, int ms)
{
    int64_t end = now_ms() + ms;
    uint8_t buf[4096];
    for (;;) {
        int left = (int)(end - now_ms());
        if (left < 0)
            return false;
        struct pollfd pf = {.fd = p->fd, .events = POLLIN};
        if (poll(&pf, 1, left) <= 0)
            return false;
        ssize_t n = recv(p->fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0)
            return false;
    }
}

int peer_login_ok(peer *p, uint32_t uid, const uint8_t *token, size_t toklen)
{
    return peer_login_exp_ok(p, uid, token, toklen, 0);
}

int peer_login_exp_ok(peer *p, uint32_t uid, const uint8_t *token, size_t toklen, uint64_t expires)
{
    peer_login_exp(p, uid, token, toklen, expires);
    Hb__Frame *f = peer_expect(p, HB__FRAME__BODY_LOGIN_OK, 3000);
    CHECK(f, "no LoginOk for uid %u", uid);
    CHECK(f->login_ok->uid == uid, "LoginOk for uid %u, want %u", f->login_ok->uid, uid);
    return (int)f->login_ok->set;
}
