/* redirect_held: a shake unanswered when its node redirects the session is
 * asked again where the user logs in next.
 *
 * A node answers every shake it read before it redirects a session (a
 * membership change moving the user home, server/rehome.c), never
 * redirects one whose grant is pending, and drops unread what arrives
 * after: such a shake was never taken.  The client holds a shake sent to a
 * node that died (only that node's journal knows whether it won) until the
 * user is back on that node; a redirected one must not be held that way,
 * or the user waits for a login on the node that sent it away, for ever
 * (88,438 shakes at the end of a 1M cluster run whose restarted node took
 * its users home mid-stage).
 *
 * Here a fake node (this test) answers the Login as node 7, reads the first
 * Shake, leaves it unanswered and redirects the user to a second fake node
 * 8, which reads the shake asked again (as a retry) and does the same,
 * redirecting to a real hb-server (outside a cluster: node 0).  The client
 * must ask the shake there too and get its reply.  Held, it gets none:
 * after 7's Redirect (the first fix), or after 8's (a resend of a shake no
 * node took was held for the node it was resent to: 11 shakes at the end
 * of a 1M run, every one of a user redirected home right after it logged
 * in on a survivor that had not yet seen its node come back).
 *
 * Then a client left behind: a fake node answers a shake, the client is
 * stopped (SIGSTOP: a box so busy it reads seconds late), the node sends a
 * Redirect and closes (a reset, as a node's full close after --linger
 * does once the client sends more), and the client's next shake falls due
 * before it runs again.  Resumed, it sends that shake into the reset: it
 * must still read the Redirect and ask the shake on the real node.  Whether
 * the shake meets the reset depends on the order in which the resumed
 * client's loop takes the due shake and the socket's event (the socket
 * first: it reads the Redirect, and the shake goes to the real node as a
 * first try); so an attempt in which nothing met the reset is made again,
 * resumed at another point of the second (1 in 10 runs needed a second
 * attempt, and once three failed in a row; up to 8).  Before,
 * the failed send took the node for dead without reading what it had said,
 * and the shake, "sent" to it, was held for it for ever (25 shakes at the
 * end of a 1M run; the client's exit log showed them). */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "frame.h"
#include "peer.h"
#include "spawn.h"

static char dir[64] = "/tmp/hb-redirect-held.XXXXXX";
static pid_t client_pid;

static void cleanup(void)
{
    spawn_stop(&client_pid, SIGTERM, 3000);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_frame(int fd, const Hb__Frame *f)
{
    uint8_t buf[HB_FRAME_WIRE_MAX];
    size_t n = hb_frame_pack(f, buf, sizeof buf);
    CHECK(n && write(fd, buf, n) == (ssize_t)n, "fake node: write: %s", strerror(errno));
}

/* The next frame from fd within ms (NULL: none); buf and have keep what is
 * left over for the next call. */
static Hb__Frame *next_frame(int fd, uint8_t *buf, size_t *have, size_t cap, int ms)
{
    for (int64_t end = now_ms() + ms;;) {
        size_t prefix, body;
        if (hb_frame_scan(buf, *have, HB_FRAME_MAX, &prefix, &body) == HB_SCAN_FRAME) {
            Hb__Frame *f = hb__frame__unpack(NULL, body, buf + prefix);
            memmove(buf, buf + prefix + body, *have - prefix - body);
            *have -= prefix + body;
            CHECK(f, "fake node: a frame it cannot decode");
            return f;
        }
        int left = (int)(end - now_ms());
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            return NULL;
        ssize_t n = read(fd, buf + *have, cap - *have);
        if (n <= 0)
            return NULL;
        *have += (size_t)n;
    }
}

static int fake_listen(void)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int port = peer_free_port();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(ls, (struct sockaddr *)&a, sizeof a) == 0 && listen(ls, 4) == 0, "fake node: listen on %d", port);
    return ls;
}

static int fake_port(int ls)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    CHECK(getsockname(ls, (struct sockaddr *)&a, &len) == 0, "getsockname");
    return ntohs(a.sin_port);
}

/* One fake node's connection: what it read ahead and the user's uid. */
typedef struct fake {
    int fd;
    uint8_t buf[4096];
    size_t have;
    uint32_t uid;
} fake;

