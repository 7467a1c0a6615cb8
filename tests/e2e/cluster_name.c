/* cluster_name: a --node name is one node (server/cluster.c's join check).
 * A redis-server this test starts (127.0.0.1, a free port, a temp dir, a
 * password), then:
 *   1. node "dup" advertised at 127.0.0.1:A runs;
 *   2. a second hb-server with --node dup advertised at 127.0.0.1:B exits 1
 *      at start with a message naming A and the seconds until the first
 *      one's registration expires.  The first node is frozen (SIGSTOP) while
 *      the second tries, so its own refreshes cannot hide an overwrite: its
 *      description and expiry in Redis must be byte for byte unchanged, and
 *      after it is resumed it is still in the member list;
 *   3. the first node killed (SIGKILL: it never deregisters) and started
 *      again at once with the same address, weight and index (a restart: only
 *      its liveness port differs) is accepted
 *      while its old registration is still live;
 *   4. a start-up slower than the TTL (--start-pause 3000, --cluster-ttl
 *      1500: the journal replay and SET set-up of a node restarting on a
 *      saturated box) keeps the registration live, as "starting": a node
 *      watching does not list it while it starts (so sends it no users),
 *      lists it once it serves and never drops it (before, the refreshes
 *      began only once the node served: it dropped out 1.5 s after the join
 *      and came back; then, refreshed from the join, it was listed while
 *      nothing listened on its port). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <hiredis/hiredis.h>
#include "peer.h"
#include "tredis.h"

static char dir[64] = "/tmp/hb-cname.XXXXXX";
static tredis redis;
static redisContext *rc;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cleanup(void)
{
    tredis_stop(&redis, SIGTERM, 3000);
}

/* `name`'s description and expiry stamp in Redis ("" if none). */
static void registration(const char *name, char *desc, size_t dlen, char *exp, size_t elen)
{
    redisReply *r = redisCommand(rc, "HGET hb:cluster:info %s", name);
    CHECK(r, "HGET: %s", rc->errstr);
    snprintf(desc, dlen, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    r = redisCommand(rc, "ZSCORE hb:cluster:alive %s", name);
    CHECK(r, "ZSCORE: %s", rc->errstr);
    snprintf(exp, elen, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

/* Whether description d is `want` (HOST PORT WEIGHT INDEX) serving: then
 * its liveness port (server/liveness.h), no starting mark. */
static bool serving_as(const char *d, const char *want)
{
    size_t n = strlen(want);
    return !strncmp(d, want, n) && d[n] == ' ' && d[n + 1] && strspn(d + n + 1, "0123456789") == strlen(d + n + 1);
}

/* `name`'s description once it is `want` (a node registers as starting
 * and is listed from the refresh after it serves), within 3 s. */
static void registration_is(const char *name, const char *want, char *desc, size_t dlen)
{
    char exp[64];
    for (int64_t end = now_ms() + 3000;; usleep(50000)) {
        registration(name, desc, dlen, exp, sizeof exp);
        if (serving_as(desc, want) || now_ms() > end)
            return;
    }
}

/* Node "dup" advertised at 127.0.0.1:adv, index idx (of 2). */
static void node_flags(const char **flags, const char *adv, const char *idx)
{
    const char *f[] = {"--listen", "127.0.0.1", "--users", "40", "--cluster", redis.url, "--node", "dup",
                       "--node-index", idx, "--nodes", "2", "--advertise", adv, "--redis-password-file", redis.pwfile,
                       "--stats-every", "200", NULL};
    memcpy(flags, f, sizeof f);
}

int main(void)
{
    atexit(cleanup);
    CHECK(mkdtemp(dir), "mkdtemp");
    tredis_start(&redis, dir, "hb-test-pw", false);
    rc = tredis_connect(&redis);
    int a = peer_free_port(), b;
    do
        b = peer_free_port();
    while (b == a);
    char adv_a[32], adv_b[32], want[64];
    snprintf(adv_a, sizeof adv_a, "127.0.0.1:%d", a);
    snprintf(adv_b, sizeof adv_b, "127.0.0.1:%d", b);
    snprintf(want, sizeof want, "127.0.0.1 %d 1 0", a);

    /* 1 */
    const char *flags[32];
    node_flags(flags, adv_a, "0");
    peer_server s1;
    peer_server_start(&s1, 1, flags);
    char desc[128], exp[64], desc2[128], exp2[64];
    registration_is("dup", want, desc, sizeof desc);
    CHECK(serving_as(desc, want), "first node registered as '%s', want '%s LIVEPORT'", desc, want);
    PASS("node dup at %s registered as '%s'", adv_a, desc);

    /* 2 */
    char port[16], journal[128], out[4096];
    snprintf(port, sizeof port, "%d", peer_free_port());
    snprintf(journal, sizeof journal, "%s/second.journal", dir);
    const char *second[40];
    node_flags(second, adv_b, "1");
    int n = 0;
    while (second[n])
        n++;
    second[n++] = "--port";
    second[n++] = port;
    second[n++] = "--journal";
    second[n++] = journal;
    second[n] = NULL;
    usleep(200000); /* just after a refresh of the first node: most of its TTL ahead */
    CHECK(kill(s1.pid, SIGSTOP) == 0, "SIGSTOP");
    registration("dup", desc, sizeof desc, exp, sizeof exp);
    int st = peer_server_run(second, 10000, out, sizeof out);
    registration("dup", desc2, sizeof desc2, exp2, sizeof exp2);
    CHECK(kill(s1.pid, SIGCONT) == 0, "SIGCONT");
    printf("   second node: exit %d: %s", st, out);
    CHECK(!strcmp(desc2, desc) && !strcmp(exp2, exp),
          "the second node changed the first one's registration: '%s' expiry %s, was '%s' expiry %s", desc2, exp2,
          desc, exp);
    CHECK(st == 1, "a second node with the name of a live one exited %d, want 1:\n%s", st, out);
    char says[128];
    snprintf(says, sizeof says, "--node 'dup' is taken by a live member at %s", adv_a);
    CHECK(strstr(out, says), "the refusal does not say '%s':\n%s", says, out);
    CHECK(strstr(out, "registration expires in ") && strstr(out, " s unless"),
          "the refusal does not say when the registration expires:\n%s", out);
    PASS("a second node named dup at %s refused (exit 1, names %s and the expiry); registration unchanged", adv_b,
         adv_a);
    usleep(1500000); /* a refresh of the resumed first node: it is still a member */
    redisReply *r = redisCommand(rc, "ZRANGE hb:cluster:alive 0 -1");
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 && !strcmp(r->element[0]->str, "dup"),
          "member list is not just dup");
    freeReplyObject(r);
    registration("dup", desc, sizeof desc, exp, sizeof exp);
    CHECK(serving_as(desc, want), "after the refusal dup is registered as '%s', want '%s LIVEPORT'", desc, want);
    PASS("the first node is still the member dup ('%s')", desc);

    /* 3 */
    peer_server_kill(&s1);
    registration("dup", desc, sizeof desc, exp, sizeof exp);
    redisReply *t = redisCommand(rc, "TIME");
    CHECK(t && t->type == REDIS_REPLY_ARRAY && t->elements == 2, "TIME");
    double redis_ms = atof(t->element[0]->str) * 1000 + atof(t->element[1]->str) / 1000;
    freeReplyObject(t);
    CHECK(*exp && atof(exp) > redis_ms, "dup's registration is not live before the restart (expiry '%s', now %.0f)",
          exp, redis_ms);
    peer_server s2;
    node_flags(flags, adv_a, "0");
    int64_t t0 = now_ms();
    peer_server_start(&s2, 1, flags);
    int64_t took = now_ms() - t0;
    registration_is("dup", want, desc2, sizeof desc2);
    CHECK(serving_as(desc2, want), "restarted dup registered as '%s', want '%s LIVEPORT'", desc2, want);
    PASS("dup killed and restarted with the same description: accepted in %lld ms (old registration live)",
         (long long)took);
    peer_server_stop(&s2);
    peer_server_stop(&s1);

    /* 4 */
    const char *wf[] = {"--listen", "127.0.0.1", "--users", "40", "--cluster", redis.url, "--node", "watch",
                        "--node-index", "1", "--nodes", "2", "--redis-password-file", redis.pwfile,
                        "--stats-every", "200", NULL};
    peer_server w, s3;
    peer_server_start(&w, 1, wf);
    CHECK(peer_wait_stat(&w, "cluster_members", 1, 5000) == 1, "the watching node does not see itself alone");
    uint64_t gen0 = peer_stat_now(&w, "cluster_gen");
    node_flags(flags, adv_a, "0");
    n = 0;
    while (flags[n])
        n++;
    const char *slow[] = {"--cluster-ttl", "1500", "--start-pause", "3000"};
    memcpy(flags + n, slow, sizeof slow);
    flags[n + 4] = NULL;
    t0 = now_ms();
    pid_t starter = fork(); /* peer_server_start waits until it serves: watch meanwhile from a child */
    CHECK(starter >= 0, "fork");
    if (starter == 0) {
        usleep(1500000); /* in the pause: joined, not serving */
        uint64_t m = peer_stat_now(&w, "cluster_members");
        char d[128];
        registration("dup", d, sizeof d, exp, sizeof exp);
        if (m != 1 || !strstr(d, " starting")) {
            fprintf(stderr, "FAIL: 1.5 s into dup's start the watching node lists %llu members (want 1: dup is "
                            "starting) and dup is registered as '%s'\n", (unsigned long long)m, d);
            _exit(1);
        }
        _exit(0);
    }
    peer_server_start(&s3, 1, flags);
    took = now_ms() - t0;
    int cst;
    CHECK(waitpid(starter, &cst, 0) == starter && WIFEXITED(cst) && WEXITSTATUS(cst) == 0,
          "while dup started it was listed (see above)");
    usleep(2500000); /* past the TTL after it serves: a dropped member would show */
    uint64_t gen = peer_stat_now(&w, "cluster_gen") - gen0, members = peer_stat_now(&w, "cluster_members");
    CHECK(took >= 3000, "the slow node served %lld ms after its start: --start-pause 3000 did not hold it",
          (long long)took);
    CHECK(gen == 1 && members == 2,
          "while dup started for %lld ms (TTL 1500) the watching node saw %llu member list changes (want 1: the "
          "join) and now %llu members",
          (long long)took, (unsigned long long)gen, (unsigned long long)members);
    PASS("dup took %lld ms to start (TTL 1500 ms): registered as starting, the watching node listed it once it "
         "served and never dropped it",
         (long long)took);
    peer_server_stop(&s3);
    peer_server_stop(&w);
    redisFree(rc);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s %s %s %s", dir, s1.dir, s2.dir, s3.dir, w.dir);
    (void)!system(cmd);
    return 0;
}
