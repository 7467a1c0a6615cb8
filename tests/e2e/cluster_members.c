/* cluster_members (issue 15): a member list of 64 -- the most a cluster
 * holds (SV_CLUSTER_MAX = HB_PLACE_MAX) -- reaches clients whole.
 *
 * Why: a LoginOk or Redirect that carries the list is longer than the
 * 512-byte bound on what a client may send (HB_FRAME_MAX); with that bound
 * on the way down too, a node left out every list past about 25 members and
 * its clients went back to following Redirects.  Frames a node sends a
 * client now have their own bound (HB_FRAME_DOWN_MAX, proto/frame.h); what
 * a node accepts stays 512 (tests/e2e/hostile.c).
 *
 * A redis-server this test starts (127.0.0.1, a free port, a temp dir, a
 * password), then:
 *   1. one real node n0 registers, and 63 more members are written straight
 *      into Redis as a node writes itself (description "HOST PORT WEIGHT
 *      INDEX", expiry an hour ahead so they stay listed without running):
 *      15-byte IPv4 hosts on 127/8 (the longest a listed member can have:
 *      a list is sent only if every host is an IPv4 address), 5-digit
 *      ports, weight 0.001 (so the weights travel: the widest list), bands
 *      2..64.  n0 sees 64 members;
 *   2. a peer logging in with no list (members_tag 0) gets a LoginOk with
 *      all 64 members; logging in again with the tag it got: no list; a uid
 *      a fake member owns: a Redirect with all 64;
 *   3. hb-client with 20 users, every one owned by n0 (weights 1 vs 0.001),
 *      entering at n0: it takes the list (members_lists >= 1, members_bad 0,
 *      protocol_errors 0) and every user logs in.
 * Nothing ever connects to the 63 fake members: no uid the client plays is
 * theirs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include "peer.h"
#include "placement.h"
#include "spawn.h"
#include "tredis.h"

#define MEMBERS HB_PLACE_MAX
#define USERS 1500
#define CLIENT_USERS 20
#define FAKE_WEIGHT 0.001

static char dir[64] = "/tmp/hb-cmembers.XXXXXX";
static tredis redis;
static pid_t client_pid;
static redisContext *rc;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cleanup(void)
{
    spawn_stop(&client_pid, SIGTERM, 3000);
    tredis_stop(&redis, SIGTERM, 3000);
}

/* The placement every node and the client compute: n0 (weight 1) and
 * m01..m63 (FAKE_WEIGHT). */
static hb_place_member place[MEMBERS];

static void fake_members(void)
{
    redisReply *t = redisCommand(rc, "TIME");
    CHECK(t && t->type == REDIS_REPLY_ARRAY && t->elements == 2, "TIME");
    long long until = atoll(t->element[0]->str) * 1000 + 3600 * 1000; /* Redis's clock, an hour ahead */
    freeReplyObject(t);
    place[0] = (hb_place_member){hb_place_key("n0"), 1.0};
    for (int i = 1; i < MEMBERS; i++) {
        char name[16], desc[64];
        snprintf(name, sizeof name, "m%02d", i);
        /* 127.255.255.101 .. 127.255.255.163: 15 bytes; ports 60001..; band i + 1 */
        snprintf(desc, sizeof desc, "127.255.255.%d %d %g %d", 100 + i, 60000 + i, FAKE_WEIGHT, i);
        redisReply *r = redisCommand(rc, "HSET hb:cluster:info %s %s", name, desc);
        CHECK(r && r->type == REDIS_REPLY_INTEGER, "HSET %s", name);
        freeReplyObject(r);
        r = redisCommand(rc, "ZADD hb:cluster:alive %lld %s", until, name);
        CHECK(r && r->type == REDIS_REPLY_INTEGER, "ZADD %s", name);
        freeReplyObject(r);
        place[i] = (hb_place_member){hb_place_key(name), FAKE_WEIGHT};
    }
}

static void check_list(const Hb__Members *l, const char *in)
{
    CHECK(l, "%s without the member list", in);
    CHECK(l->tag && l->n_key == MEMBERS && l->n_addr == MEMBERS && l->n_port == MEMBERS && l->n_band == MEMBERS &&
              l->n_weight == MEMBERS,
          "%s: a list of %zu keys, %zu addresses, %zu ports, %zu bands, %zu weights; want %d each", in, l->n_key,
          l->n_addr, l->n_port, l->n_band, l->n_weight, MEMBERS);
    for (int i = 0; i < MEMBERS; i++) {
        bool found = false;
        for (size_t k = 0; k < l->n_key; k++)
            found = found || l->key[k] == place[i].key;
        CHECK(found, "%s: member %d missing from the list", in, i);
    }
}

static peer_server client_stats; /* peer_stat_now reads any stats file */

