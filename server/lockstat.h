/* lockstat.h -- how long threads wait for one another's locks.
 *
 * Every server mutex on a hot path (the directory's stripes, the address
 * limit, and whatever waits the journal has) is taken through sv_lock()
 * (the registry has none left: registry.h): a trylock first, so the
 * uncontended case costs what pthread_mutex_lock costs; only when that fails
 * is the blocking lock timed on the monotonic clock and the wait added to
 * its kind's counters.  A blocked thread is the interesting case: on 2 cores
 * shared by ~150 runnable threads the holder may be preempted, and everyone
 * behind it waits for the scheduler (README "C1000K on one box").
 *
 * Waits are also counted per role: the producer thread marks itself
 * (sv_lock_role), so "the producer waited for a SET" is one figure
 * (producer_wait_us in the stats file), apart from the SETs' own waits.
 * The counters are process-wide atomics touched only on a contended path. */
#ifndef SV_LOCKSTAT_H
#define SV_LOCKSTAT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

typedef enum sv_lock_kind {
    SV_LK_JOURNAL,   /* appending to the journal: its room (the disk far behind) */
    SV_LK_DIRECTORY, /* a directory stripe: login, logout, parking, making a grant */
    SV_LK_ADDR,      /* the per-address connection counts (addrlimit.c) */
    SV_LK_N
} sv_lock_kind;

typedef enum sv_lock_role_t { SV_ROLE_OTHER, SV_ROLE_PRODUCER, SV_ROLE_N } sv_lock_role_t;

typedef struct sv_lock_stat {
    _Atomic uint64_t waits;   /* times a thread found it taken and blocked */
    _Atomic uint64_t wait_ns; /* time spent blocked */
} sv_lock_stat;

extern sv_lock_stat sv_lock_kinds[SV_LK_N];
extern sv_lock_stat sv_lock_roles[SV_ROLE_N];
extern const char *const sv_lock_kind_name[SV_LK_N]; /* "journal", "directory", ... */

/* This thread's role from now on (threads start as SV_ROLE_OTHER). */
void sv_lock_role(sv_lock_role_t role);
/* Count a wait of `ns` of kind k (also for waits that are not a mutex). */
void sv_lock_waited(sv_lock_kind k, int64_t ns);
int64_t sv_lock_now_ns(void);

static inline void sv_lock(pthread_mutex_t *mu, sv_lock_kind k)
{
    if (pthread_mutex_trylock(mu) == 0)
        return;
    int64_t t0 = sv_lock_now_ns();
    pthread_mutex_lock(mu);
    sv_lock_waited(k, sv_lock_now_ns() - t0);
}

/* The totals over kinds, and one role's. */
uint64_t sv_lock_total_waits(void);
uint64_t sv_lock_total_wait_us(void);
uint64_t sv_lock_role_wait_us(sv_lock_role_t role);

#endif
