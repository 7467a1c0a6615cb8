/* cluster_msgs (issue 15 item 4): messages between nodes through Redis
 * Streams.  A redis-server this test starts (127.0.0.1, a free port, a temp
 * dir, a password, appendonly with a sync per write) and hb-server nodes on
 * loopback:
 *   1. receiving node restarted: node a (pinned to b: every uid is b's) makes
 *      send packets while b is down; b restarts, reads its stream, parks the
 *      notices; the recipients log in on b, get them, open them: each Open
 *      goes to a (the packet's band), is paid once (OPEN_OK), and its reply
 *      comes back; an Open again is OPEN_ALREADY with the same share;
 *   2. Redis restarted (SIGKILL, AOF): a's next cycle is XADDed while b is
 *      down, Redis is killed and restarted from its AOF, b restarts: the
 *      notices arrive, the opens pay once; an unopened share is told again
 *      across nodes (renotify); both journals reconcile (exit 0);
 *   3. three unpinned nodes: a chat from a user of n0 to a user of n1
 *      arrives; hb-client over the 3 nodes with send flow (recipients on
 *      every node) reconciles with the 3 journals (hb-reconcile exit 0); the
 *      Redis commands per notice and per open are printed (per shake: 0). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "ledgerfile.h"
#include "money.h"
#include "peer.h"
#include "placement.h"
#include "spawn.h"
#include "tredis.h"

static char dir[64] = "/tmp/hb-xmsg.XXXXXX";
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

/* Node `name`, index i of n, with `base` flags then `extra`, on `port` (0:
 * any free one).  A node restarted while its registration is still live
 * must come back at the same address: another description under its name
 * is another node, refused (server/cluster.c). */
static void node_start_at(peer_server *s, int port, const char *name, int i, int n, const char *const *base,
                          const char *const *extra)
{
    static char idx[8][16], nn[8][16];
    static int k;
    k = (k + 1) % 8;
    snprintf(idx[k], sizeof idx[k], "%d", i);
    snprintf(nn[k], sizeof nn[k], "%d", n);
    const char *flags[64] = {"--cluster", redis.url, "--node", name, "--node-index", idx[k], "--nodes", nn[k],
                             "--redis-password-file", redis.pwfile, "--stats-every", "200"};
    int m = 12;
    for (int e = 0; base && base[e] && m < 62; e++)
        flags[m++] = base[e];
    for (int e = 0; extra && extra[e] && m < 62; e++)
        flags[m++] = extra[e];
    flags[m] = NULL;
    peer_server_start_at(s, port, 1, flags);
}

static void node_start(peer_server *s, const char *name, int i, int n, const char *const *base,
                       const char *const *extra)
{
    node_start_at(s, 0, name, i, n, base, extra);
}

static int reconcile(const char *tag, const peer_server *const *n, int k, const char *ledger)
{
    char cmd[4096], out[8192] = "", path[192];
    int off = snprintf(cmd, sizeof cmd, "%s/hb-reconcile --expect-all-opened", getenv("HB_BIN"));
    for (int i = 0; i < k; i++)
        off += snprintf(cmd + off, sizeof cmd - (size_t)off, " --journal %s --server-stats %s", n[i]->journal,
                        n[i]->stats);
    snprintf(path, sizeof path, "%s/%s.reconcile", dir, tag);
    snprintf(cmd + off, sizeof cmd - (size_t)off, " %s > %s 2>&1", ledger ? ledger : "", path);
    int rc = system(cmd);
    FILE *o = fopen(path, "r");
    size_t got = o ? fread(out, 1, sizeof out - 1, o) : 0;
    out[got] = 0;
    if (o)
        fclose(o);
    rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    CHECK(rc == 0, "hb-reconcile (%s) exited %d:\n%s", tag, rc, out);
    const char *ok = strstr(out, "LEDGER OK");
    printf("   %s: %.*s\n", tag, ok ? (int)strcspn(ok, "\n") : 0, ok ? ok : "");
    return rc;
}

/* ---- 1 and 2: a and b, every uid b's ---------------------------------------------------- */

#define USERS 4
#define PER_CYCLE 4 /* a's send packets per cycle: --send-total 8 over 2 nodes */

typedef struct seen {
    uint64_t id;
    uint32_t uid, share, notices;
    bool opened;
} seen;
static seen pk[64];
static int npk;

