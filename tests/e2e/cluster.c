/* cluster (issue 15): hb-server nodes on loopback ports sharing one
 * redis-server that this test starts (127.0.0.1, a free port, a temp dir,
 * a password) and stops.
 *   1. a wrong or missing Redis password is a clear error at start (exit 1);
 *   2. a Login on the wrong node is redirected to the uid's owner;
 *   3. hb-client connecting to one node only ends with every user logged in
 *      on its owner (per-node counts equal the rendezvous placement), a node
 *      joining mid-run takes its users over paced (--rehome-rate), and the
 *      3 nodes' journals reconcile as one run with the client's ledger;
 *   4. two nodes that disagree (each pinned to the other: a stale member
 *      list) make a redirect loop the client bounds and counts;
 *   5. a node killed with SIGKILL: its users are on the survivors within 10 s;
 *      Redis stalled past the TTL drops nobody; Redis gone: nodes serve on;
 *   6. shakes a frozen-then-killed node never answered are not retried on the
 *      survivor (only the dead node's journal knows if they won), but on that
 *      node when it is back and has taken its users home;
 *   7. a node frozen (SIGSTOP, its sockets stay open): once the survivors have
 *      dropped it and the client learns their list, the client moves the
 *      users still on it to the survivors while it is stopped; SIGCONT and
 *      they go home;
 *   8. standbys (hb-client --standby): every user also holds a standby login
 *      on its runner-up; a standby may not shake; a node killed with SIGKILL:
 *      the survivors promote its users' standbys, so nearly all are logged
 *      in again without a connect (promoted, not reconnected);
 *   9. a flapping node (frozen past the TTL and back, then frozen again): the
 *      survivors hold its users' standbys for --flap-hold; it is back sooner
 *      and nothing moved; killed, its users are promoted once the hold ends.
 * The client learns the member list from the nodes (LoginOk/Redirect.members):
 * after its first logins it connects users straight to their owners (3:
 * redirects a small fraction of the users) and leaves a dead node at once
 * (5: about one connect per relogged user, almost no redirects). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "peer.h"
#include "placement.h"
#include "spawn.h"
#include "tredis.h"

static char dir[64] = "/tmp/hb-cluster.XXXXXX";
static tredis redis;
static pid_t client_pid;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cleanup(void)
{
    spawn_stop(&client_pid, SIGTERM, 2000);
    tredis_stop(&redis, SIGTERM, 3000);
}

#define USERS 1500

/* Node `name` (index i of n) with the test's money settings plus `extra`. */
static void node_start(peer_server *s, const char *name, int i, int n, const char *const *extra)
{
    static char idx[8][16], nn[8][16];
    static int k;
    k = (k + 1) % 8;
    snprintf(idx[k], sizeof idx[k], "%d", i);
    snprintf(nn[k], sizeof nn[k], "%d", n);
    const char *flags[64] = {"--sets", "2", "--users", "1500", "--total", "600", "--rate", "200",
                             "--send-total", "60", "--send-rate", "60", "--send-split", "3",
                             "--cluster", redis.url, "--node", name, "--node-index", idx[k], "--nodes", nn[k],
                             "--redis-password-file", redis.pwfile, "--stats-every", "200"};
    int m = 26;
    for (int e = 0; extra && extra[e] && m < 62; e++)
        flags[m++] = extra[e];
    flags[m] = NULL;
    peer_server_start(s, 1, flags);
}

/* The uids each of names[0..n-1] owns by the rendezvous placement. */
static void expected(const char *const *names, int n, uint64_t *per)
{
    hb_place_member m[8];
    for (int i = 0; i < n; i++) {
        m[i] = (hb_place_member){hb_place_key(names[i]), 1.0};
        per[i] = 0;
    }
    for (uint32_t u = 0; u < USERS; u++)
        per[hb_place_owner(u, m, (size_t)n)]++;
}

static peer_server client_stats; /* peer_stat_now reads any stats file */

static void client_start(int port, const char *tag, const char *const *extra)
{
    char p[16];
    static char ledger[128], log[128];
    snprintf(p, sizeof p, "%d", port);
    snprintf(client_stats.stats, sizeof client_stats.stats, "%s/%s.stats", dir, tag);
    snprintf(ledger, sizeof ledger, "%s/%s.ledger", dir, tag);
    snprintf(log, sizeof log, "%s/%s.log", dir, tag);
    const char *bin = getenv("HB_BIN");
    static char exe[256];
    snprintf(exe, sizeof exe, "%s/hb-client", bin);
    const char *argv[48] = {exe, "--server", "127.0.0.1", "--port", p, "--users", "1500", "--uid-from", "0",
                            "--uid-to", "1500", "--ledger", ledger, "--stats-file", client_stats.stats,
                            "--backoff-base", "100", "--backoff-cap", "1000"};
    int m = 19;
    for (int e = 0; extra && extra[e] && m < 46; e++)
        argv[m++] = extra[e];
    argv[m] = NULL;
    client_pid = spawn(argv, log);
}

