/* replay.h -- rebuilding the server's money state from the grant journal at
 * start-up: which packets exist, which were won or opened, what the
 * producers have already made.  After a crash nothing granted is granted
 * again and nothing created is lost: packets created but not won go back
 * into the SET queues, unopened send-flow shares are notified again. */
#ifndef SV_REPLAY_H
#define SV_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include "pqueue.h"

#include "registry.h"

typedef struct sv_replay {
    uint64_t records;
    uint64_t shake_made, send_made;   /* CREATE records per flow */
    uint64_t wins, win_amount;        /* WIN records */
    uint64_t shares, share_amount;    /* SHARE records */
    uint64_t anomalies;               /* inconsistent records (logged) */
    uint32_t cycles;                  /* CYCLE records: producer cycles begun */
    Hb__Cycle cycle;                  /* the settings of the last one */
    size_t valid;                     /* bytes of intact entries */
    size_t size;                      /* file size */
    const char *stop_reason;          /* torn tail etc., NULL if clean */
    bool torn;                        /* stopped at a short last entry (a crash), not at damage */
    size_t intact_after;              /* intact entries after the bad one: damage, not a torn tail */
    sv_packet *unwon;                 /* created, not won: to deal again */
    size_t n_unwon;
} sv_replay_t;

/* Fills reg (send packets, grants) and rp.  0, or -1 with err. */
int sv_replay(sv_registry *reg, const char *path, sv_replay_t *rp, char *err, size_t errlen);
/* The same from an opened journal (closed by the call). */
struct hb_jfile;
int sv_replay_jfile(sv_registry *reg, struct hb_jfile *jf, sv_replay_t *rp, char *err, size_t errlen);
void sv_replay_free(sv_replay_t *rp);

#endif