static seen *pk_of(uint64_t id)
{
    for (int i = 0; i < npk; i++)
        if (pk[i].id == id)
            return &pk[i];
    CHECK(npk < 64, "too many packets");
    pk[npk] = (seen){.id = id};
    return &pk[npk++];
}

/* Notice f came to user u. */
static seen *noted(const Hb__Frame *f, uint32_t u)
{
    seen *s = pk_of(f->notice->packet_id);
    s->uid = u;
    s->notices++;
    return s;
}

/* Collect notices on the 4 connections until `want` packets of band 1 (a's)
 * were noticed, opening each once as it comes; all within ms. */
static int collect_and_open(peer **p, int want, int ms, bool open_now)
{
    int64_t end = now_ms() + ms;
    int got = 0;
    for (;;) {
        got = 0;
        for (int i = 0; i < npk; i++)
            got += hb_id_band(pk[i].id) == 1 && (pk[i].opened || !open_now) && pk[i].notices;
        if (got >= want || now_ms() >= end)
            return got;
        for (uint32_t u = 0; u < USERS; u++) {
            Hb__Frame *f;
            while ((f = peer_next(p[u], 50))) {
                if (f->body_case == HB__FRAME__BODY_NOTICE) {
                    seen *s = noted(f, u);
                    if (open_now && !s->opened)
                        peer_open(p[u], s->id);
                } else if (f->body_case == HB__FRAME__BODY_OPEN_REPLY) {
                    seen *s = pk_of(f->open_reply->packet_id);
                    CHECK(f->open_reply->status == HB__OPEN_STATUS__OPEN_OK, "packet %llu: first open answered %d",
                          (unsigned long long)s->id, f->open_reply->status);
                    CHECK(!s->opened, "packet %llu paid twice", (unsigned long long)s->id);
                    CHECK(f->open_reply->share > 0, "packet %llu: a share of 0", (unsigned long long)s->id);
                    s->opened = true;
                    s->share = f->open_reply->share;
                }
            }
        }
    }
}

/* Open every collected packet of a's band again: OPEN_ALREADY, the same
 * share.  Notices that come meanwhile are noted, not skipped: b's own
 * (band 2) are opened only at the end, and a notice lost here was a share
 * nobody opened (the reconcile's complaint). */
static void open_again(peer **p)
{
    for (int i = 0; i < npk; i++) {
        if (hb_id_band(pk[i].id) != 1 || !pk[i].opened)
            continue;
        peer_open(p[pk[i].uid], pk[i].id);
        Hb__Frame *f;
        while ((f = peer_next(p[pk[i].uid], 5000)) && f->body_case == HB__FRAME__BODY_NOTICE)
            noted(f, pk[i].uid); /* one of b's own, still coming: opened at the end */
        CHECK(f && f->body_case == HB__FRAME__BODY_OPEN_REPLY && f->open_reply->packet_id == pk[i].id,
              "packet %llu: no reply to a second open", (unsigned long long)pk[i].id);
        CHECK(f->open_reply->status == HB__OPEN_STATUS__OPEN_ALREADY && f->open_reply->share == pk[i].share,
              "packet %llu opened again: status %d share %u, first share %u", (unsigned long long)pk[i].id,
              f->open_reply->status, f->open_reply->share, pk[i].share);
    }
}

static void login_all(peer **p, int port)
{
    for (uint32_t u = 0; u < USERS; u++) {
        p[u] = peer_connect(port);
        peer_login_ok(p[u], u, NULL, 0);
    }
}

static void close_all(peer **p)
{
    for (uint32_t u = 0; u < USERS; u++)
        peer_close(p[u]);
}

/* b restarted: a lists it once it serves (a restart registers as starting,
 * server/cluster.c).  Until a's list has it again, a places b's users on
 * itself and XADDs nothing: two of a's refreshes after b serves. */
static void a_lists_b(peer_server *a)
{
    uint64_t r0 = peer_stat_now(a, "cluster_refreshes");
    CHECK(peer_wait_stat(a, "cluster_refreshes", r0 + 2, 5000) >= r0 + 2, "a does not refresh its member list");
    CHECK(peer_stat_now(a, "cluster_members") == 1, "a does not list the restarted b");
}