static uint64_t cstat(const char *name)
{
    return peer_stat_now(&client_stats, name);
}

static int client_wait(int ms)
{
    int st;
    for (int64_t end = now_ms() + ms; now_ms() < end; usleep(50000))
        if (waitpid(client_pid, &st, WNOHANG) == client_pid) {
            client_pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
    return -1;
}

static void wait_for(const char *what, bool (*cond)(void *), void *arg, int ms)
{
    int64_t end = now_ms() + ms;
    while (!cond(arg)) {
        CHECK(now_ms() < end, "%s: not within %d ms", what, ms);
        usleep(100000);
    }
}

static bool all_logged_in(void *arg)
{
    (void)arg;
    return access(client_stats.stats, R_OK) == 0 && cstat("active") == USERS;
}

/* ---- 1. passwords ---------------------------------------------------------------- */

static void wrong_password(void)
{
    char bad[160], out[4096];
    snprintf(bad, sizeof bad, "%s/bad", dir);
    FILE *f = fopen(bad, "w");
    fputs("not-the-password\n", f);
    fclose(f);
    char j[160];
    snprintf(j, sizeof j, "%s/wp.journal", dir);
    int port = peer_free_port();
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    const char *flags[] = {"--port", p, "--sets", "1", "--users", "100", "--journal", j, "--cluster", redis.url,
                           "--node", "w0", "--node-index", "0", "--nodes", "1", "--redis-password-file", bad, NULL};
    int rc = peer_server_run(flags, 10000, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "refused the password"), "wrong password: status %d, output: %s", rc, out);
    PASS("a wrong Redis password stops the start: status 1, \"%.*s\"", (int)strcspn(out, "\n"), out);
    const char *nopw[] = {"--port", p, "--sets", "1", "--users", "100", "--journal", j, "--cluster", redis.url,
                          "--node", "w0", "--node-index", "0", "--nodes", "1", NULL};
    rc = peer_server_run(nopw, 10000, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "NOAUTH"), "no password: status %d, output: %s", rc, out);
    PASS("no password where Redis needs one: status 1, \"%.*s\"", (int)strcspn(out, "\n"), out);
}

/* ---- 2..3. redirects, a run over the cluster, a join, the ledger ---------------------- */

struct stat_want {
    peer_server *s;
    const char *name;
    uint64_t want;
};

static bool stat_is(void *arg)
{
    struct stat_want *w = arg;
    return peer_stat_now(w->s, w->name) == w->want;
}

