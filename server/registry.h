/* registry.h -- what the server must remember about money between requests:
 * the send-flow packets (recipients, shares, who opened) and the shake wins
 * by (uid, seq), so a retried shake is answered with its original win.
 *
 * No lock anywhere (README "C1000K on one box": at 1M connections 64 SETs
 * share 2 cores, and a SET preempted while holding a lock stalled every SET
 * that needed it; the 1M run counted 71 s of waits on the send stripes and
 * 18 s on the grant table's lock).  Every shared word is an atomic, and no
 * thread ever waits for another here:
 *
 * - A send packet is filled by its one writer (producer or replay) before
 *   send_count publishes it; after that only its atomic words change.  Who
 *   opened is one 16-bit word per packet: bit i claims recipient i's share
 *   (set by the one open that pays it), bit 8+i says its SHARE record has
 *   been appended and `jseq` covers it.  An open that finds the claim
 *   without the record (the same share being opened from another connection
 *   at that moment) is not answered and does not wait: the caller asks again
 *   later (set.h, xmsg.c), so an OPEN_ALREADY never leaves before the record
 *   it repeats can be made durable.
 * - The grant table is a chain of open-addressed tables of doubling size:
 *   inserts go to the newest, a full one gets a successor installed by CAS,
 *   lookups search from the newest to the oldest; nothing is ever moved.  A
 *   slot is claimed by CAS on its key and its payload published with a
 *   release store.  A find treats a claimed, unpublished slot as absent:
 *   that is right because of what callers guarantee (handlers.c): a grant
 *   is added under its uid's directory stripe lock, so a retried shake that
 *   must see it (a later session's, or the same connection's next frame) is
 *   ordered after the add by that lock; and adds of the same (uid, seq) are
 *   ordered the same way (or come from replay's one thread), so a later add
 *   lands further along the same probe run or in a newer table, and the
 *   last match found wins, as an overwrite did.
 *
 * The producer's renotify fields (renotify_at, renotified, unrouted) are
 * its own: written and read only by that thread, plain. */
#ifndef SV_REGISTRY_H
#define SV_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "hongbao.pb-c.h"
#include "journal.h"
#include "money.h"


/* A send packet as a value: what the producer and replay hand in, and what
 * a snapshot (sv_registry_get_send) hands out. */
typedef struct sv_sendpkt {
    uint32_t amount;
    uint8_t n;      /* recipients */
    uint8_t opened; /* bit i: recipient i's share is paid (claimed: its record appended or about to be) */
    uint32_t uid[HB_SPLIT_MAX];
    uint32_t share[HB_SPLIT_MAX];
    uint64_t jseq;  /* the highest journal record of this run's opens (0: none yet) */
    /* Renotify schedule (renotify.c; the producer thread's own): second of
     * the server's monotonic clock when unopened recipients are told again
     * (0 = not scheduled yet), how often they were, and the recipients
     * whose last notice could not be routed (bit i). */
    uint32_t renotify_at;
    uint8_t renotified;
    uint8_t unrouted;
    /* The session (directory location) each recipient's notice was last
     * written to, so a recipient still on that session is not told again
     * just for being slow (0: not yet written). */
    uint64_t told_loc[HB_SPLIT_MAX];
} sv_sendpkt;

/* A send packet as stored: 152 bytes, as the plain struct was (1M packets
 * = 152 MB).  amount, n, uid and share never change once published; the
 * rest is the producer's own (plain) or atomic. */
#define SV_OPEN_CLAIMED(i) (1u << (i))      /* recipient i's share is being paid or paid */
#define SV_OPEN_RECORDED(i) (1u << (8 + (i))) /* ... and its SHARE record is appended, jseq covers it */
typedef struct sv_sendrec {
    uint32_t amount;
    uint32_t renotify_at;     /* producer */
    _Atomic uint16_t opened;  /* SV_OPEN_CLAIMED / SV_OPEN_RECORDED bits */
    uint8_t n;
    uint8_t renotified;       /* producer */
    uint8_t unrouted;         /* producer */
    uint32_t uid[HB_SPLIT_MAX];
    uint32_t share[HB_SPLIT_MAX];
    _Atomic uint64_t jseq;    /* the highest SHARE record of this run's opens (raised before a RECORDED bit is set) */
    _Atomic uint64_t told_loc[HB_SPLIT_MAX]; /* written by the SET that wrote the notice; a hint */
} sv_sendrec;
_Static_assert(sizeof(sv_sendrec) == 152, "sv_sendrec grew: memory per send packet is a measured figure");

