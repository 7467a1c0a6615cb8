/* journal.c -- group commit of grant records through a lock-free ring, and
 * the lock that makes the journal one server's: a second hb-server on the
 * same file would replay the same unwon packets and deal them again (each
 * paid twice), and its cut of the "torn tail" would damage what the first
 * one appends.
 *
 * Why lock-free: with one append mutex, an appender preempted inside it
 * (2 cores, ~150 runnable threads at 1M) held up every other appender, the
 * producer included (README: the producer was blocked in futex 33% of an
 * overloaded send phase).  Now each appender takes its own tickets, copies
 * into its own slots and publishes them; nothing it does waits for another
 * appender.  The writer does wait for the oldest unpublished ticket (the
 * file is in ticket order), but that delays only replies, never an append.
 *
 * Invariants:
 *  - tickets [head, tail) are handed out and not yet taken by the writer.
 *    An appender writes its slots only once they are free (its last ticket
 *    < head + SV_JSLOTS), stores their length, and publishes its first slot
 *    last; only the writer moves head, after it has copied the slots out.
 *  - the writer takes records in ticket order and stops at the first one
 *    not yet published: the file is in ticket order, without holes.
 *  - committed only grows and is always the last ticket of a record.
 *  - want[s] only grows: the highest record SET s has waited for.
 *
 * Wake-ups, none lost (the flags and slots below are seq_cst):
 *  - the writer, idle: it sets writer_asleep = 1, looks at its next slot
 *    again, and sleeps (futex) only if that is still unpublished.  An
 *    appender publishes, then reads writer_asleep and wakes it if set.  Of
 *    "publish, then read the flag" and "set the flag, then read the slot",
 *    one comes first in the single total order: either the writer sees the
 *    slot or the appender sees the flag.  futex_wait returns at once if the
 *    flag was cleared in between.  Appenders wake it only when it sleeps.
 *  - a SET's replies: watch() raises want[s] to seq, then reads committed;
 *    the writer stores committed, then reads every want[s] and wakes each
 *    SET whose want is above the committed value before this batch.  If
 *    watch read committed < seq, its raise came before the writer's store
 *    of the value covering seq, so that writer's later read sees want >=
 *    seq > its previous committed, and wakes the SET.  want never goes down,
 *    so there is no clearing to race with.  (A SET waiting for a later
 *    batch too is woken early: it finds nothing to send yet and waits.)
 *    An append with set >= 0 raises want before it publishes, so the
 *    writer, which read the slot, sees the raise.
 *  - room, when the ring is full: the appender counts itself in
 *    room_waiters, reads room_gen, checks for room again and sleeps on
 *    room_gen; the writer moves head, then, if anyone waits, bumps room_gen
 *    and wakes them all.  Same argument, with head and room_waiters. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "lockstat.h"

#define RING_BYTES ((size_t)SV_JSLOTS * SV_JSLOT)

static void futex_wait(_Atomic uint32_t *w, uint32_t v)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0); /* returns at once if *w != v */
}

static void futex_wake(_Atomic uint32_t *w, int n)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