static void run_over_cluster(void)
{
    static peer_server n[3]; /* static: peer.c keeps pointers to every server started */
    const char *names[] = {"n0", "n1", "n2"};
    const char *pace[] = {"--rehome-rate", "200", NULL};
    node_start(&n[0], "n0", 0, 3, pace);
    node_start(&n[1], "n1", 1, 3, pace);
    CHECK(peer_wait_stat(&n[0], "cluster_members", 2, 5000) == 2, "n0 does not see n1");
    CHECK(peer_wait_stat(&n[1], "cluster_members", 2, 5000) == 2, "n1 does not see n0");

    /* a Login on the wrong node */
    uint64_t per2[2];
    expected(names, 2, per2);
    hb_place_member m2[2] = {{hb_place_key("n0"), 1}, {hb_place_key("n1"), 1}};
    uint32_t u = 0;
    while (hb_place_owner(u, m2, 2) != 1)
        u++;
    peer *p = peer_connect(n[0].port);
    peer_login(p, u, NULL, 0);
    Hb__Frame *f = peer_next(p, 3000);
    CHECK(f && f->body_case == HB__FRAME__BODY_REDIRECT, "login of uid %u (n1's) on n0: no Redirect", u);
    CHECK(f->redirect->port == (uint32_t)n[1].port && !strcmp(f->redirect->host, "127.0.0.1") && f->redirect->uid == u,
          "Redirect to %s:%u, n1 is 127.0.0.1:%d", f->redirect->host, f->redirect->port, n[1].port);
    CHECK(peer_closed(p, 3000), "n0 did not close after the Redirect");
    peer_close(p);
    p = peer_connect(n[1].port);
    peer_login_ok(p, u, NULL, 0);
    peer_close(p);
    PASS("uid %u logging in on n0 was redirected to its owner n1 (127.0.0.1:%d) and logged in there", u, n[1].port);

    /* hb-client connects to n0 only */
    const char *cl[] = {"--qps", "600", "--duration", "16", "--drain", "8", NULL};
    client_start(n[0].port, "run", cl);
    wait_for("all 1500 users logged in on 2 nodes", all_logged_in, NULL, 15000);
    for (int i = 0; i < 2; i++) {
        struct stat_want w = {&n[i], "active", per2[i]};
        wait_for("2-node placement", stat_is, &w, 5000);
    }
    /* The client learns the list from its first logins and connects the
     * other users straight to their owners: without it, every user that n0
     * does not own (about half) is redirected. */
    uint64_t redirects = cstat("redirects");
    CHECK(redirects < USERS / 20, "%llu redirects for %d users through one entry node: the member list is not used",
          (unsigned long long)redirects, USERS);
    CHECK(cstat("members_lists") >= 1 && cstat("direct_connects") >= USERS * 9 / 10,
          "member lists %llu, direct connects %llu", (unsigned long long)cstat("members_lists"),
          (unsigned long long)cstat("direct_connects"));
    PASS("hb-client connecting through n0 only: %llu redirects for %d users (< 5%%), %llu connects straight to the "
         "owner, every user on its owner (n0 %llu, n1 %llu users, as placed)",
         (unsigned long long)redirects, USERS, (unsigned long long)cstat("direct_connects"),
         (unsigned long long)per2[0], (unsigned long long)per2[1]);

    /* n2 joins: a third of the users move to it, paced */
    uint64_t per3[3];
    expected(names, 3, per3);
    int64_t t0 = now_ms();
    node_start(&n[2], "n2", 2, 3, pace);
    /* Watch the moves: when the first and the last were counted. */
    int64_t first = 0, last = 0, end = now_ms() + 20000;
    uint64_t rehomed = 0;
    for (;;) {
        uint64_t r = peer_stat_now(&n[0], "rehomed") + peer_stat_now(&n[1], "rehomed");
        if (r && !first)
            first = now_ms();
        if (r != rehomed)
            last = now_ms();
        rehomed = r;
        bool placed = true;
        for (int i = 0; i < 3; i++)
            placed = placed && peer_stat_now(&n[i], "active") == per3[i];
        if (placed)
            break;
        CHECK(now_ms() < end, "3-node placement after the join: not within 20 s (n2 has %llu of %llu)",
              (unsigned long long)peer_stat_now(&n[2], "active"), (unsigned long long)per3[2]);
        usleep(50000);
    }
    int64_t took = now_ms() - t0;
    CHECK(rehomed >= per3[2] * 9 / 10 && rehomed <= per3[2], "rehomed %llu, n2 owns %llu",
          (unsigned long long)rehomed, (unsigned long long)per3[2]);
    /* 200/s into n2 from n0 and n1 together: the moves take about rehomed/200 s;
     * unpaced, they all happen within one 100 ms tick */
    int64_t span = last - first, floor_ms = (int64_t)rehomed * 1000 / 200 * 7 / 10;
    CHECK(span >= floor_ms, "%llu sessions moved within %lld ms: faster than the pace (%lld ms at least)",
          (unsigned long long)rehomed, (long long)span, (long long)floor_ms);
    PASS("n2 joined: %llu sessions rehomed from n0 and n1 over %lld ms (paced at 200/s into n2, cluster-wide), every user on its "
         "owner %lld ms after the start (n0 %llu, n1 %llu, n2 %llu)",
         (unsigned long long)rehomed, (long long)span, (long long)took, (unsigned long long)per3[0],
         (unsigned long long)per3[1], (unsigned long long)per3[2]);

    int rc = client_wait(60000);
    CHECK(rc == 0, "hb-client exited with %d", rc);
    CHECK(cstat("redirect_loops") == 0, "redirect loops in a consistent cluster: %llu",
          (unsigned long long)cstat("redirect_loops"));
    for (int i = 0; i < 3; i++)
        peer_server_stop(&n[i]);

    /* the three journals are one run */
    char cmd[2048], ledger[160];
    snprintf(ledger, sizeof ledger, "%s/run.ledger", dir);
    snprintf(cmd, sizeof cmd,
             "%s/hb-reconcile --expect-all-won --expect-all-opened --journal %s --server-stats %s --journal %s "
             "--server-stats %s --journal %s --server-stats %s %s > %s/reconcile.out 2>&1",
             getenv("HB_BIN"), n[0].journal, n[0].stats, n[1].journal, n[1].stats, n[2].journal, n[2].stats, ledger,
             dir);
    rc = system(cmd);
    char out[4096] = "", path[160];
    snprintf(path, sizeof path, "%s/reconcile.out", dir);
    FILE *o = fopen(path, "r");
    size_t got = o ? fread(out, 1, sizeof out - 1, o) : 0;
    out[got] = 0;
    if (o)
        fclose(o);
    CHECK(rc == 0, "hb-reconcile of the 3 journals failed:\n%s", out);
    const char *ok = strstr(out, "LEDGER OK");
    PASS("3 nodes' journals, counters and the client's ledger reconcile as one run: %.*s", ok ? (int)strcspn(ok, "\n") : 0,
         ok ? ok : "");
}

/* ---- 4. a redirect loop is bounded ---------------------------------------------------- */

