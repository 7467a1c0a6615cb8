/* cluster_gone: a member whose process is gone leaves the list at once,
 * and nothing else does (server/liveness.h).  A redis-server this test
 * starts (127.0.0.1, a free port, a temp dir, a password), nodes "a" and
 * "b" with a long TTL (--cluster-ttl 8000, so a drop by expiry cannot pass
 * for the proof), then:
 *   1. both list both, and b's description carries its liveness port,
 *      whose sockets are in none of b's SET threads' private descriptor
 *      tables (a copy there would keep the port open after b's death for
 *      as long as that table takes to close: 31 s at 1M), whose listener is
 *      b's highest descriptor and whose sockets no epoll instance watches
 *      (both: released first and without waiting when b dies);
 *   2. b frozen (SIGSTOP) for 3 s, over three of its refreshes: a keeps it
 *      (a frozen process keeps its sockets and its port);
 *   3. b upgraded in place (a new process takes over through
 *      --upgrade-socket; the old one exits, closing its liveness
 *      connections): a keeps it, through the exit and 3 s after it (the
 *      liveness listener went to the new process, which answers a's dial),
 *      and b is registered with the same liveness port;
 *   4. b killed (SIGKILL): a drops it within 2.5 s, far inside the TTL,
 *      and says why (without liveness.c: about 8 s, when the registration
 *      expires). */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <hiredis/hiredis.h>
#include "peer.h"
#include "spawn.h"
#include "tredis.h"

static char dir[64] = "/tmp/hb-cgone.XXXXXX";
static tredis redis;
static pid_t upgraded; /* b's second process (not started through peer.c) */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cleanup(void)
{
    spawn_stop(&upgraded, SIGKILL, 1000);
    tredis_stop(&redis, SIGTERM, 3000);
}

