/* journal.c -- group commit of grant records, and the lock that makes the
 * journal one server's: a second hb-server on the same file would replay the
 * same unwon packets and deal them again (each paid twice), and its cut of
 * the "torn tail" would damage what the first one appends. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "lockstat.h"

#define JOURNAL_BUF (1u << 20)

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
    j->fd = -1;
    j->fsync = fsync;
    j->next = 1;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->more, NULL);
    pthread_cond_init(&j->room, NULL);
    j->fd = fd;
    off_t end = lseek(fd, 0, SEEK_END);
    if (end > (off_t)valid) {
        /* A torn entry from a crash: cut it off so new entries follow good ones. */
        if (ftruncate(fd, (off_t)valid) < 0 || fdatasync(fd) < 0) {
            snprintf(err, errlen, "journal %s: cannot cut the torn tail: %s", path, strerror(errno));
            return -1;
        }
    }
    j->cap = JOURNAL_BUF;
    j->buf = malloc(j->cap);
    j->wbuf = malloc(j->cap);
    if (!j->buf || !j->wbuf) {
        snprintf(err, errlen, "journal: out of memory");
        return -1;
    }
    return 0;
}

static void *writer_main(void *arg)
{
    sv_journal *j = arg;
    pthread_setname_np(pthread_self(), "hb-journal"); /* for top -H, perf, gdb */
    uint64_t prev = atomic_load(&j->committed);
    for (;;) {
        pthread_mutex_lock(&j->mu);
        while (j->len == 0 && !j->stop)
            pthread_cond_wait(&j->more, &j->mu);
        if (j->len == 0 && j->stop) {
            pthread_mutex_unlock(&j->mu);
            return NULL;
        }
        if (j->batch_delay_us > 0 && !j->stop) {
            /* Optional: let more records join this batch. */
            pthread_mutex_unlock(&j->mu);
            usleep((useconds_t)j->batch_delay_us);
            pthread_mutex_lock(&j->mu);
        }
        uint8_t *b = j->buf;
        size_t n = j->len;
        j->buf = j->wbuf;
        j->wbuf = b;
        j->len = 0;
        uint64_t upto = j->next - 1;
        j->writing_upto = upto;
        uint8_t *nt = j->notify;
        j->notify = j->wnotify;
        j->wnotify = nt;
        pthread_cond_broadcast(&j->room);
        pthread_mutex_unlock(&j->mu);

        int64_t t0 = hb_mono_us();
        if (hb_write_all(j->fd, b, n) < 0 || (j->fsync && fdatasync(j->fd) < 0)) {
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
        if (upto - prev > atomic_load(&j->max_batch))
            atomic_store(&j->max_batch, upto - prev);
        prev = upto;
        /* Publish under the lock, so a watcher either sees the new value or
         * is in `late` before we collect it. */
        pthread_mutex_lock(&j->mu);
        atomic_store_explicit(&j->committed, upto, memory_order_release);
        for (int i = 0; i < j->nsets; i++) {
            nt[i] |= j->late[i];
            j->late[i] = 0;
        }
        pthread_mutex_unlock(&j->mu);
        for (int i = 0; i < j->nsets; i++)
            if (nt[i]) {
                nt[i] = 0;
                if (j->notify_fn)
                    j->notify_fn(j->notify_ctx, i);
            }
    }
}

bool sv_journal_watch(sv_journal *j, uint64_t seq, int set)
{
    if (set < 0 || set >= j->nsets)
        return false;
    sv_lock(&j->mu, SV_LK_JOURNAL);
    bool done = seq <= atomic_load_explicit(&j->committed, memory_order_relaxed);
    if (!done) {
        if (seq > j->writing_upto)
            j->notify[set] = 1; /* in the batch being filled */
        else
            j->late[set] = 1; /* in the batch being written now */
    }
    pthread_mutex_unlock(&j->mu);
    return done;
}

int sv_journal_start(sv_journal *j, int nsets, sv_journal_notify_fn fn, void *ctx)
{
    j->nsets = nsets;
    j->notify = calloc((size_t)nsets + 1, 1);
    j->wnotify = calloc((size_t)nsets + 1, 1);
    j->late = calloc((size_t)nsets + 1, 1);
    j->notify_fn = fn;
    j->notify_ctx = ctx;
    if (!j->notify || !j->wnotify || !j->late)
        return -1;
    if (pthread_create(&j->th, NULL, writer_main, j) != 0)
        return -1;
    j->started = true;
    return 0;
}

uint64_t sv_journal_append(sv_journal *j, const Hb__Record *r, int set)
{
    uint8_t rec[HB_JREC_MAX + 16];
    size_t n = hb_jrec_pack(r, rec, sizeof rec);
    if (n == 0)
        hb_die("journal: record too large (a bug)");
    sv_lock(&j->mu, SV_LK_JOURNAL);
    if (j->len + n > j->cap) {
        int64_t t0 = sv_lock_now_ns();
        while (j->len + n > j->cap)
            pthread_cond_wait(&j->room, &j->mu); /* the disk is far behind: back-pressure */
        sv_lock_waited(SV_LK_JOURNAL, sv_lock_now_ns() - t0);
    }
    memcpy(j->buf + j->len, rec, n);
    j->len += n;
    uint64_t seq = j->next++;
    atomic_store_explicit(&j->appended, seq, memory_order_release);
    if (set >= 0 && set < j->nsets)
        j->notify[set] = 1;
    pthread_cond_signal(&j->more);
    pthread_mutex_unlock(&j->mu);
    atomic_fetch_add(&j->appends, 1);
    return seq;
}

void sv_journal_pause(sv_journal *j)
{
    if (!j->started)
        return;
    pthread_mutex_lock(&j->mu);
    j->stop = true;
    pthread_cond_signal(&j->more);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->th, NULL); /* it writes and syncs what is left first */
    j->started = false;
    j->stop = false;
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
    if (j->started) {
        pthread_mutex_lock(&j->mu);
        j->stop = true;
        pthread_cond_signal(&j->more);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->th, NULL);
        j->started = false;
    } else if (j->fd >= 0 && j->len) {
        hb_write_all(j->fd, j->buf, j->len);
        if (j->fsync)
            fdatasync(j->fd);
    }
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    free(j->buf);
    free(j->wbuf);
    free(j->notify);
    free(j->wnotify);
    free(j->late);
    j->buf = j->wbuf = NULL;
    j->notify = j->wnotify = j->late = NULL;
}
