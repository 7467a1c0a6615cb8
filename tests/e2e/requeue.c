/* requeue.c -- every unwon packet of the journal is dealt again after a
 * restart, however small the SET queues (issue 13.4).  Before, replay put
 * the unwon packets into the queues and logged the rest ("does not fit any
 * queue") without dealing them in that run: money not lost, but stuck.
 * Here: 20 packets made, none won, the server killed; restarted with 2 SETs
 * of --queue 2 (4 places): shakes must win all 20, each once, and no more. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "peer.h"

int main(void)
{
    peer_server a, b;
    const char *flags[] = {"--listen", "127.0.0.1", "--sets", "2", "--queue", "100", "--users", "100", "--rate", "1000",
                           "--total", "20", "--shake-limit", "0", "--no-fsync", NULL};
    peer_server_start(&a, 1, flags);
    CHECK(peer_wait_stat(&a, "made_shake", 20, 10000) == 20, "packets not made");
    peer_server_kill(&a); /* all 20 in the queues, unwon */

    /* Restart on the same journal (peer_server_start makes a new directory:
     * point it at the old journal). */
    char journal[256];
    snprintf(journal, sizeof journal, "--journal=%s", a.journal);
    const char *again[] = {"--listen", "127.0.0.1", "--sets", "2", "--queue", "2", "--users", "100", "--rate", "1000",
                           "--total", "20", "--shake-limit", "0", "--no-fsync", journal, NULL};
    peer_server_start(&b, 1, again);
    uint64_t won = 0, shakes = 0;
    uint64_t seen[21] = {0};
    /* Each SET deals only from its own queue: shake on a connection in each. */
    peer *p[2] = {NULL, NULL};
    for (uint32_t uid = 1; uid < 60 && !(p[0] && p[1]); uid++) {
        peer *c = peer_connect(b.port);
        int set = peer_login_ok(c, uid, NULL, 0);
        CHECK(set == 0 || set == 1, "login answered by SET %d", set);
        if (!p[set])
            p[set] = c;
        else
            peer_close(c);
    }
    CHECK(p[0] && p[1], "no connection landed in one of the 2 SETs");
    for (uint32_t seq = 1; seq <= 400 && won < 20; seq++) {
        peer *c = p[seq % 2];
        peer_shake(c, seq, false);
        Hb__Frame *f = peer_expect(c, HB__FRAME__BODY_SHAKE_REPLY, 3000);
        CHECK(f, "no reply to shake %u", seq);
        shakes++;
        uint64_t id = f->shake_reply->packet_id;
        if (id) {
            CHECK(id >= 1 && id <= 20, "won packet %llu: not one of the journal's 20", (unsigned long long)id);
            CHECK(!seen[id]++, "packet %llu won twice", (unsigned long long)id);
            won++;
        } else {
            usleep(2000); /* the producer refills the queues every millisecond */
        }
    }
    CHECK(won == 20, "%llu of the journal's 20 unwon packets won after the restart (%llu shakes)",
          (unsigned long long)won, (unsigned long long)shakes);
    for (uint32_t seq = 1000; seq < 1020; seq++) {
        peer_shake(p[seq % 2], seq, false);
        Hb__Frame *f = peer_expect(p[seq % 2], HB__FRAME__BODY_SHAKE_REPLY, 3000);
        CHECK(f && f->shake_reply->packet_id == 0, "a 21st packet was won");
    }
    peer_close(p[0]);
    peer_close(p[1]);
    peer_server_stop(&b);
    PASS("restart with 4 queue places: all 20 unwon packets dealt and won once (%llu shakes)",
         (unsigned long long)shakes);
    return 0;
}
