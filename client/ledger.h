/* ledger.h -- what a client process was granted, one line per grant, for
 * the ledger check against the server's journal (tools/reconcile.c).  The
 * line format is proto/ledgerfile.h: W (a shake won: packet, uid, amount,
 * seq), S (an open paid a share), and, written at exit, Q and O for what was
 * still unanswered when the client stopped (the server may have paid it; the
 * reply never reached us).
 * Lines are buffered and flushed once a second and at exit; grants are a few
 * hundred a second, so one mutex around the file is plenty.
 * A client records a grant once even if the server repeats it (a retried
 * shake or open after a reconnect): hb_keyset remembers what was recorded. */
#ifndef HB_LEDGER_H
#define HB_LEDGER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "ledgerfile.h"

typedef struct hb_ledger {
    FILE *f;
    pthread_mutex_t mu;
    uint64_t wins, shares;
} hb_ledger;

int hb_ledger_open(hb_ledger *l, const char *path, const char *header, char *err, size_t errlen);
void hb_ledger_win(hb_ledger *l, uint64_t packet_id, uint32_t uid, uint32_t amount, uint32_t seq);
void hb_ledger_share(hb_ledger *l, uint64_t packet_id, uint32_t uid, uint32_t share);
void hb_ledger_unanswered_shake(hb_ledger *l, uint32_t uid, uint32_t seq);
void hb_ledger_unanswered_open(hb_ledger *l, uint64_t packet_id, uint32_t uid);
void hb_ledger_flush(hb_ledger *l);
void hb_ledger_close(hb_ledger *l);

/* A set of (packet, uid) pairs: open addressing, grows. */
typedef struct hb_keyset {
    struct hb_key {
        uint64_t packet;
        uint32_t uid;
        uint32_t used;
    } *k;
    size_t cap, len;
} hb_keyset;

/* true if it was new (and is now in the set) */
bool hb_keyset_add(hb_keyset *s, uint64_t packet, uint32_t uid);
bool hb_keyset_has(const hb_keyset *s, uint64_t packet, uint32_t uid);
void hb_keyset_free(hb_keyset *s);

#endif