static void redirect_loop(void)
{
    static peer_server a, b;
    const char *pa[] = {"--cluster-pin", "p1", "--total", "0", "--send-total", "0", NULL};
    const char *pb[] = {"--cluster-pin", "p0", "--total", "0", "--send-total", "0", NULL};
    node_start(&a, "p0", 0, 2, pa);
    node_start(&b, "p1", 1, 2, pb);
    CHECK(peer_wait_stat(&a, "cluster_members", 1, 5000) == 1, "p0 does not see p1");
    CHECK(peer_wait_stat(&b, "cluster_members", 1, 5000) == 1, "p1 does not see p0");
    const char *cl[] = {"--qps", "0", "--duration", "5", "--drain", "0", "--uid-to", "50", NULL};
    client_start(a.port, "loop", cl);
    int rc = client_wait(30000);
    CHECK(rc == 0, "hb-client exited with %d", rc);
    uint64_t redirects = cstat("redirects"), loops = cstat("redirect_loops"), logins = cstat("logins");
    CHECK(logins == 0, "%llu logins where every node sends users elsewhere", (unsigned long long)logins);
    CHECK(loops > 0, "no redirect loop counted");
    CHECK(redirects <= 3 * (loops + 50), "%llu redirects for %llu loops: more than 3 in a row",
          (unsigned long long)redirects, (unsigned long long)loops);
    /* back-off from 100 ms up to 1 s: each user loops at most ~5 s / 0.1 s times, usually far fewer */
    CHECK(loops <= 50 * 50, "%llu loops of 50 users in 5 s: not backing off", (unsigned long long)loops);
    PASS("two nodes pinned to each other (a stale list): 50 users made %llu redirects in %llu bounded loops in 5 s, "
         "0 logins",
         (unsigned long long)redirects, (unsigned long long)loops);
    peer_server_stop(&a);
    peer_server_stop(&b);
}

/* ---- 5. a node dies ------------------------------------------------------------------------- */

static bool survivors_hold_all(void *arg)
{
    peer_server *n = arg;
    return peer_stat_now(&n[0], "active") + peer_stat_now(&n[1], "active") == USERS && cstat("active") == USERS;
}

/* Three nodes without packets, each seeing all three. */
static void three_nodes(peer_server *n, const char *const *names)
{
    const char *none[] = {"--total", "0", "--send-total", "0", NULL};
    for (int i = 0; i < 3; i++)
        node_start(&n[i], names[i], i, 3, none);
    for (int i = 0; i < 3; i++)
        CHECK(peer_wait_stat(&n[i], "cluster_members", 3, 5000) == 3, "%s does not see 3 members", names[i]);
}