static void two_nodes(void)
{
    static peer_server a, a2, b, b2, b3;
    /* b is down while still registered (as for the TTL after a death, or
     * across a partition): no liveness port, so nobody proves it gone early. */
    static const char *base[] = {"--sets", "1", "--users", "4", "--total", "0", "--send-total", "8",
                                 "--send-rate", "40", "--send-split", "1", "--send-amount-min", "1",
                                 "--send-amount-max", "1000", "--cluster-ttl", "60000", "--cluster-pin", "b",
                                 "--renotify", "0", "--live-port", "-1", NULL};
    /* b registers (creating its stream's group), then dies */
    node_start(&b, "b", 1, 2, base, NULL);
    CHECK(peer_wait_stat(&b, "cluster_members", 1, 5000) == 1, "b did not join");
    CHECK(peer_wait_stat(&b, "made_send", PER_CYCLE, 5000) == PER_CYCLE, "b did not make its packets");
    peer_server_kill(&b);

    /* a makes its packets: every recipient is b's */
    node_start(&a, "a", 0, 2, base, NULL);
    CHECK(peer_wait_stat(&a, "xmsg_xadd", PER_CYCLE, 8000) >= PER_CYCLE, "a did not XADD its %d notices",
          PER_CYCLE);
    PASS("b down: a made %d send packets, their notices XADDed to b's stream (%llu XADDs)", PER_CYCLE,
         (unsigned long long)peer_stat_now(&a, "xmsg_xadd"));

    /* b restarts from its journal and reads its stream */
    const char *again[] = {"--journal", b.journal, NULL};
    node_start_at(&b2, b.port, "b", 1, 2, base, again);
    a_lists_b(&a);
    peer *p[USERS];
    login_all(p, b2.port);
    int got = collect_and_open(p, PER_CYCLE, 15000, true);
    CHECK(got == PER_CYCLE, "after b's restart: %d of a's %d packets noticed and opened", got, PER_CYCLE);
    open_again(p);
    uint64_t fwd = peer_stat(&b2, "opens_remote"), served = peer_stat(&a, "xmsg_opens_served");
    CHECK(fwd >= 2 * PER_CYCLE && served >= 2 * PER_CYCLE, "opens forwarded %llu, served by a %llu",
          (unsigned long long)fwd, (unsigned long long)served);
    PASS("b restarted: a's %d notices arrived, each open forwarded to a and paid once (OPEN_OK), opened again: "
         "OPEN_ALREADY with the same share (%llu opens forwarded, %llu served by a, %llu duplicates recognised)",
         PER_CYCLE, (unsigned long long)fwd, (unsigned long long)served,
         (unsigned long long)peer_stat_now(&b2, "xmsg_duplicates"));

    /* cycle 2: XADDed while b is down, then Redis is killed and comes back from its AOF */
    close_all(p);
    peer_server_kill(&b2);
    uint64_t x0 = peer_stat_now(&a, "xmsg_xadd");
    kill(a.pid, SIGUSR1);
    CHECK(peer_wait_stat(&a, "xmsg_xadd", x0 + PER_CYCLE, 8000) >= x0 + PER_CYCLE, "a did not XADD cycle 2");
    tredis_stop(&redis, SIGKILL, 1000);
    tredis_restart(&redis);
    CHECK(peer_wait_stat(&a, "cluster_redis_up", 1, 8000) == 1, "a did not get back to Redis");
    node_start_at(&b3, b.port, "b", 1, 2, base, again);
    a_lists_b(&a);
    kill(b3.pid, SIGUSR1); /* b's cycle 2 too: both journals have 2 cycles */
    login_all(p, b3.port);
    got = collect_and_open(p, 2 * PER_CYCLE, 15000, true);
    CHECK(got == 2 * PER_CYCLE, "after Redis and b restarted: %d of a's %d packets noticed and opened", got,
          2 * PER_CYCLE);
    open_again(p);
    PASS("Redis killed and restarted from its AOF, b restarted: a's cycle-2 notices arrived, each open paid once, "
         "opened again OPEN_ALREADY (a: %llu XADDs, %llu failed and retried)",
         (unsigned long long)peer_stat_now(&a, "xmsg_xadd"), (unsigned long long)peer_stat_now(&a, "xmsg_xadd_failed"));

    /* renotify across nodes (off so far, so that every notice above came
     * through the stream, not a re-notice): a restarts with --renotify 2; a
     * packet of its cycle 3 left unopened is told again */
    for (int i = 0; i < npk; i++)
        CHECK(pk[i].notices == 1, "packet %llu noticed %u times with --renotify 0", (unsigned long long)pk[i].id,
              pk[i].notices);
    peer_server_stop(&a);
    const char *again_a[] = {"--journal", a.journal, "--renotify", "2", NULL};
    node_start(&a2, "a", 0, 2, base, again_a);
    int before = npk;
    kill(a2.pid, SIGUSR1);
    kill(b3.pid, SIGUSR1);
    collect_and_open(p, 3 * PER_CYCLE, 8000, false);
    uint32_t most = 0;
    int64_t end = now_ms() + 10000;
    while (most < 2 && now_ms() < end) {
        collect_and_open(p, 99, 300, false);
        for (int i = before; i < npk; i++)
            if (hb_id_band(pk[i].id) == 1 && pk[i].notices > most)
                most = pk[i].notices;
    }
    CHECK(most >= 2, "no cross-node renotify of an unopened share within 10 s");
    got = collect_and_open(p, 3 * PER_CYCLE, 15000, true);
    CHECK(got == 3 * PER_CYCLE, "cycle 3: %d of %d opened", got, 3 * PER_CYCLE);
    PASS("an unopened share of a's is told again on b (renotify across nodes: %u notices), then opened once", most);

    /* every open of b's own packets (local) too, so the reconcile expects all opened */
    for (uint32_t u = 0; u < USERS; u++) {
        Hb__Frame *f;
        while ((f = peer_next(p[u], 50)))
            ;
    }
    for (int i = 0; i < npk; i++)
        if (hb_id_band(pk[i].id) == 2) {
            peer_open(p[pk[i].uid], pk[i].id);
            Hb__Frame *f = peer_expect(p[pk[i].uid], HB__FRAME__BODY_OPEN_REPLY, 5000);
            CHECK(f && f->open_reply->share, "b's packet %llu: no open reply with a share", (unsigned long long)pk[i].id);
            pk[i].share = f->open_reply->share;
            pk[i].opened = true;
        }
    close_all(p);
    peer_server_stop(&a2);
    peer_server_stop(&b3);
    /* what the test's users were paid, as a client ledger */
    char ledger[160];
    snprintf(ledger, sizeof ledger, "%s/ab.ledger", dir);
    FILE *lf = fopen(ledger, "w");
    CHECK(lf, "ledger");
    fprintf(lf, "%s\n# cluster_msgs\n", HB_LEDGER_HEADER);
    for (int i = 0; i < npk; i++)
        if (pk[i].opened)
            fprintf(lf, "S %llu %u %u\n", (unsigned long long)pk[i].id, pk[i].uid, pk[i].share);
    fclose(lf);
    peer_server bj = b3; /* b's stats, b's journal (the first start's, kept through the restarts) */
    snprintf(bj.journal, sizeof bj.journal, "%s", b.journal);
    peer_server aj = a2;
    snprintf(aj.journal, sizeof aj.journal, "%s", a.journal);
    const peer_server *n[] = {&aj, &bj};
    reconcile("a+b", n, 2, ledger);
    PASS("a's and b's journals reconcile: every share paid once (hb-reconcile exit 0)");
}

