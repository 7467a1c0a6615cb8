/* ledger.h -- what a client process was granted, one line per grant, for
 * the ledger check against the server's journal (tools/reconcile.c).  The
 * line format is proto/ledgerfile.h: W (a shake won: packet, uid, amount,
 * seq), S (an open paid a share), and, written at exit, Q and O for what was
 * still unanswered when the client stopped (the server may have paid it; the
 * reply never reached us).
 * Lines are buffered and flushed once a second and at exit; grants are a few
 * hundred a second, so one mutex around the file is plenty.
 * A client records a grant once even if the server repeats it (a retried
 * shake or open after a reconnect): cl_keyset remembers what was recorded. */
#ifndef CL_LEDGER_H
#define CL_LEDGER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "ledgerfile.h"

typedef struct cl_ledger {
    FILE *f;
    pthread_mutex_t mu;
    uint64_t wins, shares;
} cl_ledger;

int cl_ledger_open(cl_ledger *l, const char *path, const char *header, char *err, size_t errlen);
void cl_ledger_win(cl_ledger *l, uint64_t packet_id, uint32_t uid, uint32_t amount, uint32_t seq);
void cl_ledger_share(cl_ledger *l, uint64_t packet_id, uint32_t uid, uint32_t share);
void cl_ledger_unanswered_shake(cl_ledger *l, uint32_t uid, uint32_t seq);
void cl_ledger_unanswered_open(cl_ledger *l, uint64_t packet_id, uint32_t uid);
void cl_ledger_flush(cl_ledger *l);
void cl_ledger_close(cl_ledger *l);

/* A set of (packet, uid) pairs: open addressing, grows. */
typedef struct cl_keyset {
    struct cl_key {
        uint64_t packet;
        uint32_t uid;
        uint32_t used;
    } *k;
    size_t cap, len;
} cl_keyset;

/* true if it was new (and is now in the set) */
bool cl_keyset_add(cl_keyset *s, uint64_t packet, uint32_t uid);
bool cl_keyset_has(const cl_keyset *s, uint64_t packet, uint32_t uid);
void cl_keyset_free(cl_keyset *s);

#endif
