/* make_corpus.c -- writes the seed corpus of the fuzz targets (committed
 * under tests/fuzz/corpus/; regenerate with `hb-make-corpus DIR`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "frame.h"
#include "jfile.h"

static uint8_t buf[8192];
static size_t len;

static void add(const Hb__Frame *f)
{
    len += hb_frame_pack(f, buf + len, sizeof buf - len);
}
static void raw(const void *p, size_t n)
{
    memcpy(buf + len, p, n);
    len += n;
}
static void save(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len) {
        perror(path);
        exit(1);
    }
    fclose(f);
    len = 0;
}

static void login(uint32_t uid)
{
    Hb__Login l = HB__LOGIN__INIT;
    l.uid = uid;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_LOGIN;
    f.login = &l;
    add(&f);
}
static void shake(uint32_t seq, int retry)
{
    Hb__Shake s = HB__SHAKE__INIT;
    s.seq = seq;
    s.retry = retry;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_SHAKE;
    f.shake = &s;
    add(&f);
}
static void open_(uint64_t id)
{
    Hb__Open o = HB__OPEN__INIT;
    o.packet_id = id;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_OPEN;
    f.open = &o;
    add(&f);
}
static void chat(uint32_t to, const char *text)
{
    Hb__Chat c = HB__CHAT__INIT;
    c.to_uid = to;
    c.text = (char *)text;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_CHAT;
    f.chat = &c;
    add(&f);
}
static void record(Hb__RecordType t, Hb__PacketKind k, uint64_t id, uint32_t amount, uint32_t uid)
{
    Hb__Record r = HB__RECORD__INIT;
    r.type = t;
    r.kind = k;
    r.packet_id = id;
    r.amount = amount;
    r.uid = uid;
    uint32_t rc[3] = {1, 2, 3}, sh[3] = {100, 200, 300};
    if (t == HB__RECORD_TYPE__REC_CREATE && k == HB__PACKET_KIND__KIND_SEND) {
        r.n_recipients = r.n_shares = 3;
        r.recipients = rc;
        r.shares = sh;
    }
    len += hb_jrec_pack(&r, buf + len, sizeof buf - len);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: hb-make-corpus DIR (writes DIR/frame, DIR/server, DIR/journal)\n");
        return 2;
    }
    char d[3][512];
    const char *sub[3] = {"frame", "server", "journal"};
    mkdir(argv[1], 0755);
    for (int i = 0; i < 3; i++) {
        snprintf(d[i], sizeof d[i], "%s/%s", argv[1], sub[i]);
        mkdir(d[i], 0755);
    }
    /* server sessions (also frame seeds) */
    login(1), shake(1, 0), shake(2, 0), shake(3, 1);
    save(d[1], "login-shakes");
    login(2), open_(1000000000001ULL), open_(1000000000001ULL), open_(1000000000002ULL), open_(5);
    save(d[1], "login-opens");
    login(3), chat(1, "hello"), chat(3, "me"), chat(999, "far");
    save(d[1], "login-chat");
    shake(1, 0);
    save(d[1], "shake-before-login");
    login(4), login(5);
    save(d[1], "login-twice");
    const uint8_t bad[] = {0x81, 0x04, 0x00, 0x00};
    raw(bad, sizeof bad);
    save(d[1], "too-large");
    login(6), shake(9, 0);
    buf[len++] = 0x10; /* a frame promising 16 bytes, never finished */
    buf[len++] = 0x1a;
    save(d[1], "partial");
    /* frames */
    login(7), shake(1, 1), chat(8, "x");
    save(d[0], "mixed");
    /* journals */
    record(HB__RECORD_TYPE__REC_CREATE, HB__PACKET_KIND__KIND_SHAKE, 1, 100, 0);
    record(HB__RECORD_TYPE__REC_CREATE, HB__PACKET_KIND__KIND_SHAKE, 2, 200, 0);
    record(HB__RECORD_TYPE__REC_WIN, HB__PACKET_KIND__KIND_SHAKE, 1, 100, 42);
    record(HB__RECORD_TYPE__REC_CREATE, HB__PACKET_KIND__KIND_SEND, 1000000000001ULL, 600, 0);
    record(HB__RECORD_TYPE__REC_SHARE, HB__PACKET_KIND__KIND_SEND, 1000000000001ULL, 200, 2);
    save(d[2], "journal");
    return 0;
}