static void node_killed(void)
{
    static peer_server n[3];
    const char *names[] = {"k0", "k1", "k2"};
    three_nodes(n, names);
    const char *cl[] = {"--qps", "0", "--duration", "40", NULL};
    client_start(n[0].port, "kill", cl);
    wait_for("all users logged in on 3 nodes", all_logged_in, NULL, 15000);
    uint64_t on2 = peer_stat_now(&n[2], "active");
    usleep(1200000); /* the stats file is written once a second: counts from before the kill */
    uint64_t r0 = cstat("redirects"), c0 = cstat("connects"), l0 = cstat("logins");
    int64_t t0 = now_ms();
    peer_server_kill(&n[2]);
    wait_for("k2's users on the survivors", survivors_hold_all, n, 10000);
    int64_t took = now_ms() - t0;
    usleep(1200000);
    uint64_t dr = cstat("redirects") - r0, dc = cstat("connects") - c0, dl = cstat("logins") - l0;
    /* Leaving a dead node at once: its users wait (parked) until the
     * survivors have dropped it, then each connects once, straight to its
     * new owner.  Without the member list each one knocks at the dead
     * address, goes to k0, is redirected and logs in again (2-3 connects). */
    CHECK(dl >= on2, "%llu logins after the kill, k2 held %llu users", (unsigned long long)dl, (unsigned long long)on2);
    CHECK(dr <= on2 / 20, "%llu redirects after the kill of a node with %llu users (suspicions %llu, deferred %llu, "
          "lists %llu, moved %llu, %lld ms)",
          (unsigned long long)dr, (unsigned long long)on2, (unsigned long long)cstat("suspects"),
          (unsigned long long)cstat("redirects_deferred"), (unsigned long long)cstat("members_lists"),
          (unsigned long long)cstat("moved"), (long long)took);
    CHECK(dc * 10 <= on2 * 13,
          "%llu connects to relog %llu users: %.2f per user, want about 1 (suspicions %llu, deferred %llu, lists %llu, "
          "lagging %llu, failed connects %llu, %lld ms)",
          (unsigned long long)dc, (unsigned long long)on2, (double)dc / (double)on2,
          (unsigned long long)cstat("suspects"), (unsigned long long)cstat("redirects_deferred"),
          (unsigned long long)cstat("members_lists"), (unsigned long long)cstat("members_lagging"),
          (unsigned long long)cstat("connect_fail"), (long long)took);
    PASS("k2 killed with %llu users: all %d users logged in on k0 and k1 %lld ms later; %llu connects (%.2f per "
         "relogged user), %llu logins, %llu redirects after the kill, %llu suspicions, %llu redirects to k2 deferred",
         (unsigned long long)on2, USERS, (long long)took, (unsigned long long)dc, (double)dc / (double)on2,
         (unsigned long long)dl, (unsigned long long)dr, (unsigned long long)cstat("suspects"),
         (unsigned long long)cstat("redirects_deferred"));
    spawn_stop(&client_pid, SIGTERM, 5000);

    /* Redis stalls (SIGSTOP) for longer than the TTL: nobody could refresh,
     * so nobody has left; before the script counted only time Redis served,
     * the first node through saw itself alone (a flap: every user moves). */
    uint64_t g0 = peer_stat_now(&n[0], "cluster_gen"), g1 = peer_stat_now(&n[1], "cluster_gen");
    CHECK(kill(redis.pid, SIGSTOP) == 0, "cannot stop redis-server");
    usleep(4500000); /* --cluster-ttl is 3 s */
    kill(redis.pid, SIGCONT);
    usleep(3000000);
    CHECK(peer_stat_now(&n[0], "cluster_gen") == g0 && peer_stat_now(&n[1], "cluster_gen") == g1 &&
              peer_stat_now(&n[0], "cluster_members") == 2 && peer_stat_now(&n[1], "cluster_members") == 2,
          "a 4.5 s Redis stall changed the member lists: k0 generation %llu -> %llu, k1 %llu -> %llu",
          (unsigned long long)g0, (unsigned long long)peer_stat_now(&n[0], "cluster_gen"), (unsigned long long)g1,
          (unsigned long long)peer_stat_now(&n[1], "cluster_gen"));
    PASS("Redis stalled 4.5 s (SIGSTOP, TTL 3 s): no member dropped (generations %llu and %llu kept)",
         (unsigned long long)g0, (unsigned long long)g1);

    /* Redis goes away: the nodes serve on with what they hold, count their
     * reconnects, log it once; when it is back they register again. */
    tredis_stop(&redis, SIGTERM, 3000);
    CHECK(peer_wait_stat(&n[0], "cluster_reconnects", 3, 8000) >= 3, "k0 does not retry Redis");
    CHECK(peer_stat_now(&n[0], "cluster_redis_up") == 0, "k0 thinks Redis is up");
    CHECK(peer_stat_now(&n[0], "cluster_members") == 2, "k0's member list changed while Redis was away");
    hb_place_member m2[2] = {{hb_place_key("k0"), 1}, {hb_place_key("k1"), 1}};
    uint32_t u = 0;
    while (hb_place_owner(u, m2, 2) != 0)
        u++;
    peer *p = peer_connect(n[0].port);
    peer_login_ok(p, u, NULL, 0);
    peer_close(p);
    char cmd[512];
    /* once for the stall above, once for this loss: not once per retry */
    snprintf(cmd, sizeof cmd, "test $(grep -c 'unreachable' %s) -eq 2", n[0].log);
    CHECK(system(cmd) == 0, "k0 did not log each loss of Redis exactly once (see %s)", n[0].log);
    uint64_t tries = peer_stat_now(&n[0], "cluster_reconnects");
    tredis_restart(&redis);
    CHECK(peer_wait_stat(&n[0], "cluster_redis_up", 1, 8000) == 1, "k0 did not get back to Redis");
    CHECK(peer_wait_stat(&n[0], "cluster_members", 2, 5000) == 2, "k0 does not see k1 again");
    snprintf(cmd, sizeof cmd, "grep -q 'is back after' %s", n[0].log);
    CHECK(system(cmd) == 0, "k0 did not log Redis coming back");
    PASS("Redis stopped: k0 served a login with its last member list, logged the loss once, retried %llu times; "
         "Redis back: registered again, 2 members",
         (unsigned long long)tries);
    peer_server_stop(&n[0]);
    peer_server_stop(&n[1]);
}

/* ---- 6. a shake is retried only on the node it was sent to ------------------------- */

static uint64_t killed_at; /* held_retry(): the client's stats second when h1 was killed */

/* Everyone on node arg, by a client stats file written after the kill (one
 * a second: h1's users are on h0 about 0.1 s after its death is proven, so
 * the file before it still says everyone is active). */
static bool all_on(void *arg)
{
    return peer_stat_now(arg, "active") == USERS && cstat("second") > killed_at + 1 && cstat("active") == USERS;
}

static peer_server *home; /* held_retry(): the node the held shakes went to */

static bool held_answered(void *arg)
{
    (void)arg;
    uint64_t r = cstat("retries");
    return r > 0 && peer_stat_now(home, "retries") == r;
}

