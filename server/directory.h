/* directory.h -- where every user is connected, and what waits for the
 * users who are not.
 *
 * u[uid].loc says which SET holds uid's connection and in which slot of that
 * SET (0 = offline).  It is one atomic word per user, written by the SET that
 * logs the user in or out, read by any thread that routes a message.  A
 * message for an offline user is parked in a striped store and handed to the
 * SET on the user's next login; a stripe lock makes "check offline, then
 * park" and "go online, then take parked messages" exclusive, so a message
 * cannot slip between the two. */
#ifndef HB_DIRECTORY_H
#define HB_DIRECTORY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "inbox.h"

#define HB_LOC(set, slot) ((((uint64_t)(set) + 1) << 32) | (uint32_t)(slot))
#define HB_LOC_SET(loc) ((int)((loc) >> 32) - 1)
#define HB_LOC_SLOT(loc) ((uint32_t)(loc))
#define HB_DIR_STRIPES 4096

typedef struct hb_pend {
    struct hb_pend *next;
    hb_msg m;
} hb_pend;

typedef struct hb_pend_stripe {
    pthread_mutex_t mu;
    hb_pend *head;
} hb_pend_stripe;

/* Everything the shake path reads about a user, in one 16-byte slot (four
 * per cache line): a shake costs one cache miss in the directory, not two. */
typedef struct hb_uid_slot {
    _Atomic uint64_t loc;  /* HB_LOC(set, slot), 0 = offline */
    /* shake rate state: (unix second & 0xffffff) << 8 | shakes in it.  Per
     * uid, not per connection, so reconnecting does not reset it.  Only the
     * SET holding the uid's session writes it (relaxed: a race during a
     * session hand-over can at worst miscount one shake). */
    _Atomic uint32_t rate;
    uint32_t unused;
} hb_uid_slot;

typedef struct hb_dir {
    uint32_t users;
    hb_uid_slot *u;
    hb_pend_stripe *stripes;
    uint64_t pending_max, per_uid;
    _Atomic uint64_t pending;   /* parked now */
    _Atomic uint64_t parked, delivered, dropped; /* totals */
    _Atomic uint64_t online;
} hb_dir;

int hb_dir_init(hb_dir *d, uint32_t users, uint64_t pending_max, uint64_t per_uid);
void hb_dir_free(hb_dir *d);

static inline uint64_t hb_dir_get(hb_dir *d, uint32_t uid)
{
    return atomic_load_explicit(&d->u[uid].loc, memory_order_acquire);
}

/* uid is now at `loc`.  Returns the previous location (0 if it was offline)
 * and hands over the messages parked for uid as a list (*parked) that the
 * caller delivers and frees with hb_dir_free_list(). */
uint64_t hb_dir_login(hb_dir *d, uint32_t uid, uint64_t loc, hb_pend **parked);
/* uid at `loc` went away; no-op if a newer login already moved it. */
void hb_dir_logout(hb_dir *d, uint32_t uid, uint64_t loc);

enum { HB_PARK_DROPPED = -1, HB_PARK_ONLINE = 0, HB_PARK_STORED = 1 };
/* Park a message for an offline user.  If the user turned out to be online,
 * returns HB_PARK_ONLINE with its location in *loc: route it there. */
int hb_dir_park(hb_dir *d, const hb_msg *m, uint64_t *loc);

void hb_dir_free_list(hb_pend *p);

/* Count a shake by uid in unix second `sec`; false if it is over `limit`
 * shakes in that second (limit > 0). */
static inline bool hb_dir_shake_ok(hb_dir *d, uint32_t uid, uint32_t sec, uint32_t limit)
{
    uint32_t v = atomic_load_explicit(&d->u[uid].rate, memory_order_relaxed);
    uint32_t s = sec & 0xffffff, n = (v >> 8) == s ? v & 0xff : 0;
    if (n >= limit)
        return false;
    atomic_store_explicit(&d->u[uid].rate, s << 8 | (n + 1), memory_order_relaxed);
    return true;
}

#endif
