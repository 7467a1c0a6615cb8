/* tail.c -- a damaged last journal entry is not a torn tail (issue 13.8).
 * A crash mid-write leaves the last entry short: it was never durable,
 * never answered, and is cut.  A last entry that is whole but fails its CRC
 * was written completely and may have been answered (a WIN): cutting it
 * would deal that packet again.  The server must refuse to start on it
 * (exit 1, saying why) and hb-reconcile must call it unusable input (exit
 * 2); --journal-cut still lets an operator cut it knowingly.  Before this
 * check the server cut it silently and started. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "peer.h"

static int reconcile(const char *journal)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/hb-reconcile --journal %s >/dev/null 2>&1", getenv("HB_BIN"), journal);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
    peer_server a;
    const char *flags[] = {"--listen", "127.0.0.1", "--sets", "2", "--users", "40", "--rate", "1000", "--total", "5",
                           "--no-fsync", NULL};
    peer_server_start(&a, 1, flags);
    CHECK(peer_wait_stat(&a, "made_shake", 5, 10000) == 5, "packets not made");
    peer *p = peer_connect(a.port);
    peer_login_ok(p, 7, NULL, 0);
    peer_shake(p, 1, false);
    Hb__Frame *f = peer_expect(p, HB__FRAME__BODY_SHAKE_REPLY, 3000);
    CHECK(f && f->shake_reply->packet_id, "the shake did not win");
    peer_close(p);
    peer_server_stop(&a); /* the last entry is now that WIN */

    struct stat st;
    CHECK(stat(a.journal, &st) == 0, "no journal");
    char port[16];
    snprintf(port, sizeof port, "%d", peer_free_port());
    const char *restart[] = {"--listen", "127.0.0.1", "--port", port, "--users", "40", "--rate", "1000", "--total",
                             "5", "--journal", a.journal, "--no-fsync", NULL};
    /* Flip a bit 6 bytes before the end: inside the WIN record's body. */
    FILE *j = fopen(a.journal, "r+b");
    CHECK(j, "cannot open the journal");
    fseek(j, -6, SEEK_END);
    int c = fgetc(j);
    fseek(j, -6, SEEK_END);
    fputc(c ^ 0x10, j);
    fclose(j);
    char out[4096];
    int rc = peer_server_run(restart, 5000, out, sizeof out);
    CHECK(rc == 1, "restart on a whole but damaged last entry: exit %d (want 1; -1 = it started)\n%s", rc, out);
    CHECK(strstr(out, "whole but damaged"), "the refusal does not say why:\n%s", out);
    CHECK(stat(a.journal, &st) == 0 && st.st_size > 0, "journal gone");
    off_t size = st.st_size;
    CHECK(stat(a.journal, &st) == 0 && st.st_size == size, "the refusal changed the journal");
    PASS("whole damaged last entry: server refused");
    rc = reconcile(a.journal);
    CHECK(rc == 2, "hb-reconcile on a whole damaged last entry: exit %d (want 2)", rc);
    PASS("whole damaged last entry: hb-reconcile exit 2");

    /* A short last entry (a crash mid-write) is cut, and the server starts. */
    CHECK(truncate(a.journal, size - 3) == 0, "truncate");
    const char *torn[] = {"--listen", "127.0.0.1", "--port", port, "--users", "40", "--rate", "1000", "--total", "5",
                          "--journal", a.journal, "--no-fsync", NULL};
    rc = peer_server_run(torn, 3000, out, sizeof out); /* runs until killed at the deadline */
    CHECK(rc == -1 && strstr(out, "listening on"), "restart on a torn tail: exit %d\n%s", rc, out);
    CHECK(strstr(out, "cut a torn last entry"), "torn tail not reported as cut:\n%s", out);
    PASS("short last entry: cut, server started");
    return 0;
}