static void held_retry(void)
{
    static peer_server n[3];
    const char *none[] = {"--total", "0", "--send-total", "0", NULL};
    node_start(&n[0], "h0", 0, 2, none);
    node_start(&n[1], "h1", 1, 2, none);
    for (int i = 0; i < 2; i++)
        CHECK(peer_wait_stat(&n[i], "cluster_members", 2, 5000) == 2, "h%d does not see 2 members", i);
    const char *cl[] = {"--qps", "1500", "--duration", "60", NULL};
    client_start(n[0].port, "held", cl);
    wait_for("all users logged in on 2 nodes", all_logged_in, NULL, 15000);
    /* Frozen, h1 reads nothing: every shake its users send for 1.5 s stays
     * unanswered; then it dies with them. */
    kill(n[1].pid, SIGSTOP);
    usleep(1500000);
    killed_at = cstat("second");
    peer_server_kill(&n[1]);
    wait_for("h1's users on h0", all_on, &n[0], 15000);
    uint64_t held = cstat("retries_held");
    CHECK(held >= 100, "only %llu shakes held after h1 died with its users' shakes unanswered",
          (unsigned long long)held);
    CHECK(peer_stat_now(&n[0], "retries") == 0,
          "h0 was asked %llu retries of shakes sent to h1: it could grant a second packet for one shake",
          (unsigned long long)peer_stat_now(&n[0], "retries"));
    /* h1 back (same node, same index): its users go home and ask there. */
    node_start(&n[2], "h1", 1, 2, none);
    home = &n[2];
    wait_for("the held shakes retried on h1 and answered", held_answered, NULL, 20000);
    CHECK(peer_stat_now(&n[0], "retries") == 0, "h0 was asked a retry");
    PASS("h1 frozen then killed: %llu shakes held while its users were on h0 (h0 asked 0 retries); h1 back: "
         "%llu retries, all on h1",
         (unsigned long long)held, (unsigned long long)cstat("retries"));
    spawn_stop(&client_pid, SIGTERM, 5000);
    peer_server_stop(&n[0]);
    peer_server_stop(&n[2]);
}

/* ---- 7. a frozen node's users are moved by the client ----------------------------- */

static bool frozen_moved(void *arg)
{
    peer_server *n = arg;
    return peer_stat_now(&n[0], "active") + peer_stat_now(&n[1], "active") == USERS;
}

static uint64_t f2_share;

static bool frozen_home(void *arg)
{
    peer_server *n = arg;
    return peer_stat_now(&n[2], "active") == f2_share && cstat("active") == USERS &&
           peer_stat_now(&n[0], "active") + peer_stat_now(&n[1], "active") == USERS - f2_share;
}

static void node_frozen(void)
{
    static peer_server n[3];
    const char *names[] = {"f0", "f1", "f2"};
    three_nodes(n, names);
    const char *cl[] = {"--qps", "0", "--duration", "60", "--threads", "1", NULL};
    client_start(n[0].port, "frozen", cl);
    wait_for("all users logged in on 3 nodes", all_logged_in, NULL, 15000);
    uint64_t per3[3];
    expected(names, 3, per3);
    f2_share = per3[2];
    CHECK(peer_stat_now(&n[2], "active") == f2_share, "f2 holds %llu users, owns %llu",
          (unsigned long long)peer_stat_now(&n[2], "active"), (unsigned long long)f2_share);
    /* Frozen: its sockets stay open, its users notice nothing; it misses
     * its refreshes and the survivors drop it after its TTL (3 s). */
    kill(n[2].pid, SIGSTOP);
    int64_t t0 = now_ms();
    for (int i = 0; i < 2; i++) {
        struct stat_want w = {&n[i], "cluster_members", 2};
        wait_for("the survivors drop the frozen f2", stat_is, &w, 8000);
    }
    int64_t dropped = now_ms() - t0;
    /* The client learns the new list at a login of any of its users: a
     * peer logs in as one of f0's users, replacing its session; the user
     * logs in again and its LoginOk brings the 2-member list. */
    hb_place_member m2[2] = {{hb_place_key("f0"), 1}, {hb_place_key("f1"), 1}}, m3[3];
    for (int i = 0; i < 3; i++)
        m3[i] = (hb_place_member){hb_place_key(names[i]), 1};
    uint32_t u = 0;
    while (hb_place_owner(u, m2, 2) != 0 || hb_place_owner(u, m3, 3) != 0)
        u++;
    peer *p = peer_connect(n[0].port);
    peer_login_ok(p, u, NULL, 0);
    peer_close(p);
    int64_t t1 = now_ms();
    wait_for("the frozen f2's users moved to f0 and f1", frozen_moved, n, 10000);
    int64_t took = now_ms() - t1;
    usleep(1100000);
    uint64_t moved = cstat("moved");
    CHECK(moved >= f2_share, "%llu sessions moved, f2 held %llu", (unsigned long long)moved,
          (unsigned long long)f2_share);
    PASS("f2 frozen (SIGSTOP) with %llu users: dropped by the survivors after %lld ms; one login brought the client "
         "the new list and it moved f2's users to f0 and f1 within %lld ms (%llu moved), f2 still stopped",
         (unsigned long long)f2_share, (long long)dropped, (long long)took, (unsigned long long)moved);
    kill(n[2].pid, SIGCONT);
    t1 = now_ms();
    wait_for("f2's users home again", frozen_home, n, 20000);
    PASS("f2 continued: its %llu users home again %lld ms later (rehomed by f0 and f1)",
         (unsigned long long)f2_share, (long long)(now_ms() - t1));
    spawn_stop(&client_pid, SIGTERM, 5000);
    for (int i = 0; i < 3; i++)
        peer_server_stop(&n[i]);
}

