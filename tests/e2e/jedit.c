/* jedit.c -- hb-jedit, a test-only journal editor for the negative controls
 * of the e2e tests: copies a grant journal (proto/jfile.h) record by record,
 * re-encoding every entry (so every CRC is right), and drops or alters one.
 *
 *   hb-jedit IN OUT --drop TYPE N        leave out the Nth (1-based) record of TYPE
 *   hb-jedit IN OUT --amount TYPE N D    add D (may be negative) to its amount
 *   hb-jedit IN --count TYPE             print how many records of TYPE IN holds
 * TYPE: create, win, share, cycle.  Exit 0 done, 1 no such record, 2 usage or
 * an unreadable journal (a journal that does not read to its end cleanly is
 * refused: the controls must start from a good one). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jfile.h"
#include "util.h"

static int usage(void)
{
    fprintf(stderr, "usage: hb-jedit IN OUT --drop TYPE N | IN OUT --amount TYPE N DELTA | IN --count TYPE\n"
                    "  TYPE: create, win, share, cycle\n");
    return 2;
}

static int type_of(const char *s)
{
    static const char *names[] = {"create", "win", "share", "cycle"};
    static const int types[] = {HB__RECORD_TYPE__REC_CREATE, HB__RECORD_TYPE__REC_WIN, HB__RECORD_TYPE__REC_SHARE,
                                HB__RECORD_TYPE__REC_CYCLE};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i]))
            return types[i];
    return -1;
}

int main(int argc, char **argv)
{
    hb_prog = "hb-jedit";
    char err[512];
    const char *in, *out = NULL, *op;
    int type;
    long long n = 0, delta = 0;
    if (argc == 4 && !strcmp(argv[2], "--count")) {
        in = argv[1];
        op = "count";
        type = type_of(argv[3]);
    } else if (argc == 6 && !strcmp(argv[3], "--drop")) {
        in = argv[1], out = argv[2], op = "drop";
        type = type_of(argv[4]);
        n = atoll(argv[5]);
    } else if (argc == 7 && !strcmp(argv[3], "--amount")) {
        in = argv[1], out = argv[2], op = "amount";
        type = type_of(argv[4]);
        n = atoll(argv[5]);
        delta = atoll(argv[6]);
    } else {
        return usage();
    }
    if (type < 0 || (out && n < 1))
        return usage();

    hb_jfile jf;
    if (hb_jfile_open(&jf, in, err, sizeof err) < 0) {
        fprintf(stderr, "hb-jedit: %s\n", err);
        return 2;
    }
    FILE *f = NULL;
    if (out && !(f = fopen(out, "wb"))) {
        fprintf(stderr, "hb-jedit: %s: %s\n", out, strerror(errno));
        return 2;
    }
    long long seen = 0;
    bool done = false;
    Hb__Record *r;
    while (hb_jfile_next(&jf, &r)) {
        if ((int)r->type == type && ++seen == n && out) {
            done = true;
            if (!strcmp(op, "drop")) {
                fprintf(stderr, "hb-jedit: dropped record %lld of its type: packet %llu uid %u amount %u\n", n,
                        (unsigned long long)r->packet_id, r->uid, r->amount);
                continue;
            }
            fprintf(stderr, "hb-jedit: packet %llu uid %u amount %u -> %lld\n", (unsigned long long)r->packet_id,
                    r->uid, r->amount, (long long)r->amount + delta);
            r->amount = (uint32_t)((long long)r->amount + delta);
        }
        if (f) {
            uint8_t buf[HB_JREC_MAX + 16];
            size_t len = hb_jrec_pack(r, buf, sizeof buf);
            if (len == 0 || fwrite(buf, 1, len, f) != len) {
                fprintf(stderr, "hb-jedit: cannot write %s\n", out);
                return 2;
            }
        }
    }
    if (jf.stop_reason) {
        fprintf(stderr, "hb-jedit: %s: %s at byte %zu\n", in, jf.stop_reason, jf.valid);
        return 2;
    }
    hb_jfile_close(&jf);
    if (!f) {
        printf("%lld\n", seen);
        return 0;
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "hb-jedit: %s: %s\n", out, strerror(errno));
        return 2;
    }
    if (!done) {
        fprintf(stderr, "hb-jedit: %s holds only %lld records of that type\n", in, seen);
        return 1;
    }
    return 0;
}
