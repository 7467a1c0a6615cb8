/* registry.h -- what the server must remember about money between requests:
 * the send-flow packets (recipients, shares, who opened) and the shake wins
 * by (uid, seq), so a retried shake is answered with its original win.
 * Both are touched only on the rare paths (a few hundred times a second at
 * the seed's rates), under striped locks; the plain shake path never is.
 *
 * The producer thread takes none of these locks in a way that waits for a
 * SET (a SET holding a stripe may be preempted, and the producer's schedule
 * would stall behind it): it fills a new packet before publishing it, so no
 * one else can see it yet; the renotify fields are its own; and its
 * once-a-second sweep reads a packet only if the stripe is free at once
 * (sv_registry_try_get_send), else looks again a second later. */
#ifndef SV_REGISTRY_H
#define SV_REGISTRY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "hongbao.pb-c.h"
#include "journal.h"
#include "money.h"


typedef struct sv_sendpkt {
    uint32_t amount;
    uint8_t n;      /* recipients */
    uint8_t opened; /* bit i: recipient i has opened */
    uint32_t uid[HB_SPLIT_MAX];
    uint32_t share[HB_SPLIT_MAX];
    uint64_t jseq;  /* journal record of the latest open (0: before this run) */
    /* Renotify schedule (renotify.c; the producer thread's own, written
     * without the stripe lock: no other thread reads or writes them):
     * second of the server's monotonic clock when unopened recipients are
     * told again (0 = not scheduled yet), how often they were, and the
     * recipients whose last notice could not be routed (bit i). */
    uint32_t renotify_at;
    uint8_t renotified;
    uint8_t unrouted;
    /* The session (directory location) each recipient's notice was last
     * written to, so a recipient still on that session is not told again
     * just for being slow (0: not yet written).  Written by the SET that
     * wrote the notice, under the stripe lock. */
    uint64_t told_loc[HB_SPLIT_MAX];
} sv_sendpkt;

typedef struct sv_grant {
    uint64_t key; /* (uid + 1) << 32 | seq; 0 = empty */
    uint64_t packet_id;
    uint64_t jseq; /* its WIN record in this run's journal (0: replayed) */
    uint32_t amount;
} sv_grant;

/* Send packets live in chunks of SV_SEND_CHUNK, allocated by the one writer
 * (producer or replay) before it publishes the count, so readers index
 * without a lock and nothing ever moves under them. */
#define SV_SEND_CHUNK 65536
#define SV_SEND_CHUNKS 16384 /* up to 1,073,741,824 send packets */

typedef struct sv_registry {
    unsigned band;   /* packet id band (proto/money.h): 0 unless in a cluster; set before use */
    sv_sendpkt **chunk;
    _Atomic uint64_t send_count; /* packets 0..count-1 are published */
    pthread_mutex_t send_mu[64];
    pthread_mutex_t grant_mu;
    sv_grant *g;
    size_t gcap, glen;
} sv_registry;

int sv_registry_init(sv_registry *r);
/* Send packet k (from 0) of this registry's band, and the k of an id (-1: not one of its band). */
static inline uint64_t sv_registry_send_id(const sv_registry *r, uint64_t k)
{
    return hb_send_id_in(r->band, k);
}
static inline int64_t sv_registry_send_k(const sv_registry *r, uint64_t id)
{
    uint64_t first = hb_send_id_in(r->band, 0);
    return id >= first && id - first < HB_SEND_BAND ? (int64_t)(id - first) : -1;
}
void sv_registry_free(sv_registry *r);

/* Producer and replay only (one thread at a time): publish packet `id`,
 * which must be the next one (ids are dense); -1 otherwise.  No lock: until
 * send_count covers it, no other thread can reach it. */
int sv_registry_put_send(sv_registry *r, uint64_t id, const sv_sendpkt *p);
/* A snapshot of packet id under its lock; false if unknown. */
bool sv_registry_get_send(sv_registry *r, uint64_t id, sv_sendpkt *out);
/* The same without waiting: 1, 0 if unknown, -1 if its stripe is held by
 * another thread just now (the producer's sweep then looks again later). */
int sv_registry_try_get_send(sv_registry *r, uint64_t id, sv_sendpkt *out);

/* The producer thread's own fields of packet id (no lock, see above): its
 * renotify schedule, and which recipients' notices could not be routed
 * (bits in `failed` set, bits in `routed` cleared). */
void sv_registry_set_renotify(sv_registry *r, uint64_t id, uint32_t at, uint8_t times);
void sv_registry_set_unrouted(sv_registry *r, uint64_t id, uint8_t failed, uint8_t routed);
/* Recipient uid's notice was written to the session at loc (handlers.c). */
void sv_registry_told(sv_registry *r, uint64_t id, uint32_t uid, uint64_t loc);

/* A recipient opens packet id.  On OPEN_OK the share is journaled (record
 * number in *jseq) under the packet's lock, so two opens cannot both pay.
 * On OPEN_ALREADY *share repeats the earlier share and *jseq is the record of
 * the packet's latest open: the caller replies once that is durable. */
Hb__OpenStatus sv_registry_open(sv_registry *r, sv_journal *j, int set, uint64_t id, uint32_t uid, uint32_t *share,
                                uint64_t *jseq);
/* Replay: uid opened packet id and got `amount`; false if that is not a
 * consistent record (not a recipient, twice, wrong amount). */
bool sv_registry_mark_opened(sv_registry *r, uint64_t id, uint32_t uid, uint32_t amount);

void sv_registry_add_grant(sv_registry *r, uint32_t uid, uint32_t seq, uint64_t packet_id, uint32_t amount,
                           uint64_t jseq);
bool sv_registry_find_grant(sv_registry *r, uint32_t uid, uint32_t seq, uint64_t *packet_id, uint32_t *amount,
                            uint64_t *jseq);

/* Split `amount` cents into n shares, each >= 1, summing exactly to amount,
 * uniformly over all such splits.  -1 if amount < n or n is out of range. */
int sv_split(uint64_t *rng, uint32_t amount, unsigned n, uint32_t *shares);

#endif