/* Accept the client on ls and answer its Login as node `node`. */
static void fake_accept(fake *k, int ls, uint32_t node)
{
    struct pollfd pa = {ls, POLLIN, 0};
    CHECK(poll(&pa, 1, 10000) == 1, "the client did not connect to the fake node %u", node);
    k->fd = accept(ls, NULL, NULL);
    CHECK(k->fd >= 0, "accept: %s", strerror(errno));
    k->have = 0;
    Hb__Frame *f = next_frame(k->fd, k->buf, &k->have, sizeof k->buf, 5000);
    CHECK(f && f->body_case == HB__FRAME__BODY_LOGIN, "no Login at the fake node %u", node);
    k->uid = f->login->uid;
    hb__frame__free_unpacked(f, NULL);
    Hb__LoginOk ok = HB__LOGIN_OK__INIT;
    ok.uid = k->uid;
    ok.node = node;
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    ok.server_time_us = (int64_t)rt.tv_sec * 1000000 + rt.tv_nsec / 1000;
    Hb__Frame out = HB__FRAME__INIT;
    out.body_case = HB__FRAME__BODY_LOGIN_OK;
    out.login_ok = &ok;
    send_frame(k->fd, &out);
}

/* The next shake's seq (want_seq 0: any; else that one again, as a retry). */
static uint32_t fake_shake(fake *k, uint32_t want_seq)
{
    uint32_t seq = 0;
    while (!seq) {
        Hb__Frame *f = next_frame(k->fd, k->buf, &k->have, sizeof k->buf, 5000);
        CHECK(f, "no Shake at the fake node within 5 s");
        if (f->body_case == HB__FRAME__BODY_SHAKE) {
            seq = f->shake->seq;
            CHECK(!want_seq || (seq == want_seq && f->shake->retry),
                  "fake node: shake %u (retry %d), want %u asked again as a retry", seq, f->shake->retry, want_seq);
        }
        hb__frame__free_unpacked(f, NULL);
    }
    return seq;
}

static void fake_redirect(fake *k, int to)
{
    Hb__Redirect r = HB__REDIRECT__INIT;
    r.host = "127.0.0.1";
    r.port = (uint32_t)to;
    r.uid = k->uid;
    Hb__Frame out = HB__FRAME__INIT;
    out.body_case = HB__FRAME__BODY_REDIRECT;
    out.redirect = &r;
    send_frame(k->fd, &out);
}

/* Fake node `node` on listener ls: answer the client's Login, read its
 * shake (want_seq 0: the first one; else that one again, as a retry),
 * leave it unanswered and redirect the user to port `to`, half-closing as
 * a node does.  The shake's seq; k->fd stays open (so nothing is reset). */
static uint32_t fake_node(fake *k, int ls, uint32_t node, uint32_t want_seq, int to)
{
    fake_accept(k, ls, node);
    uint32_t seq = fake_shake(k, want_seq);
    fake_redirect(k, to);
    shutdown(k->fd, SHUT_WR);
    return seq;
}

static void start_client(int port, const char *tag, char *stats, size_t slen)
{
    char p[16], log[160];
    snprintf(p, sizeof p, "%d", port);
    snprintf(stats, slen, "%s/%s.stats", dir, tag);
    snprintf(log, sizeof log, "%s/%s.log", dir, tag);
    static char exe[256];
    snprintf(exe, sizeof exe, "%s/hb-client", getenv("HB_BIN"));
    const char *argv[] = {exe, "--server", "127.0.0.1", "--port", p, "--users", "10", "--uid-from", "3", "--uid-to",
                          "4", "--qps", "10", "--groups", "1", "--duration", "30", "--stats-file", stats,
                          "--backoff-base", "100", NULL};
    client_pid = spawn(argv, log);
}

/* Wait until the client's stats file shows `want` replies (it is rewritten
 * once a second); its replies. */
static uint64_t wait_replies(const char *stats, uint64_t want, int ms, int64_t t0)
{
    peer_server cs = {0};
    snprintf(cs.stats, sizeof cs.stats, "%s", stats);
    uint64_t replies = 0;
    while (now_ms() - t0 < ms && (access(stats, R_OK) != 0 || (replies = peer_stat_now(&cs, "replies")) < want))
        usleep(100000);
    CHECK(access(stats, R_OK) == 0, "no client stats file %s", stats);
    return replies;
}

static uint64_t cstat(const char *stats, const char *name)
{
    peer_server cs = {0};
    snprintf(cs.stats, sizeof cs.stats, "%s", stats);
    return peer_stat_now(&cs, name);
}

