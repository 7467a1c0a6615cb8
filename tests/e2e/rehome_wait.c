/* rehome_wait: a node moving a session to its new owner (a Redirect after a
 * membership change) never does so ahead of a won shake's reply.
 *
 * A won shake is answered only once its grant is on disk, so its reply
 * waits in the SET's deferred queue.  The client asks a shake that is still
 * unanswered at a Redirect again on the next node (redirect_held.c): that
 * is right only if no Redirect overtakes a win.  The rehoming sweep once
 * waited for a connection's repeated replies only (retries, repeated
 * opens), not for the reply to a new win: in a 1M cluster run one user's
 * win went unread and its shake was asked again elsewhere (a loss there),
 * and the ledger check found the win no client recorded.
 *
 * Here node r0, alone and with a slow disk (--journal-delay 3 s), has a
 * session win a packet; node r1 joins and owns the uid; r0 must send the
 * WIN before the Redirect. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "peer.h"
#include "placement.h"
#include "tredis.h"

static char dir[64] = "/tmp/hb-rehome-wait.XXXXXX";
static tredis redis;

static void cleanup(void)
{
    tredis_stop(&redis, SIGTERM, 3000);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void node_start(peer_server *s, const char *name, const char *index, const char *delay)
{
    const char *flags[] = {"--sets", "1", "--users", "1000", "--total", "1000", "--rate", "1000", "--shake-limit",
                           "0", "--journal-delay", delay, "--cluster", redis.url, "--node", name, "--node-index",
                           index, "--nodes", "2", "--redis-password-file", redis.pwfile, "--stats-every", "200",
                           NULL};
    peer_server_start(s, 1, flags);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup);
    CHECK(mkdtemp(dir), "mkdtemp");
    tredis_start(&redis, dir, "hb-test-pw", false);
    static peer_server r0, r1;
    node_start(&r0, "r0", "0", "3000000");

    hb_place_member two[2] = {{hb_place_key("r0"), 1.0}, {hb_place_key("r1"), 1.0}};
    uint32_t u = 0;
    while (hb_place_owner(u, two, 2) != 1)
        u++;
    peer *p = peer_connect(r0.port);
    peer_login_ok(p, u, NULL, 0);

    /* Shake until one wins: a loss is answered at once, a win only after
     * its grant's 3 s write. */
    uint32_t seq = 0;
    int64_t end = now_ms() + 30000;
    for (;;) {
        CHECK(now_ms() < end, "no shake of uid %u won on r0 within 30 s", u);
        peer_shake(p, ++seq, false);
        Hb__Frame *f = peer_expect(p, HB__FRAME__BODY_SHAKE_REPLY, 300);
        if (!f)
            break; /* pending: a win waiting for the disk */
        CHECK(f->shake_reply->result != HB__RESULT__RESULT_WIN, "a win answered before its 3 s write");
        usleep(100000);
    }
    int64_t t0 = now_ms();
    node_start(&r1, "r1", "1", "0");
    CHECK(peer_wait_stat(&r0, "cluster_members", 2, 5000) == 2, "r0 does not see r1");
    int64_t seen = now_ms() - t0;

    Hb__Frame *f = peer_next(p, 10000);
    CHECK(f, "r0 sent nothing within 10 s of r1 joining");
    CHECK(f->body_case == HB__FRAME__BODY_SHAKE_REPLY && f->shake_reply->seq == seq &&
              f->shake_reply->result == HB__RESULT__RESULT_WIN,
          "r0's first frame after r1 joined (it saw r1 after %lld ms) is a %s, not the WIN of shake %u", (long long)seen,
          f->body_case == HB__FRAME__BODY_REDIRECT ? "Redirect" : "frame of another kind", seq);
    int64_t won = now_ms() - t0;
    f = peer_next(p, 5000);
    CHECK(f && f->body_case == HB__FRAME__BODY_REDIRECT, "no Redirect to r1 after the WIN");
    PASS("uid %u's shake %u won on r0 (its grant 3 s from disk); r1 joined and r0 saw it after %lld ms: the WIN came "
         "first (%lld ms), then the Redirect (%lld ms)",
         u, seq, (long long)seen, (long long)won, (long long)(now_ms() - t0));
    peer_close(p);
    peer_server_stop(&r1);
    peer_server_stop(&r0);
    cleanup();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    printf("rehome_wait: all checks passed\n");
    return 0;
}
