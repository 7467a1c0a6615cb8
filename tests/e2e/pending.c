/* pending.c -- replies waiting for the journal are bounded per connection
 * (issue 13.5).  A reply that reveals a grant leaves only once the grant's
 * record is durable; until then it waits in its SET's deferred queue.
 * Retried shakes and repeated opens are not rate-limited, so a client that
 * repeats one retry while the disk is slow (played here by --journal-delay)
 * grew that queue by one 64-byte entry per request: before the bound, 2,000
 * retries of one won shake during a 400 ms write left ~2,000 entries.  Now
 * the connection is closed with ERR_TOO_MANY_PENDING after a few, the
 * honest reply is not lost (a new connection's retry is answered from the
 * grant) and the queue stays small. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "peer.h"

int main(void)
{
    peer_server s;
    const char *flags[] = {"--listen", "127.0.0.1", "--sets", "1", "--users", "100", "--rate", "1000", "--total", "5",
                           "--shake-limit", "0", "--no-fsync", "--journal-delay", "400000", "--stats-every", "50", NULL};
    peer_server_start(&s, 1, flags);
    CHECK(peer_wait_stat(&s, "made_shake", 5, 10000) == 5, "packets not made");
    peer *p = peer_connect(s.port);
    peer_login_ok(p, 7, NULL, 0);
    peer_shake(p, 1, false);
    Hb__Frame *f = peer_expect(p, HB__FRAME__BODY_SHAKE_REPLY, 3000);
    CHECK(f && f->shake_reply->packet_id, "the first shake did not win");
    uint64_t won = f->shake_reply->packet_id;

    /* Win again (seq 2), then at once repeat its retry 2,000 times: every
     * one finds the grant, whose record waits ~400 ms for the journal. */
    static uint8_t burst[65536];
    size_t n = 0;
    for (int i = 0; i <= 2000; i++) {
        Hb__Shake sh = HB__SHAKE__INIT;
        sh.seq = 2;
        sh.retry = i > 0;
        Hb__Frame g = HB__FRAME__INIT;
        g.body_case = HB__FRAME__BODY_SHAKE;
        g.shake = &sh;
        n += hb_frame_pack(&g, burst + n, sizeof burst - n);
    }
    peer_send_raw(p, burst, n);
    uint64_t most = 0;
    for (int i = 0; i < 8; i++) { /* sample the gauge while the write waits */
        uint64_t d = peer_stat_now(&s, "deferred");
        most = d > most ? d : most;
        usleep(50000);
    }
    CHECK(most <= 16, "%llu replies waiting for the journal from one connection (bound: 8 per connection)",
          (unsigned long long)most);
    f = peer_expect(p, HB__FRAME__BODY_ERROR, 3000);
    CHECK(f && f->error->code == HB__ERROR_CODE__ERR_TOO_MANY_PENDING, "no ERR_TOO_MANY_PENDING (got %s)",
          f ? hb_error_name(f->error->code) : "nothing");
    CHECK(peer_closed(p, 3000), "not closed");
    peer_close(p);
    PASS("2,000 retries of one pending grant: at most %llu replies waiting, closed with ERR_TOO_MANY_PENDING",
         (unsigned long long)most);

    /* The honest answer is not lost: a new connection's retry gets it. */
    p = peer_connect(s.port);
    peer_login_ok(p, 7, NULL, 0);
    peer_shake(p, 2, true);
    f = peer_expect(p, HB__FRAME__BODY_SHAKE_REPLY, 3000);
    CHECK(f && f->shake_reply->packet_id && f->shake_reply->packet_id != won,
          "the retry after reconnecting was not answered with the second win");
    uint64_t second = f->shake_reply->packet_id; /* f lives in p's arena */
    peer_close(p);
    CHECK(peer_stat(&s, "err_too_many_pending") == 1, "not counted once");
    peer_server_stop(&s);
    PASS("retry on a new connection answered from the grant (packet %llu)", (unsigned long long)second);
    return 0;
}
