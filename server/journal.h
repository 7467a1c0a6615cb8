/* journal.h -- the grant journal: every win and every opened share is on
 * disk before its reply leaves the server.
 *
 * Appenders (SETs, the producer) pack a record and copy it into the current
 * batch under a mutex; that is all they wait for.  A writer thread takes the
 * whole batch, write()s it and fdatasync()s once (group commit), then
 * publishes the highest record number that is now durable and wakes the SETs
 * that have replies waiting for it.  The SET loops never block on the disk.
 * File format: proto/jfile.h. */
#ifndef SV_JOURNAL_H
#define SV_JOURNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "jfile.h"
#include "util.h"

typedef void (*sv_journal_notify_fn)(void *ctx, int set);

typedef struct sv_journal {
    int fd;
    bool fsync;
    pthread_mutex_t mu;
    pthread_cond_t more, room;
    uint8_t *buf, *wbuf; /* filling / being written */
    size_t len, cap;
    uint64_t next;       /* number of the next record (first is 1) */
    _Atomic uint64_t appended;  /* highest number handed out */
    _Atomic uint64_t committed; /* every record <= this is on disk */
    uint8_t *notify;     /* SETs with replies waiting on the batch being filled */
    uint8_t *wnotify;    /* ... on the batch being written */
    uint8_t *late;       /* SETs that started waiting on the batch being written */
    uint64_t writing_upto; /* last record of the batch being written (under mu) */
    int nsets;
    sv_journal_notify_fn notify_fn;
    void *notify_ctx;
    pthread_t th;
    bool started, stop;
    int64_t batch_delay_us; /* optional wait to gather more per batch */
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
 * SET when the record is durable. */
uint64_t sv_journal_append(sv_journal *j, const Hb__Record *r, int set);
static inline uint64_t sv_journal_committed(sv_journal *j)
{
    return atomic_load_explicit(&j->committed, memory_order_acquire);
}
static inline uint64_t sv_journal_appended(sv_journal *j)
{
    return atomic_load_explicit(&j->appended, memory_order_acquire);
}
/* SET `set` has a reply waiting for record `seq`: make sure it is woken when
 * that record is durable (whichever thread appended it).  Returns true if it
 * already is (then no wake-up comes). */
bool sv_journal_watch(sv_journal *j, uint64_t seq, int set);
/* Hot upgrade: write and sync everything appended so far and stop the
 * writer thread, keeping the file open (nothing may be appended meanwhile);
 * resume starts the writer again (a takeover that failed). */
void sv_journal_pause(sv_journal *j);
int sv_journal_resume(sv_journal *j);
/* Write out everything appended so far and stop the writer. */
void sv_journal_close(sv_journal *j);

#endif
