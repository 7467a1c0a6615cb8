/* lock.c -- one journal, one server (issue 13.1).  A second hb-server on
 * the same journal would replay the same unwon packets and deal them again:
 * reproduced on the code before the lock, 5 unwon packets were each won
 * twice.  So a second start on a running server's journal must refuse,
 * exit 1 and name the running server's pid; a second start on a running
 * server's port (its listeners use SO_REUSEPORT, which would let another
 * process share the port and take part of its users) must refuse too; and
 * the running server must be unaffected: it still answers and pays each
 * packet once. */
#include <stdio.h>
#include <string.h>
#include "peer.h"

int main(void)
{
    peer_server a;
    const char *flags[] = {"--listen", "127.0.0.1", "--sets", "2", "--users", "40", "--rate", "1000", "--total", "5",
                           "--no-fsync", NULL};
    peer_server_start(&a, 1, flags);
    CHECK(peer_wait_stat(&a, "made_shake", 5, 10000) == 5, "packets not made");

    char out[4096], port[16], want[64], other[256];
    snprintf(port, sizeof port, "%d", peer_free_port());
    const char *same_journal[] = {"--listen", "127.0.0.1", "--port", port, "--users", "40", "--rate", "1000",
                                  "--total", "5", "--journal", a.journal, "--no-fsync", NULL};
    int rc = peer_server_run(same_journal, 5000, out, sizeof out);
    CHECK(rc == 1, "a second server on the journal of a running one: exit %d (want 1; -1 = it started)\n%s", rc, out);
    snprintf(want, sizeof want, "locked by process %d", (int)a.pid);
    CHECK(strstr(out, want), "the refusal does not name the holder (%s):\n%s", want, out);
    PASS("second server on the same journal refused: %s", want);

    snprintf(port, sizeof port, "%d", a.port);
    snprintf(other, sizeof other, "%s/other.journal", a.dir);
    const char *same_port[] = {"--listen", "127.0.0.1", "--port", port, "--users", "40", "--journal", other,
                               "--no-fsync", NULL};
    rc = peer_server_run(same_port, 5000, out, sizeof out);
    CHECK(rc == 1, "a second server on the port of a running one: exit %d (want 1; -1 = it started)\n%s", rc, out);
    CHECK(strstr(out, "in use by another process"), "the refusal does not say the port is in use:\n%s", out);
    PASS("second server on the same port refused");

    /* The running server is untouched: 40 uids shake, 5 packets, each paid once. */
    uint64_t won = 0;
    for (uint32_t uid = 0; uid < 40; uid++) {
        peer *p = peer_connect(a.port);
        peer_login_ok(p, uid, NULL, 0);
        peer_shake(p, 1, false);
        Hb__Frame *f = peer_expect(p, HB__FRAME__BODY_SHAKE_REPLY, 3000);
        CHECK(f, "uid %u: no shake reply", uid);
        won += f->shake_reply->packet_id != 0;
        peer_close(p);
    }
    CHECK(won == 5, "%llu packets won by 40 shakes of 5 made (want 5)", (unsigned long long)won);
    peer_server_stop(&a);
    PASS("the running server paid its 5 packets once each");
    return 0;
}
