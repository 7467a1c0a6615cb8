/* journal.h -- the grant journal: every win and every opened share is on
 * disk before its reply leaves the server.
 *
 * Appenders (SETs, the producer) never wait for one another: each packs its
 * record, takes tickets with one atomic fetch_add (a ticket is a 128-byte
 * slot of a ring; a record takes ceil(bytes / 128), usually one), copies the
 * record into its slots and publishes the first slot.  A writer thread takes
 * the published records in ticket order, copies them out (freeing their
 * slots at once), write()s the batch and fdatasync()s once (group commit),
 * then publishes the last ticket that is now durable and wakes the SETs that
 * have replies waiting for it.  The file holds the records in ticket order,
 * so a record appended after another returned is after it in the file (a
 * packet's CREATE precedes its WIN; replay relies on that).  The SET loops
 * never block on the disk; an appender waits only when the ring is full
 * (the disk far behind), and then on the writer.  File format: proto/jfile.h.
 *
 * A record's number (what append returns, what `committed` is compared
 * with) is its last ticket: increasing in file order, not dense when a
 * record takes more than one slot. */
#ifndef SV_JOURNAL_H
#define SV_JOURNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "jfile.h"
#include "util.h"

#define SV_JSLOT 128u    /* bytes per ticket: a record is usually ~60-100 */
#define SV_JSLOTS 8192u  /* tickets in the ring: 1 MiB of records in flight */

typedef void (*sv_journal_notify_fn)(void *ctx, int set);

/* Ticket t's slot is published when pub == t (tickets start at 1, so the
 * zeroed ring holds none; a slot's previous lap holds t - SV_JSLOTS). */
typedef struct sv_jslot {
    _Atomic uint64_t pub;
    uint32_t len; /* bytes of the record starting at this ticket */
} sv_jslot;

/* The highest record a SET has a reply waiting for; on its own cache line,
 * since each SET writes its own. */
typedef struct sv_jwant {
    _Atomic uint64_t seq;
    char pad[64 - sizeof(uint64_t)];
} sv_jwant;

typedef struct sv_journal {
    int fd;
    bool fsync;
    /* appenders */
    _Atomic uint64_t tail;      /* next ticket to hand out (first is 1) */
    /* the writer */
    _Atomic uint64_t head;      /* first ticket not yet taken out of the ring */
    _Atomic uint64_t committed; /* every record <= this is on disk */
    sv_jslot *slot;             /* SV_JSLOTS */
    uint8_t *ring;              /* SV_JSLOTS * SV_JSLOT bytes */
    uint8_t *wbuf;              /* the batch being written (a whole ring fits) */
    /* sleeping: the writer when idle, appenders when the ring is full */
    _Atomic uint32_t writer_asleep;
    _Atomic uint32_t room_gen, room_waiters;
    _Atomic bool stop;
    sv_jwant *want;             /* per SET */
    int nsets;
    sv_journal_notify_fn notify_fn;
    void *notify_ctx;
    pthread_t th;
    bool started;
    int64_t batch_delay_us; /* optional wait to gather more per batch */
    int nice;               /* the writer thread's nice value (0 = the process's) */
    int rt;                 /* its SCHED_FIFO priority (0 = none: `nice` only) */
    /* figures */
    _Atomic uint64_t appends, batches, bytes, max_batch, sync_us;
    _Atomic uint64_t sync_max_us; /* the longest write + fdatasync of one batch */
} sv_journal;

/* Open (creating it) and lock the journal exclusively, before it is
 * replayed: the descriptor, or -1 with err naming the process that holds
 * it.  The lock lives as long as the descriptor. */
int sv_journal_lock(const char *path, char *err, size_t errlen);
/* Take over fd (from sv_journal_lock) for appending; the file is first cut
 * to `valid` bytes (the end of the last intact entry found by the replay).
 * 0, or -1 with err (fd is closed by sv_journal_close either way). */
int sv_journal_open(sv_journal *j, int fd, const char *path, bool fsync, size_t valid, char *err, size_t errlen);
int sv_journal_start(sv_journal *j, int nsets, sv_journal_notify_fn fn, void *ctx);
/* Append; returns the record's number.  `set` >= 0 asks for a wake-up of that
 * SET when the record is durable.  Lock-free: waits only for room in the
 * ring, that is for the writer. */
uint64_t sv_journal_append(sv_journal *j, const Hb__Record *r, int set);
static inline uint64_t sv_journal_committed(sv_journal *j)
{
    return atomic_load_explicit(&j->committed, memory_order_acquire);
}
/* The number of the last record handed out (perhaps not yet copied in). */
static inline uint64_t sv_journal_appended(sv_journal *j)
{
    return atomic_load_explicit(&j->tail, memory_order_acquire) - 1;
}
/* SET `set` has a reply waiting for record `seq`: make sure it is woken when
 * that record is durable (whichever thread appended it).  Returns true if it
 * already is (then no wake-up need come). */
bool sv_journal_watch(sv_journal *j, uint64_t seq, int set);
/* Hot upgrade: write and sync everything appended so far and stop the
 * writer thread, keeping the file open (nothing may be appended meanwhile);
 * resume starts the writer again (a takeover that failed). */
void sv_journal_pause(sv_journal *j);
int sv_journal_resume(sv_journal *j);
/* Write out everything appended so far and stop the writer. */
void sv_journal_close(sv_journal *j);

#endif