/* 1: redirected unanswered twice */
static void two_redirects(peer_server *real)
{
    int ls7 = fake_listen(), ls8 = fake_listen();
    char stats[160];
    start_client(fake_port(ls7), "twice", stats, sizeof stats);
    static fake k7, k8;
    uint32_t seq = fake_node(&k7, ls7, 7, 0, fake_port(ls8));
    fake_node(&k8, ls8, 8, seq, real->port);
    uint32_t uid = k7.uid;
    int64_t t0 = now_ms();
    uint64_t replies = wait_replies(stats, 1, 8000, t0);
    uint64_t held = cstat(stats, "retries_held"), retries = cstat(stats, "retries");
    CHECK(replies > 0 && held == 0,
          "shake %u, unanswered when the fake nodes 7 and 8 redirected user %u, in the end to node 0: %llu "
          "replies, %llu held, %llu retried within %lld ms",
          seq, uid, (unsigned long long)replies, (unsigned long long)held, (unsigned long long)retries,
          (long long)(now_ms() - t0));
    CHECK(retries >= 2 && peer_wait_stat(real, "retries", 1, 3000) >= 1, "the shake was not asked again as a retry");
    PASS("shake %u unanswered at a Redirect from node 7, asked again on node 8 and unanswered at its Redirect: "
         "asked on node 0 as a retry and answered %lld ms later (none held)",
         seq, (long long)(now_ms() - t0));
    spawn_stop(&client_pid, SIGTERM, 3000);
    close(k7.fd);
    close(k8.fd);
    close(ls7);
    close(ls8);
}

/* 2: the Redirect read only after a send met the node's reset.  One
 * attempt; false when the scenario did not happen: the resumed client read
 * the Redirect before its shake fell due (its loop may take the socket's
 * event first), so no shake met the reset and none was asked again. */
static bool reset_attempt(peer_server *real, int attempt)
{
    int ls = fake_listen();
    char stats[160], tag[16];
    snprintf(tag, sizeof tag, "reset%d", attempt);
    start_client(fake_port(ls), tag, stats, sizeof stats);
    static fake k;
    fake_accept(&k, ls, 7);
    uint32_t seq = fake_shake(&k, 0), uid = k.uid;
    Hb__ShakeReply sr = HB__SHAKE_REPLY__INIT;
    sr.seq = seq;
    sr.result = HB__RESULT__RESULT_LOSE;
    Hb__Frame out = HB__FRAME__INIT;
    out.body_case = HB__FRAME__BODY_SHAKE_REPLY;
    out.shake_reply = &sr;
    send_frame(k.fd, &out);
    usleep(300000); /* the client reads the reply: its next shake may go */
    CHECK(kill(client_pid, SIGSTOP) == 0, "SIGSTOP");
    fake_redirect(&k, real->port);
    struct linger lg = {1, 0};
    setsockopt(k.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(k.fd); /* a reset */
    /* its next shake falls due while it is stopped; each attempt resumes
     * it at another point of the second (a repeat would meet the same
     * order of events) */
    usleep(1500000 + (useconds_t)(attempt - 1) * 350000);
    uint64_t retries0 = peer_stat_now(real, "retries");
    int64_t t0 = now_ms();
    CHECK(kill(client_pid, SIGCONT) == 0, "SIGCONT");
    uint64_t replies = wait_replies(stats, 2, 8000, t0);
    uint64_t held = cstat(stats, "retries_held"), asked_again = cstat(stats, "retries");
    CHECK(replies >= 2 && held == 0,
          "the client, stopped while fake node 7 redirected user %u and reset the connection: %llu replies (want "
          "2), %llu held within %lld ms of resuming",
          uid, (unsigned long long)replies, (unsigned long long)held, (long long)(now_ms() - t0));
    bool met = asked_again > 0;
    if (met) {
        CHECK(peer_stat_now(real, "retries") > retries0,
              "the shake that met the reset was asked again by the client (%llu) but not on node 0",
              (unsigned long long)asked_again);
        PASS("a shake sent into the reset before the Redirect was read: asked on node 0 and answered %lld ms after "
             "resuming (none held; attempt %d)",
             (long long)(now_ms() - t0), attempt);
    } else {
        printf("note: attempt %d: the client read the Redirect before its shake fell due (nothing met the reset); "
               "again\n", attempt);
        fflush(stdout);
    }
    spawn_stop(&client_pid, SIGTERM, 3000);
    close(ls);
    return met;
}

static void reset_before_read(peer_server *real)
{
    for (int attempt = 1; attempt <= 8; attempt++)
        if (reset_attempt(real, attempt))
            return;
    CHECK(false, "in 8 attempts no shake met the node's reset: the scenario was never tested");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup);
    CHECK(mkdtemp(dir), "mkdtemp");
    peer_server real;
    const char *flags[] = {"--sets", "1", "--users", "10", "--rate", "100", "--total", "100000", NULL};
    peer_server_start(&real, 1, flags);
    two_redirects(&real);
    reset_before_read(&real);
    cleanup();
    peer_server_stop(&real);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    printf("redirect_held: all checks passed\n");
    return 0;
}
