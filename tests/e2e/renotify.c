/* renotify.c -- a notice of money is at least once (issue 13.6).
 *
 * One send packet split over uids 0, 1, 2, all online when it is made.  uid
 * 2 receives its notice and drops the connection without opening: from the
 * server's side the notice was delivered, so nothing would ever tell uid 2
 * again until a restart, and its share would stay unopened.
 *   1. control, --renotify 0 (the behaviour before): uid 2 reconnects and
 *      hears nothing for 4 s -- the loss is real and this test can see it;
 *   2. --renotify 2: uid 2 stays offline for 7 s (the server re-parks the
 *      notice twice meanwhile), logs in and gets exactly one notice at once
 *      (the parking keeps one copy per packet), opens, is paid; uid 0, who
 *      opened at once, is never told again, and neither is uid 1, online
 *      all along on the session it was told on but slow to open (a slow
 *      recipient is not a lost notice: at 1M, re-telling such recipients
 *      cost 274,511 notices in an overloaded stage); uid 1 then opens. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "peer.h"

static peer *login(peer_server *s, uint32_t uid)
{
    peer *p = peer_connect(s->port);
    peer_login_ok(p, uid, NULL, 0);
    return p;
}

static uint64_t expect_notice(peer *p, uint32_t uid, int ms)
{
    Hb__Frame *f = peer_expect(p, HB__FRAME__BODY_NOTICE, ms);
    CHECK(f, "uid %u: no notice within %d ms", uid, ms);
    return f->notice->packet_id;
}

static void open_ok(peer *p, uint32_t uid, uint64_t id)
{
    peer_open(p, id);
    Hb__Frame *f = peer_expect(p, HB__FRAME__BODY_OPEN_REPLY, 3000);
    CHECK(f && f->open_reply->status == HB__OPEN_STATUS__OPEN_OK && f->open_reply->share > 0,
          "uid %u: open of %llu not paid", uid, (unsigned long long)id);
}

/* Start a server with one send packet for uids 0..2, log them in, get the
 * notices; 0 and 1 open, 2 drops its connection.  Returns the packet id. */
static uint64_t scenario(peer_server *s, const char *renotify, bool open1, peer **p0, peer **p1)
{
    const char *flags[] = {"--listen", "127.0.0.1", "--sets", "2", "--users", "3", "--total", "0", "--send-total", "1",
                           "--send-split", "3", "--send-amount-min", "3", "--send-amount-max", "300",
                           "--start-delay", "1", "--renotify", renotify, NULL};
    peer_server_start(s, 1, flags);
    *p0 = login(s, 0);
    *p1 = login(s, 1);
    peer *p2 = login(s, 2);
    uint64_t id = expect_notice(*p0, 0, 5000);
    CHECK(expect_notice(*p1, 1, 3000) == id && expect_notice(p2, 2, 3000) == id, "different packets");
    open_ok(*p0, 0, id);
    if (open1)
        open_ok(*p1, 1, id);
    peer_close(p2); /* the notice was written; the client never acted on it */
    return id;
}

int main(void)
{
    peer_server s;
    peer *p0, *p1;
    scenario(&s, "0", true, &p0, &p1);
    peer *p2 = login(&s, 2);
    CHECK(!peer_expect(p2, HB__FRAME__BODY_NOTICE, 4000), "control: a notice came with --renotify 0");
    peer_close(p2);
    peer_close(p0);
    peer_close(p1);
    peer_server_stop(&s);
    PASS("control (--renotify 0): a notice lost with its connection is never sent again");

    uint64_t id = scenario(&s, "2", false, &p0, &p1);
    sleep(7); /* uid 2 offline: renotified (parked) at about 2 s and 6 s */
    CHECK(!peer_expect(p1, HB__FRAME__BODY_NOTICE, 300),
          "uid 1, on the session it was told on, was told again for being slow");
    open_ok(p1, 1, id);
    PASS("--renotify 2: uid 1, online and silent for 7 s on the same session, not told again; then opened");
    p2 = login(&s, 2);
    CHECK(expect_notice(p2, 2, 1000) == id, "wrong packet");
    CHECK(!peer_expect(p2, HB__FRAME__BODY_NOTICE, 500), "the parked notice came twice");
    open_ok(p2, 2, id);
    PASS("--renotify 2: offline for 7 s, one notice at login, opened and paid");
    CHECK(!peer_expect(p0, HB__FRAME__BODY_NOTICE, 10) && !peer_expect(p1, HB__FRAME__BODY_NOTICE, 10),
          "a recipient who had opened was told again");
    uint64_t renotified = peer_stat(&s, "renotified");
    CHECK(renotified >= 2, "renotified %llu (want >= 2: two re-parks while offline)", (unsigned long long)renotified);
    sleep(3);
    CHECK(peer_stat(&s, "renotified") == renotified, "told again after every share was opened");
    peer_close(p2);
    peer_close(p0);
    peer_close(p1);
    peer_server_stop(&s);
    PASS("recipients who opened are never told again; %llu notices sent again in all", (unsigned long long)renotified);
    return 0;
}