/* ---- 8. standbys: a dead node's users promoted, not reconnected --------------------------------- */

static bool standbys_held(void *arg)
{
    peer_server *n = arg;
    uint64_t held = 0;
    for (int i = 0; i < 3; i++)
        held += peer_stat_now(&n[i], "standby");
    return all_logged_in(NULL) && cstat("standby") == USERS && held == USERS;
}

static void standby_promoted(void)
{
    static peer_server n[3];
    const char *names[] = {"b0", "b1", "b2"};
    three_nodes(n, names);

    /* A standby is no session: it may not shake, and the uid's session stays where it is. */
    hb_place_member m3[3];
    for (int i = 0; i < 3; i++)
        m3[i] = (hb_place_member){hb_place_key(names[i]), 1.0};
    int second;
    uint32_t u = 0;
    while (hb_place_top2(u, m3, 3, &second) != 0 || second != 1)
        u++;
    peer *own = peer_connect(n[0].port);
    peer_login_ok(own, u, NULL, 0);
    peer *sb = peer_connect(n[1].port);
    Hb__Login l = HB__LOGIN__INIT;
    l.uid = u;
    l.standby = true;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_LOGIN;
    f.login = &l;
    peer_send(sb, &f);
    Hb__Frame *ok = peer_expect(sb, HB__FRAME__BODY_LOGIN_OK, 3000);
    CHECK(ok && ok->login_ok->standby, "no LoginOk{standby} from b1 for uid %u (b1 owns it? %d)", u, second);
    peer_shake(sb, 1, false);
    Hb__Frame *e = peer_expect(sb, HB__FRAME__BODY_ERROR, 3000);
    CHECK(e && e->error->code == HB__ERROR_CODE__ERR_NOT_LOGGED_IN, "a standby's shake was not refused");
    peer_shake(own, 2, false);
    CHECK(peer_expect(own, HB__FRAME__BODY_SHAKE_REPLY, 3000), "the session on b0 lost its shake to the standby");
    peer_close(sb);
    peer_close(own);
    PASS("a standby login on the runner-up is answered LoginOk{standby}; its shake is refused, the session's "
         "is answered");

    const char *cl[] = {"--qps", "0", "--duration", "60", "--standby", NULL};
    client_start(n[0].port, "standby", cl);
    wait_for("all users logged in with a standby each", standbys_held, n, 20000);
    uint64_t on2 = peer_stat_now(&n[2], "active");
    usleep(1200000); /* counts from before the kill */
    uint64_t c0 = cstat("connects"), p0 = cstat("promoted"), s0 = cstat("standby_logins");
    int64_t t0 = now_ms();
    peer_server_kill(&n[2]);
    wait_for("b2's users on the survivors", survivors_hold_all, n, 10000);
    int64_t took = now_ms() - t0;
    usleep(1200000);
    uint64_t dc = cstat("connects") - c0, dp = cstat("promoted") - p0, ds = cstat("standby_logins") - s0;
    uint64_t sp = peer_stat_now(&n[0], "promoted") + peer_stat_now(&n[1], "promoted");
    /* Without standbys each of b2's users connects and logs in again (test
     * 5: about one connect each); with them, b0 and b1 promote what they
     * hold and the client only counts. */
    CHECK(dp * 10 >= on2 * 9 && sp >= dp,
          "%llu of b2's %llu users promoted by the client's count, %llu by the survivors' (%lld ms, %llu connects)",
          (unsigned long long)dp, (unsigned long long)on2, (unsigned long long)sp, (long long)took,
          (unsigned long long)dc);
    CHECK(dc * 4 <= on2, "%llu connects after the kill for %llu users (%llu promoted): want few",
          (unsigned long long)dc, (unsigned long long)on2, (unsigned long long)dp);
    /* The standbys promoted and those lost with b2 come back only after the
     * recovery (15 s on): none in its seconds. */
    CHECK(ds == 0, "%llu standbys made again within %lld ms of the kill: they must wait out the recovery",
          (unsigned long long)ds, (long long)(now_ms() - t0));
    PASS("b2 killed with %llu users: all %d logged in on b0 and b1 %lld ms later, %llu of them promoted standbys "
         "(%llu connects meanwhile, standby waits %llu, no standby made again yet)",
         (unsigned long long)on2, USERS, (long long)took, (unsigned long long)dp, (unsigned long long)dc,
         (unsigned long long)cstat("standby_waits"));
    spawn_stop(&client_pid, SIGTERM, 5000);
    peer_server_stop(&n[0]);
    peer_server_stop(&n[1]);
}