static uint64_t cstat(const char *name)
{
    return peer_stat_now(&client_stats, name);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup);
    CHECK(mkdtemp(dir), "mkdtemp");
    tredis_start(&redis, dir, "hb-test-pw", false);
    rc = tredis_connect(&redis);
    fake_members();

    /* 1 */
    static peer_server n0;
    const char *flags[] = {"--sets", "2", "--users", "1500", "--total", "0", "--send-total", "0",
                           "--cluster", redis.url, "--node", "n0", "--node-index", "0", "--nodes", "64",
                           "--redis-password-file", redis.pwfile, "--stats-every", "200", NULL};
    peer_server_start(&n0, 1, flags);
    CHECK(peer_wait_stat(&n0, "cluster_members", MEMBERS, 5000) == MEMBERS, "n0 does not see %d members", MEMBERS);
    PASS("n0 and 63 members written into Redis (15-byte hosts, weights %g): n0 lists %d", FAKE_WEIGHT, MEMBERS);

    /* 2: a uid n0 owns, the start of CLIENT_USERS such uids in a row, and a
     * uid another member owns */
    uint32_t mine = UINT32_MAX, first = UINT32_MAX, theirs = UINT32_MAX, run = 0;
    for (uint32_t u = 0; u < USERS; u++) {
        bool own = hb_place_owner(u, place, MEMBERS) == 0;
        if (own && mine == UINT32_MAX)
            mine = u;
        if (!own && theirs == UINT32_MAX)
            theirs = u;
        run = own ? run + 1 : 0;
        if (run == CLIENT_USERS && first == UINT32_MAX)
            first = u + 1 - CLIENT_USERS;
    }
    CHECK(mine != UINT32_MAX && theirs != UINT32_MAX && first != UINT32_MAX, "no uids to play (%u %u %u)", mine,
          theirs, first);
    peer *p = peer_connect(n0.port);
    peer_login(p, mine, NULL, 0);
    Hb__Frame *f = peer_next(p, 3000);
    CHECK(f && f->body_case == HB__FRAME__BODY_LOGIN_OK, "login of uid %u (n0's): no LoginOk (%s)", mine,
          f ? hb_body_name(f->body_case) : "nothing, or a frame the peer refused");
    check_list(f->login_ok->members, "LoginOk");
    uint64_t tag = f->login_ok->members->tag;
    peer_close(p);
    p = peer_connect(n0.port);
    Hb__Login l = HB__LOGIN__INIT;
    l.uid = mine;
    l.members_tag = tag;
    Hb__Frame lf = HB__FRAME__INIT;
    lf.body_case = HB__FRAME__BODY_LOGIN;
    lf.login = &l;
    peer_send(p, &lf);
    f = peer_expect(p, HB__FRAME__BODY_LOGIN_OK, 3000);
    CHECK(f && !f->login_ok->members, "a LoginOk for a client whose list is current carries the list again");
    peer_close(p);
    p = peer_connect(n0.port);
    peer_login(p, theirs, NULL, 0);
    f = peer_next(p, 3000);
    CHECK(f && f->body_case == HB__FRAME__BODY_REDIRECT, "login of uid %u (another member's): no Redirect (%s)",
          theirs, f ? hb_body_name(f->body_case) : "nothing, or a frame the peer refused");
    check_list(f->redirect->members, "Redirect");
    CHECK(strlen(f->redirect->host) == 15, "Redirect to '%s'", f->redirect->host);
    PASS("a LoginOk and a Redirect (to %s:%u) carry all %d members (tag %016llx); a login with that tag: no list",
         f->redirect->host, f->redirect->port, MEMBERS, (unsigned long long)tag);
    peer_close(p);

    /* 3 */
    char port[16], from[16], to[16], ledger[160], log[160], exe[256];
    snprintf(port, sizeof port, "%d", n0.port);
    snprintf(from, sizeof from, "%u", first);
    snprintf(to, sizeof to, "%u", first + CLIENT_USERS);
    snprintf(client_stats.stats, sizeof client_stats.stats, "%s/client.stats", dir);
    snprintf(ledger, sizeof ledger, "%s/client.ledger", dir);
    snprintf(log, sizeof log, "%s/client.log", dir);
    snprintf(exe, sizeof exe, "%s/hb-client", getenv("HB_BIN"));
    const char *argv[] = {exe, "--server", "127.0.0.1", "--port", port, "--users", "1500", "--uid-from", from,
                          "--uid-to", to, "--ledger", ledger, "--stats-file", client_stats.stats, "--qps", "0",
                          "--duration", "3", "--drain", "0", "--threads", "1", NULL};
    client_pid = spawn(argv, log);
    int st, code = -1;
    for (int64_t end = now_ms() + 30000; now_ms() < end; usleep(50000))
        if (waitpid(client_pid, &st, WNOHANG) == client_pid) {
            client_pid = 0;
            code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
    CHECK(code == 0, "hb-client exited with %d (see %s)", code, log);
    uint64_t lists = cstat("members_lists"), bad = cstat("members_bad"), perr = cstat("protocol_errors"),
             logins = cstat("logins");
    CHECK(lists >= 1 && bad == 0 && perr == 0,
          "hb-client took %llu member lists, ignored %llu as bad, %llu protocol errors (see %s)",
          (unsigned long long)lists, (unsigned long long)bad, (unsigned long long)perr, log);
    CHECK(logins >= CLIENT_USERS, "%llu logins of %d users", (unsigned long long)logins, CLIENT_USERS);
    PASS("hb-client through n0: took the %d-member list (%llu lists, 0 bad, 0 protocol errors), %llu logins of %d "
         "users",
         MEMBERS, (unsigned long long)lists, (unsigned long long)logins, CLIENT_USERS);

    peer_server_stop(&n0);
    cleanup();
    redisFree(rc);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, n0.dir);
    (void)!system(cmd);
    printf("cluster_members: all checks passed\n");
    return 0;
}