/* A shake grant: 32 bytes.  key (uid + 1) << 32 | seq, 0 = empty, claimed
 * by CAS; the payload is written by the claimer, then `ready` is stored 1
 * with release; readers check ready (acquire) before reading it. */
typedef struct sv_gslot {
    _Atomic uint64_t key;
    uint64_t packet_id;
    uint64_t jseq; /* its WIN record in this run's journal (0: replayed) */
    uint32_t amount;
    _Atomic uint32_t ready;
} sv_gslot;

/* One table of the chain: at most cap/2 inserts normally, up to 3/4 while
 * its successor is being made (so a probe always ends at an empty slot). */
typedef struct sv_gtab {
    struct sv_gtab *older; /* set before the table is installed; never changes */
    size_t cap;            /* a power of 2 */
    _Atomic size_t tickets; /* inserts that came here (some went on to the successor) */
    sv_gslot slot[];
} sv_gtab;
#define SV_GRANT_CAP0 4096 /* slots of the first table (128 KB) */

/* Send packets live in chunks of SV_SEND_CHUNK, allocated by the one writer
 * (producer or replay) before it publishes the count, so readers index
 * without a lock and nothing ever moves under them. */
#define SV_SEND_CHUNK 65536
#define SV_SEND_CHUNKS 16384 /* up to 1,073,741,824 send packets */

typedef struct sv_registry {
    unsigned band;   /* packet id band (proto/money.h): 0 unless in a cluster; set before use */
    sv_sendrec **chunk;
    _Atomic uint64_t send_count; /* packets 0..count-1 are published */
    _Atomic(sv_gtab *) grants;   /* the newest grant table */
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
/* A snapshot of packet id (never waits); false if unknown.  Each atomic
 * word is read once; `opened` has the CLAIMED bits. */
bool sv_registry_get_send(sv_registry *r, uint64_t id, sv_sendpkt *out);

/* The producer thread's own fields of packet id (see above): its
 * renotify schedule, and which recipients' notices could not be routed
 * (bits in `failed` set, bits in `routed` cleared). */
void sv_registry_set_renotify(sv_registry *r, uint64_t id, uint32_t at, uint8_t times);
void sv_registry_set_unrouted(sv_registry *r, uint64_t id, uint8_t failed, uint8_t routed);
/* Recipient uid's notice was written to the session at loc (handlers.c). */
void sv_registry_told(sv_registry *r, uint64_t id, uint32_t uid, uint64_t loc);

/* A recipient opens packet id.  The share is claimed with one atomic OR, so
 * two opens cannot both pay; on OPEN_OK it is journaled (record number in
 * *jseq).  On OPEN_ALREADY *share repeats the earlier share and *jseq is a
 * record at or after the one that paid it: the caller replies once that is
 * durable.  Returns false, with nothing done, if the share is claimed but
 * its record not yet appended (another thread is opening it this moment):
 * the caller asks again later and must not answer meanwhile. */
bool sv_registry_open(sv_registry *r, sv_journal *j, int set, uint64_t id, uint32_t uid, Hb__OpenStatus *st,
                      uint32_t *share, uint64_t *jseq);
/* Replay: uid opened packet id and got `amount`; false if that is not a
 * consistent record (not a recipient, twice, wrong amount). */
bool sv_registry_mark_opened(sv_registry *r, uint64_t id, uint32_t uid, uint32_t amount);

/* Grants: see the top.  add: the caller orders adds of the same (uid, seq)
 * (directory stripe lock, or replay's one thread).  find: the latest add of
 * (uid, seq) that is ordered before the call is found. */
void sv_registry_add_grant(sv_registry *r, uint32_t uid, uint32_t seq, uint64_t packet_id, uint32_t amount,
                           uint64_t jseq);
bool sv_registry_find_grant(sv_registry *r, uint32_t uid, uint32_t seq, uint64_t *packet_id, uint32_t *amount,
                            uint64_t *jseq);

/* Tests only: called, when set (before the threads that use the registry
 * start), between claiming and publishing: after an open's claim, before its
 * record (SV_RP_OPEN_CLAIMED, key = packet id); after a grant slot's claim,
 * before its payload (SV_RP_GRANT_CLAIMED, key = the grant's key); and with
 * a successor grant table made but not yet installed (SV_RP_GRANT_GROW). */
enum { SV_RP_OPEN_CLAIMED, SV_RP_GRANT_CLAIMED, SV_RP_GRANT_GROW };
extern void (*sv_registry_hook)(int point, uint64_t key);

/* Split `amount` cents into n shares, each >= 1, summing exactly to amount,
 * uniformly over all such splits.  -1 if amount < n or n is out of range. */
int sv_split(uint64_t *rng, uint32_t amount, unsigned n, uint32_t *shares);

#endif