/* ---- 9. a flapping node's users wait for --flap-hold ------------------------------------------ */

static void members_are(peer_server *n, int k, uint64_t want, const char *what)
{
    for (int i = 0; i < k; i++) {
        struct stat_want w = {&n[i], "cluster_members", want};
        wait_for(what, stat_is, &w, 8000);
    }
}

static uint64_t promoted_on(peer_server *n, int k)
{
    uint64_t p = 0;
    for (int i = 0; i < k; i++)
        p += peer_stat_now(&n[i], "promoted");
    return p;
}

#define FLAP_HOLD_MS 4000

static void flap_held(void)
{
    static peer_server n[3];
    const char *names[] = {"q0", "q1", "q2"};
    const char *fast[] = {"--total", "0", "--send-total", "0", "--cluster-ttl", "1500", "--flap-hold", "4000", NULL};
    for (int i = 0; i < 3; i++)
        node_start(&n[i], names[i], i, 3, fast);
    members_are(n, 3, 3, "q0..q2 see 3 members");
    /* q2 leaves (frozen past the TTL) and comes back: its next leave is a flap. */
    kill(n[2].pid, SIGSTOP);
    members_are(n, 2, 2, "the survivors drop the frozen q2");
    kill(n[2].pid, SIGCONT);
    members_are(n, 2, 3, "q2 back");

    const char *cl[] = {"--qps", "0", "--duration", "60", "--standby", NULL};
    client_start(n[0].port, "flap", cl);
    wait_for("all users logged in with a standby each", standbys_held, n, 20000);
    uint64_t on2 = peer_stat_now(&n[2], "active");
    uint64_t p0 = promoted_on(n, 2);

    kill(n[2].pid, SIGSTOP);
    members_are(n, 2, 2, "the survivors drop q2 again");
    int64_t t0 = now_ms();
    usleep((FLAP_HOLD_MS / 2) * 1000);
    uint64_t held = promoted_on(n, 2) - p0;
    CHECK(peer_stat_now(&n[0], "cluster_flaps") >= 1, "q0 did not count q2's leave as a flap");
    CHECK(held == 0, "%llu of q2's %llu users promoted %lld ms after the survivors dropped it: within --flap-hold %d",
          (unsigned long long)held, (unsigned long long)on2, (long long)(now_ms() - t0), FLAP_HOLD_MS);
    kill(n[2].pid, SIGCONT);
    members_are(n, 2, 3, "q2 back again");
    while (now_ms() < t0 + FLAP_HOLD_MS + 1000)
        usleep(100000);
    held = promoted_on(n, 2) - p0;
    CHECK(held == 0 && peer_stat_now(&n[2], "active") == on2,
          "q2 came back within the hold, yet %llu promoted and q2 holds %llu of its %llu users",
          (unsigned long long)held, (unsigned long long)peer_stat_now(&n[2], "active"), (unsigned long long)on2);
    PASS("q2 (%llu users) left again soon after it came back: a flap; it was back within --flap-hold %d ms and "
         "none of its users moved",
         (unsigned long long)on2, FLAP_HOLD_MS);

    /* Dead this time: the hold only delays the promotions. */
    p0 = promoted_on(n, 2);
    int64_t t1 = now_ms();
    peer_server_kill(&n[2]);
    members_are(n, 2, 2, "the survivors drop the killed q2");
    int64_t dropped = now_ms() - t1;
    wait_for("q2's users on the survivors", survivors_hold_all, n, FLAP_HOLD_MS + 8000);
    int64_t took = now_ms() - t1;
    usleep(300000);
    uint64_t dp = promoted_on(n, 2) - p0;
    CHECK(dp * 10 >= on2 * 9, "%llu of q2's %llu users promoted after the hold", (unsigned long long)dp,
          (unsigned long long)on2);
    CHECK(took - dropped >= FLAP_HOLD_MS - 500, "q2's users were on the survivors %lld ms after it was dropped: "
          "before the hold (%d ms) ended", (long long)(took - dropped), FLAP_HOLD_MS);
    PASS("q2 killed while flapping: dropped after %lld ms, its users promoted (%llu) after the hold, all on q0 and "
         "q1 %lld ms after the kill",
         (long long)dropped, (unsigned long long)dp, (long long)took);
    spawn_stop(&client_pid, SIGTERM, 5000);
    peer_server_stop(&n[0]);
    peer_server_stop(&n[1]);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup);
    CHECK(mkdtemp(dir), "mkdtemp");
    tredis_start(&redis, dir, "hb-test-pw", false);
    wrong_password();
    run_over_cluster();
    redirect_loop();
    node_killed();
    held_retry();
    node_frozen();
    standby_promoted();
    flap_held();
    cleanup();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    printf("cluster: all checks passed\n");
    return 0;
}