int sv_journal_lock(const char *path, char *err, size_t errlen)
{
    /* O_APPEND: every batch goes to the end of the file, whatever else has
     * the file open; the lock is what keeps anything else from writing. */
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "journal %s: %s", path, strerror(errno));
        return -1;
    }
    long holder;
    if (hb_lock_exclusive(fd, &holder) < 0) {
        if (errno == EWOULDBLOCK && holder > 0)
            snprintf(err, errlen,
                     "journal %s is locked by process %ld (another hb-server running on it?); two servers on one "
                     "journal would pay its packets twice: refusing to start",
                     path, holder);
        else if (errno == EWOULDBLOCK)
            snprintf(err, errlen,
                     "journal %s is locked by another process; two servers on one journal would pay its packets "
                     "twice: refusing to start",
                     path);
        else
            snprintf(err, errlen, "journal %s: cannot lock it: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int sv_journal_open(sv_journal *j, int fd, const char *path, bool fsync, size_t valid, char *err, size_t errlen)
{
    memset(j, 0, sizeof *j);
    j->fd = fd;
    j->fsync = fsync;
    atomic_init(&j->tail, 1); /* 0 is "no record" (a replayed grant) */
    atomic_init(&j->head, 1);
    off_t end = lseek(fd, 0, SEEK_END);
    if (end > (off_t)valid) {
        /* A torn entry from a crash: cut it off so new entries follow good ones. */
        if (ftruncate(fd, (off_t)valid) < 0 || fdatasync(fd) < 0) {
            snprintf(err, errlen, "journal %s: cannot cut the torn tail: %s", path, strerror(errno));
            return -1;
        }
    }
    j->slot = calloc(SV_JSLOTS, sizeof *j->slot);
    j->ring = malloc(RING_BYTES);
    j->wbuf = malloc(RING_BYTES); /* a record never needs more bytes than its slots */
    if (!j->slot || !j->ring || !j->wbuf) {
        snprintf(err, errlen, "journal: out of memory");
        return -1;
    }
    return 0;
}

/* ---- the ring ------------------------------------------------------------- */

/* Ticket t's record of n bytes, into or out of the ring (it may wrap). */
static void ring_put(sv_journal *j, uint64_t t, const uint8_t *src, size_t n)
{
    size_t off = (size_t)(t % SV_JSLOTS) * SV_JSLOT;
    size_t first = n < RING_BYTES - off ? n : RING_BYTES - off;
    memcpy(j->ring + off, src, first);
    memcpy(j->ring, src + first, n - first);
}

static void ring_get(const sv_journal *j, uint64_t t, uint8_t *dst, size_t n)
{
    size_t off = (size_t)(t % SV_JSLOTS) * SV_JSLOT;
    size_t first = n < RING_BYTES - off ? n : RING_BYTES - off;
    memcpy(dst, j->ring + off, first);
    memcpy(dst + first, j->ring, n - first);
}

static bool published(sv_journal *j, uint64_t t)
{
    return atomic_load(&j->slot[t % SV_JSLOTS].pub) == t;
}

static bool room_for(sv_journal *j, uint64_t last)
{
    return last < atomic_load(&j->head) + SV_JSLOTS;
}

/* The disk is far behind and the ring full: wait for the writer to take
 * records out (back-pressure; counted as a journal wait). */
static void wait_for_room(sv_journal *j, uint64_t last)
{
    if (room_for(j, last))
        return;
    int64_t t0 = sv_lock_now_ns();
    for (;;) {
        atomic_fetch_add(&j->room_waiters, 1);
        uint32_t gen = atomic_load(&j->room_gen);
        bool ok = room_for(j, last);
        if (!ok)
            futex_wait(&j->room_gen, gen);
        atomic_fetch_sub(&j->room_waiters, 1);
        if (ok || room_for(j, last))
            break;
    }
    sv_lock_waited(SV_LK_JOURNAL, sv_lock_now_ns() - t0);
}

/* SET `set` waits for record seq: raise its want (never lower it). */
static void want_at_least(sv_journal *j, int set, uint64_t seq)
{
    _Atomic uint64_t *w = &j->want[set].seq;
    uint64_t cur = atomic_load(w);
    while (cur < seq && !atomic_compare_exchange_weak(w, &cur, seq))
        ;
}

uint64_t sv_journal_append(sv_journal *j, const Hb__Record *r, int set)
{
    uint8_t rec[HB_JREC_MAX + 16];
    size_t n = hb_jrec_pack(r, rec, sizeof rec);
    if (n == 0)
        hb_die("journal: record too large (a bug)");
    uint64_t k = (n + SV_JSLOT - 1) / SV_JSLOT;
    uint64_t t = atomic_fetch_add(&j->tail, k); /* tickets t .. t+k-1 are ours alone */
    uint64_t last = t + k - 1;
    wait_for_room(j, last);
    ring_put(j, t, rec, n);
    j->slot[t % SV_JSLOTS].len = (uint32_t)n;
    if (set >= 0 && set < j->nsets)
        want_at_least(j, set, last);
    atomic_store(&j->slot[t % SV_JSLOTS].pub, t); /* publish: the writer may take it now */
    if (atomic_load(&j->writer_asleep) && atomic_exchange(&j->writer_asleep, 0))
        futex_wake(&j->writer_asleep, 1);
    atomic_fetch_add_explicit(&j->appends, 1, memory_order_relaxed);
    return last;
}

bool sv_journal_watch(sv_journal *j, uint64_t seq, int set)
{
    if (set < 0 || set >= j->nsets)
        return false;
    want_at_least(j, set, seq);
    return seq <= atomic_load(&j->committed);
}

/* ---- the writer ------------------------------------------------------------- */

/* Copy the published records from head on into wbuf and free their slots:
 * the batch's bytes (its records in *nrec). */
static size_t take_batch(sv_journal *j, uint64_t *nrec)
{
    uint64_t h = atomic_load(&j->head);
    size_t len = 0;
    uint64_t n = 0;
    /* Tickets at or past head + SV_JSLOTS cannot be published yet (their
     * appenders wait for room), so at most a whole ring is taken. */
    while (published(j, h)) {
        size_t rl = j->slot[h % SV_JSLOTS].len;
        ring_get(j, h, j->wbuf + len, rl);
        len += rl;
        n++;
        h += (rl + SV_JSLOT - 1) / SV_JSLOT;
    }
    atomic_store(&j->head, h);
    if (atomic_load(&j->room_waiters)) {
        atomic_fetch_add(&j->room_gen, 1);
        futex_wake(&j->room_gen, INT_MAX);
    }
    *nrec = n;
    return len;
}

/* One group commit: write and sync what is published, publish committed,
 * wake the SETs waiting for it. */
static void write_batch(sv_journal *j)
{
    uint64_t prev = atomic_load(&j->committed), nrec;
    size_t n = take_batch(j, &nrec);
    uint64_t upto = atomic_load(&j->head) - 1; /* the last ticket of the last record taken */
    if (!nrec)
        return;
    int64_t t0 = hb_mono_us();
    if (hb_write_all(j->fd, j->wbuf, n) < 0 || (j->fsync && fdatasync(j->fd) < 0)) {
        /* Without a durable journal no grant may be answered: stop the
         * server here rather than pay what could be lost. */
        hb_die("journal write failed: %s; stopping (replies for unsaved grants were not sent)", strerror(errno));
    }
    uint64_t took = (uint64_t)(hb_mono_us() - t0);
    atomic_fetch_add(&j->sync_us, took);
    if (took > atomic_load(&j->sync_max_us))
        atomic_store(&j->sync_max_us, took); /* only this thread writes it */
    atomic_fetch_add(&j->batches, 1);
    atomic_fetch_add(&j->bytes, n);
    if (nrec > atomic_load(&j->max_batch))
        atomic_store(&j->max_batch, nrec);
    atomic_store(&j->committed, upto);
    for (int i = 0; i < j->nsets; i++)
        if (atomic_load(&j->want[i].seq) > prev && j->notify_fn)
            j->notify_fn(j->notify_ctx, i);
}

/* Sleep until ticket h is published or the writer is told to stop. */
static void sleep_until_published(sv_journal *j, uint64_t h)
{
    atomic_store(&j->writer_asleep, 1);
    if (!published(j, h) && !atomic_load(&j->stop))
        futex_wait(&j->writer_asleep, 1);
    atomic_store(&j->writer_asleep, 0);
}

static void *writer_main(void *arg)
{
    sv_journal *j = arg;
    pthread_setname_np(pthread_self(), "hb-journal"); /* for top -H, perf, gdb */
    hb_thread_urgent(j->rt, j->nice, "hb-journal");
    for (;;) {
        uint64_t h = atomic_load(&j->head);
        if (!published(j, h)) {
            /* Stopping writes everything handed out first: an append in
             * progress publishes soon, and wakes us. */
            if (atomic_load(&j->stop) && h == atomic_load(&j->tail))
                return NULL;
            sleep_until_published(j, h);
            continue;
        }
        if (j->batch_delay_us > 0 && !atomic_load(&j->stop))
            usleep((useconds_t)j->batch_delay_us); /* optional: let more records join this batch */
        write_batch(j);
    }
}

int sv_journal_start(sv_journal *j, int nsets, sv_journal_notify_fn fn, void *ctx)
{
    size_t bytes = ((size_t)nsets + 1) * sizeof *j->want;
    j->want = aligned_alloc(64, bytes);
    if (!j->want)
        return -1;
    memset(j->want, 0, bytes);
    j->nsets = nsets;
    j->notify_fn = fn;
    j->notify_ctx = ctx;
    if (pthread_create(&j->th, NULL, writer_main, j) != 0)
        return -1;
    j->started = true;
    return 0;
}

static void stop_writer(sv_journal *j)
{
    atomic_store(&j->stop, true);
    if (atomic_exchange(&j->writer_asleep, 0))
        futex_wake(&j->writer_asleep, 1);
    pthread_join(j->th, NULL); /* it writes and syncs what is left first */
    j->started = false;
    atomic_store(&j->stop, false);
}

void sv_journal_pause(sv_journal *j)
{
    if (j->started)
        stop_writer(j);
}

int sv_journal_resume(sv_journal *j)
{
    if (j->started)
        return 0;
    if (pthread_create(&j->th, NULL, writer_main, j) != 0)
        return -1;
    j->started = true;
    return 0;
}

void sv_journal_close(sv_journal *j)
{
    if (j->started)
        stop_writer(j);
    else if (j->fd >= 0 && j->slot)
        while (published(j, atomic_load(&j->head))) /* never started: write what was appended here */
            write_batch(j);
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    free(j->slot);
    free(j->ring);
    free(j->wbuf);
    free(j->want);
    j->slot = NULL;
    j->ring = j->wbuf = NULL;
    j->want = NULL;
}
