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
#ifndef SV_DIRECTORY_H
#define SV_DIRECTORY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "inbox.h"

#define SV_LOC(set, slot) ((((uint64_t)(set) + 1) << 32) | (uint32_t)(slot))
#define SV_LOC_SET(loc) ((int)((loc) >> 32) - 1)
#define SV_LOC_SLOT(loc) ((uint32_t)(loc))
#define SV_DIR_STRIPES 4096

typedef struct sv_pend {
    struct sv_pend *next;
    sv_msg m;
} sv_pend;

typedef struct sv_pend_stripe {
    pthread_mutex_t mu;
    sv_pend *head;
} sv_pend_stripe;

/* Everything the shake path reads about a user, in one 16-byte slot (four
 * per cache line): a shake costs one cache miss in the directory, not two. */
typedef struct sv_uid_slot {
    _Atomic uint64_t loc;  /* SV_LOC(set, slot), 0 = offline */
    /* shake rate state: (unix second & 0xffffff) << 8 | shakes in it.  Per
     * uid, not per connection, so reconnecting does not reset it.  Only the
     * SET holding the uid's session writes it (relaxed: a race during a
     * session hand-over can at worst miscount one shake). */
    _Atomic uint32_t rate;
    _Atomic uint32_t chat_rate; /* the same, for chat messages */
} sv_uid_slot;

typedef struct sv_dir {
    uint32_t users;
    sv_uid_slot *u;
    sv_pend_stripe *stripes;
    uint64_t pending_max, per_uid;
    _Atomic uint64_t pending;      /* parked now */
    _Atomic uint64_t pending_chat; /* of which chat: at most a quarter of pending_max */
    _Atomic uint64_t parked, delivered, dropped; /* totals */
    _Atomic uint64_t online;
} sv_dir;

int sv_dir_init(sv_dir *d, uint32_t users, uint64_t pending_max, uint64_t per_uid);
void sv_dir_free(sv_dir *d);

static inline uint64_t sv_dir_get(sv_dir *d, uint32_t uid)
{
    return atomic_load_explicit(&d->u[uid].loc, memory_order_acquire);
}

/* uid is now at `loc`.  Returns the previous location (0 if it was offline)
 * and hands over the messages parked for uid as a list (*parked) that the
 * caller delivers and frees with sv_dir_free_list(). */
uint64_t sv_dir_login(sv_dir *d, uint32_t uid, uint64_t loc, sv_pend **parked);
/* Whether uid's stripe lock is held at this moment (a hint for work that can
 * wait: the standby sweep passes over such a uid until its next tick rather
 * than block behind a holder the scheduler may have preempted). */
bool sv_dir_busy(sv_dir *d, uint32_t uid);
/* uid at `loc` went away; no-op if a newer login already moved it. */
void sv_dir_logout(sv_dir *d, uint32_t uid, uint64_t loc);

enum { SV_PARK_DROPPED = -1, SV_PARK_ONLINE = 0, SV_PARK_STORED = 1 };
/* Park a message for an offline user.  If the user turned out to be online,
 * returns SV_PARK_ONLINE with its location in *loc: route it there.  A
 * notice of a packet already parked for the user is not parked twice.
 * Chat has its own budget (per_uid per user, a quarter of pending_max in
 * all), so a chat flood cannot crowd out the notices of money. */
int sv_dir_park(sv_dir *d, const sv_msg *m, uint64_t *loc);

void sv_dir_free_list(sv_pend *p);

/* Count one event in unix second `sec` against a per-uid rate word; false if
 * it is over `limit` in that second (limit 1..255). */
static inline bool sv_rate_ok(_Atomic uint32_t *w, uint32_t sec, uint32_t limit)
{
    uint32_t v = atomic_load_explicit(w, memory_order_relaxed);
    uint32_t s = sec & 0xffffff, n = (v >> 8) == s ? v & 0xff : 0;
    if (n >= limit)
        return false;
    atomic_store_explicit(w, s << 8 | (n + 1), memory_order_relaxed);
    return true;
}

static inline bool sv_dir_shake_ok(sv_dir *d, uint32_t uid, uint32_t sec, uint32_t limit)
{
    return sv_rate_ok(&d->u[uid].rate, sec, limit);
}

static inline bool sv_dir_chat_ok(sv_dir *d, uint32_t uid, uint32_t sec, uint32_t limit)
{
    return sv_rate_ok(&d->u[uid].chat_rate, sec, limit);
}

/* Making a grant for uid: hold its stripe lock while checking that `loc` is
 * still its session, through journaling and indexing the grant.  A newer
 * login (which takes the same lock) then either comes after, and a retried
 * shake on it finds this grant, or before, and no grant is made here. */
bool sv_dir_lock_if_at(sv_dir *d, uint32_t uid, uint64_t loc);
void sv_dir_unlock(sv_dir *d, uint32_t uid);

#endif