/* b's description in Redis. */
static void desc_of_b(redisContext *rc, char *d, size_t n)
{
    redisReply *r = redisCommand(rc, "HGET hb:cluster:info b");
    CHECK(r, "HGET: %s", rc->errstr);
    snprintf(d, n, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

/* Watch a's member count for ms: the fewest it listed. */
static uint64_t fewest_members(peer_server *a, int ms)
{
    uint64_t least = 99;
    for (int64_t end = now_ms() + ms; now_ms() < end; usleep(50000)) {
        uint64_t m = peer_stat_now(a, "cluster_members");
        least = m < least ? m : least;
    }
    return least;
}

/* Inodes of the sockets on local port `port` (its listener, what it
 * accepted; with listening, its listener only), at most max; how many. */
static int port_inodes(unsigned port, bool listening, unsigned long *inode, int max)
{
    char line[512];
    int ni = 0;
    FILE *f = fopen("/proc/net/tcp", "r");
    CHECK(f, "/proc/net/tcp");
    while (fgets(line, sizeof line, f) && ni < max) {
        unsigned lp, st;
        unsigned long ino;
        if (sscanf(line, " %*d: %*8[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*s %*s %lu", &lp, &st, &ino) == 3 &&
            lp == port && ino && (!listening || st == 0x0A))
            inode[ni++] = ino;
    }
    fclose(f);
    return ni;
}

/* Descriptors for sockets on local port `port` (its listener, what it
 * accepted) in the tables of pid's SET threads (named hb-set-N); the first
 * such thread's name in who. */
static int port_in_sets(pid_t pid, unsigned port, char *who, size_t wlen)
{
    unsigned long inode[64];
    int found = 0;
    char path[256], link[128];
    int ni = port_inodes(port, false, inode, 64);
    CHECK(ni > 0, "no socket on port %u in /proc/net/tcp", port);
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *tasks = opendir(path);
    CHECK(tasks, "%s", path);
    for (struct dirent *t; (t = readdir(tasks));) {
        char comm[64] = "";
        snprintf(path, sizeof path, "/proc/%d/task/%.20s/comm", (int)pid, t->d_name);
        FILE *c = fopen(path, "r");
        if (!c)
            continue;
        if (!fgets(comm, sizeof comm, c))
            comm[0] = 0;
        fclose(c);
        if (strncmp(comm, "hb-set-", 7))
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%.20s/fd", (int)pid, t->d_name);
        DIR *fds = opendir(path);
        for (struct dirent *d; fds && (d = readdir(fds));) {
            char fp[320];
            snprintf(fp, sizeof fp, "%.200s/%.20s", path, d->d_name);
            ssize_t n = readlink(fp, link, sizeof link - 1);
            unsigned long ino;
            if (n <= 0)
                continue;
            link[n] = 0;
            if (sscanf(link, "socket:[%lu]", &ino) != 1)
                continue;
            for (int i = 0; i < ni; i++)
                if (ino == inode[i] && !found++)
                    snprintf(who, wlen, "%.*s", (int)strcspn(comm, "\n"), comm);
        }
        if (fds)
            closedir(fds);
    }
    closedir(tasks);
    return found;
}

/* The highest descriptor in pid's shared table (its main thread's) and
 * the socket inode it is (0: not a socket). */
static int highest_fd(pid_t pid, unsigned long *ino)
{
    char path[64], fp[128], link[128];
    int top = -1;
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *fds = opendir(path);
    CHECK(fds, "%s", path);
    for (struct dirent *d; (d = readdir(fds));)
        if (d->d_name[0] != '.' && atoi(d->d_name) > top)
            top = atoi(d->d_name);
    closedir(fds);
    snprintf(fp, sizeof fp, "%s/%d", path, top);
    ssize_t n = readlink(fp, link, sizeof link - 1);
    link[n > 0 ? n : 0] = 0;
    if (sscanf(link, "socket:[%lu]", ino) != 1)
        *ino = 0;
    return top;
}

/* Sockets on local port `port` that an epoll instance of pid watches, in
 * any thread's table (fdinfo of an epoll file lists each target's inode);
 * the first watcher's thread name in who. */
static int port_in_epoll(pid_t pid, unsigned port, char *who, size_t wlen)
{
    unsigned long inode[64];
    int found = 0;
    char line[512], path[256], link[128];
    int ni = port_inodes(port, false, inode, 64);
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *tasks = opendir(path);
    CHECK(tasks, "%s", path);
    for (struct dirent *t; (t = readdir(tasks));) {
        if (t->d_name[0] == '.')
            continue;
        char dpath[128];
        snprintf(dpath, sizeof dpath, "/proc/%d/task/%.20s/fd", (int)pid, t->d_name);
        DIR *fds = opendir(dpath);
        for (struct dirent *d; fds && (d = readdir(fds));) {
            char fp[320];
            snprintf(fp, sizeof fp, "%s/%.20s", dpath, d->d_name);
            ssize_t n = readlink(fp, link, sizeof link - 1);
            if (n <= 0)
                continue;
            link[n] = 0;
            if (strcmp(link, "anon_inode:[eventpoll]"))
                continue;
            snprintf(fp, sizeof fp, "/proc/%d/task/%.20s/fdinfo/%.20s", (int)pid, t->d_name, d->d_name);
            FILE *fi = fopen(fp, "r");
            while (fi && fgets(line, sizeof line, fi)) {
                const char *p = strstr(line, " ino:");
                unsigned long ino;
                if (strncmp(line, "tfd:", 4) || !p || sscanf(p, " ino:%lx", &ino) != 1)
                    continue;
                for (int i = 0; i < ni; i++)
                    if (ino == inode[i] && !found++) {
                        char cp[128];
                        snprintf(cp, sizeof cp, "/proc/%d/task/%.20s/comm", (int)pid, t->d_name);
                        FILE *c = fopen(cp, "r");
                        if (c && fgets(who, (int)wlen, c))
                            who[strcspn(who, "\n")] = 0;
                        if (c)
                            fclose(c);
                    }
            }
            if (fi)
                fclose(fi);
        }
        if (fds)
            closedir(fds);
    }
    closedir(tasks);
    return found;
}

/* Whether file `path` contains `s`. */
static bool file_says(const char *path, const char *s)
{
    char buf[1 << 16];
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, s) != NULL;
}

int main(void)
{
    atexit(cleanup);
    CHECK(mkdtemp(dir), "mkdtemp");
    tredis_start(&redis, dir, "hb-test-pw", false);
    redisContext *rc = tredis_connect(&redis);
    char sock[128];
    snprintf(sock, sizeof sock, "%s/b-upgrade.sock", dir);
#define NODE(name, idx, ...)                                                                                        \
    {"--listen", "127.0.0.1", "--users", "40", "--sets", "2", "--cluster", redis.url, "--node", name,              \
     "--node-index", idx, "--nodes", "2", "--cluster-ttl", "8000", "--redis-password-file", redis.pwfile,          \
     "--stats-every", "100", __VA_ARGS__}
    const char *af[] = NODE("a", "0", NULL);
    const char *bf[] = NODE("b", "1", "--upgrade-socket", sock, NULL);
    peer_server a, b;
    peer_server_start(&a, 1, af);
    peer_server_start(&b, 1, bf);

    /* 1 */
    CHECK(peer_wait_stat(&a, "cluster_members", 2, 5000) == 2 && peer_wait_stat(&b, "cluster_members", 2, 5000) == 2,
          "a and b do not list each other");
    char d[256], host[64];
    unsigned port = 0, live = 0;
    double w;
    int idx;
    desc_of_b(rc, d, sizeof d);
    CHECK(sscanf(d, "%63s %u %lf %d %u", host, &port, &w, &idx, &live) == 5 && port == (unsigned)b.port && live &&
              live != port,
          "b registered as '%s': want HOST %d WEIGHT INDEX LIVEPORT", d, b.port);
    usleep(1500000); /* a's next refresh dials b's liveness port */
    char who[64] = "";
    int in_sets = port_in_sets(b.pid, live, who, sizeof who);
    CHECK(!in_sets,
          "%d descriptors of b's liveness port are in its SETs' tables (%s...): they would keep it open after b's "
          "death until that table is closed", in_sets, who);
    /* Released first and at once when b dies: the listener is the highest
     * descriptor of b's shared table (an exiting thread releases its files
     * from the highest down) and no epoll instance watches the port's
     * sockets (releasing one takes the kernel's global epoll mutex, for
     * which a dying node's SETs queue as they close their sockets). */
    unsigned long lino = 0, tino = 0;
    port_inodes(live, true, &lino, 1);
    int top = highest_fd(b.pid, &tino);
    CHECK(lino && tino == lino, "b's highest descriptor %d is not its liveness listener (inode %lu, listener %lu)",
          top, tino, lino);
    int in_epoll = port_in_epoll(b.pid, live, who, sizeof who);
    CHECK(!in_epoll,
          "%d sockets of b's liveness port are watched by an epoll instance (in %s): their release would wait for "
          "the global epoll mutex", in_epoll, who);
    PASS("a and b list each other; b registered as '%s' (liveness port %u: in no SET's descriptor table, its "
         "listener b's highest descriptor %d, no socket of it in an epoll)", d, live, top);

    /* 2 */
    CHECK(kill(b.pid, SIGSTOP) == 0, "SIGSTOP");
    uint64_t least = fewest_members(&a, 3000);
    CHECK(kill(b.pid, SIGCONT) == 0, "SIGCONT");
    CHECK(least == 2 && peer_stat_now(&a, "cluster_gone") == 0,
          "while b was frozen for 3 s a listed %llu members at the fewest (want 2) and proved %llu gone",
          (unsigned long long)least, (unsigned long long)peer_stat_now(&a, "cluster_gone"));
    PASS("b frozen for 3 s: a kept it");

    /* 3 */
    char exe[256], ports[16];
    snprintf(exe, sizeof exe, "%s/hb-server", getenv("HB_BIN"));
    snprintf(ports, sizeof ports, "%d-%d", b.port, b.port);
    const char *nf[64] = {exe, "--port", ports, "--journal", b.journal, "--stats-file", b.stats};
    int n = 7;
    for (int i = 0; bf[i]; i++)
        nf[n++] = bf[i];
    nf[n++] = "--takeover";
    nf[n++] = sock;
    nf[n] = NULL;
    char log[256];
    snprintf(log, sizeof log, "%s/b2.log", dir);
    upgraded = spawn(nf, log);
    int st;
    int64_t end = now_ms() + 20000;
    while (waitpid(b.pid, &st, WNOHANG) == 0 && now_ms() < end)
        usleep(20000);
    CHECK(now_ms() < end, "the old b did not exit after the takeover (see %s and %s)", b.log, log);
    b.pid = 0; /* reaped */
    least = fewest_members(&a, 3000);
    char d2[256];
    desc_of_b(rc, d2, sizeof d2);
    unsigned port2 = 0, live2 = 0;
    sscanf(d2, "%63s %u %lf %d %u", host, &port2, &w, &idx, &live2);
    CHECK(least == 2 && peer_stat_now(&a, "cluster_gone") == 0,
          "through b's upgrade a listed %llu members at the fewest (want 2) and proved %llu gone", (unsigned long long)least,
          (unsigned long long)peer_stat_now(&a, "cluster_gone"));
    CHECK(port2 == port && live2 == live,
          "after the upgrade b is registered as '%s' (before: '%s'): want the liveness port taken over", d2, d);
    uint64_t closes = peer_stat_now(&a, "cluster_live_closed");
    CHECK(closes >= 1, "a never saw its liveness connection to b's old process close (cluster_live_closed %llu)",
          (unsigned long long)closes);
    PASS("b upgraded: its old process's exit closed a's liveness connection (%llu), the port answered (taken over "
         "by the new process), a kept b; b registered as '%s'", (unsigned long long)closes, d2);

    /* 4 */
    int64_t t0 = now_ms();
    CHECK(kill(upgraded, SIGKILL) == 0, "SIGKILL");
    uint64_t m = 2;
    while ((m = peer_stat_now(&a, "cluster_members")) != 1 && now_ms() - t0 < 12000)
        usleep(20000);
    int64_t took = now_ms() - t0;
    CHECK(m == 1, "a still lists %llu members 12 s after b was killed", (unsigned long long)m);
    CHECK(took <= 2500, "a dropped the killed b after %lld ms: want within 2500 (its TTL is 8000)", (long long)took);
    CHECK(peer_stat_now(&a, "cluster_gone") == 1 && file_says(a.log, "cluster: b is gone"),
          "a dropped b without proving it gone (cluster_gone %llu; see %s)",
          (unsigned long long)peer_stat_now(&a, "cluster_gone"), a.log);
    PASS("b killed: a dropped it after %lld ms (TTL 8000 ms)", (long long)took);

    spawn_stop(&upgraded, SIGKILL, 1000);
    peer_server_stop(&a);
    redisFree(rc);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s %s", dir, a.dir, b.dir);
    (void)!system(cmd);
    return 0;
}