/* ---- 3. three nodes: chat, a run, Redis commands per message ------------------------------ */

static peer_server cstats;

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

static void three_nodes(void)
{
    static peer_server n[3];
    const char *names[] = {"n0", "n1", "n2"};
    static const char *base[] = {"--sets", "2", "--users", "1500", "--total", "600", "--rate", "200",
                                 "--send-total", "90", "--send-rate", "60", "--send-split", "3", NULL};
    for (int i = 0; i < 3; i++)
        node_start(&n[i], names[i], i, 3, base, NULL);
    for (int i = 0; i < 3; i++)
        CHECK(peer_wait_stat(&n[i], "cluster_members", 3, 5000) == 3, "%s does not see 3 members", names[i]);

    /* a chat from a user of n0 to a user of n1 */
    hb_place_member m[3];
    for (int i = 0; i < 3; i++)
        m[i] = (hb_place_member){hb_place_key(names[i]), 1.0};
    uint32_t u0 = 0, u1 = 0;
    while (hb_place_owner(u0, m, 3) != 0)
        u0++;
    while (hb_place_owner(u1, m, 3) != 1)
        u1++;
    peer *p0 = peer_connect(n[0].port), *p1 = peer_connect(n[1].port);
    peer_login_ok(p0, u0, NULL, 0);
    peer_login_ok(p1, u1, NULL, 0);
    peer_chat(p0, u1, "hello from n0");
    Hb__Frame *f = peer_expect(p1, HB__FRAME__BODY_CHAT, 5000);
    CHECK(f && f->chat->from_uid == u0 && !strcmp(f->chat->text, "hello from n0"), "the chat did not arrive on n1");
    PASS("a chat from uid %u on n0 to uid %u on n1 arrived (through n1's stream)", u0, u1);
    peer_close(p0);
    peer_close(p1);

    /* hb-client over the 3 nodes (it connects to n0, redirects take it on) */
    char p[16], ledger[160], log[160], exe[256];
    snprintf(p, sizeof p, "%d", n[0].port);
    snprintf(cstats.stats, sizeof cstats.stats, "%s/client.stats", dir);
    snprintf(ledger, sizeof ledger, "%s/client.ledger", dir);
    snprintf(log, sizeof log, "%s/client.log", dir);
    snprintf(exe, sizeof exe, "%s/hb-client", getenv("HB_BIN"));
    const char *argv[] = {exe, "--server", "127.0.0.1", "--port", p, "--users", "1500", "--uid-from", "0", "--uid-to",
                          "1500", "--ledger", ledger, "--stats-file", cstats.stats, "--backoff-base", "100",
                          "--backoff-cap", "1000", "--qps", "600", "--duration", "12", "--drain", "6", NULL};
    client_pid = spawn(argv, log);
    int rc = client_wait(40000);
    CHECK(rc == 0, "hb-client exited with %d (see %s)", rc, log);
    uint64_t xadd = 0, xread = 0, xack = 0, cmds = 0, remote = 0, served = 0, shakes = 0, notices = 0, dups = 0,
             entries = 0;
    for (int i = 0; i < 3; i++)
        peer_server_stop(&n[i]);
    for (int i = 0; i < 3; i++) {
        xadd += peer_stat_now(&n[i], "xmsg_xadd");
        xread += peer_stat_now(&n[i], "xmsg_xread");
        xack += peer_stat_now(&n[i], "xmsg_xack");
        cmds += peer_stat_now(&n[i], "xmsg_redis_commands");
        remote += peer_stat_now(&n[i], "opens_remote");
        served += peer_stat_now(&n[i], "xmsg_opens_served");
        shakes += peer_stat_now(&n[i], "shakes");
        notices += peer_stat_now(&n[i], "notices");
        dups += peer_stat_now(&n[i], "xmsg_duplicates");
        entries += peer_stat_now(&n[i], "xmsg_xread_entries");
        CHECK(peer_stat_now(&n[i], "opens_remote") > 0, "%s forwarded no open: recipients did not span nodes",
              names[i]);
    }
    const peer_server *all[] = {&n[0], &n[1], &n[2]};
    reconcile("n0+n1+n2", all, 3, ledger);
    uint64_t xnotices = xadd - 2 * remote; /* every remote open is one XADD there and one back */
    PASS("3 nodes, send flow with recipients on every node: %llu shakes (0 Redis commands each), %llu notices "
         "delivered, %llu crossed nodes, %llu opens forwarded and %llu served by the packet's node; hb-reconcile "
         "exit 0",
         (unsigned long long)shakes, (unsigned long long)notices, (unsigned long long)xnotices,
         (unsigned long long)remote, (unsigned long long)served);
    PASS("Redis commands: %llu in all = %llu XADD + %llu XACK (%llu entries read) + %llu XREADGROUP (polls, 100/s per "
         "node, mostly empty) + group set-up; per message crossing nodes: 1 XADD + %.2f XACK; so per notice %.2f "
         "and per open (there and back) %.2f, plus the polling; %llu duplicates recognised",
         (unsigned long long)cmds, (unsigned long long)xadd, (unsigned long long)xack, (unsigned long long)entries,
         (unsigned long long)xread, entries ? (double)xack / (double)entries : 0,
         1 + (entries ? (double)xack / (double)entries : 0), 2 * (1 + (entries ? (double)xack / (double)entries : 0)),
         (unsigned long long)dups);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup);
    CHECK(mkdtemp(dir), "mkdtemp");
    tredis_start(&redis, dir, "hb-test-pw", true); /* AOF, fsync per write: a SIGKILL loses nothing */
    two_nodes();
    three_nodes();
    cleanup();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    printf("cluster_msgs: all checks passed\n");
    return 0;
}
