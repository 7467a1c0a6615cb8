/* journal.c -- hb-bench-journal: what the grant journal costs.
 *
 * Measured in one run, on the same file system, so the figures compare as
 * ratios on a noisy machine:
 *   naive        one write + fdatasync per record (what group commit avoids)
 *   flat out     N appender threads (SETs) appending as fast as they can
 *   paced        appenders at a fixed total rate (default 60,000/s: every
 *                shake of the seed's peak winning), with the commit latency
 *                of each record (append -> durable), i.e. what a winning
 *                shake's reply waits for.
 * Prints appends/s, fsyncs/s, records per batch and latency percentiles. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "conf.h"
#include "hist.h"
#include "journal.h"
#include "util.h"

static char *dir = "/tmp";
static int64_t threads = 4, seconds = 3, rate = 60000;

static Hb__Record win(uint64_t id)
{
    Hb__Record r = HB__RECORD__INIT;
    r.type = HB__RECORD_TYPE__REC_WIN;
    r.packet_id = id;
    r.amount = 1234;
    r.uid = (uint32_t)(id * 7919);
    r.seq = (uint32_t)id;
    r.time_us = hb_now_us();
    return r;
}

static void path_for(char *buf, size_t n, const char *what)
{
    snprintf(buf, n, "%s/hb-bench-journal-%s-%d", dir, what, getpid());
}

static void naive(void)
{
    char path[512];
    path_for(path, sizeof path, "naive");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        hb_die("%s: cannot create", path);
    int64_t t0 = hb_mono_us(), n = 0;
    while (hb_mono_us() - t0 < seconds * 1000000) {
        uint8_t buf[128];
        Hb__Record r = win((uint64_t)n);
        size_t len = hb_jrec_pack(&r, buf, sizeof buf);
        hb_write_all(fd, buf, len);
        fdatasync(fd);
        n++;
    }
    double dt = (double)(hb_mono_us() - t0) / 1e6;
    printf("  naive (write+fdatasync per record):  %9.0f records/s  %9.0f fsyncs/s\n", n / dt, n / dt);
    close(fd);
    unlink(path);
}

typedef struct run {
    sv_journal j;
    int64_t t0, until;
    double per_thread_rate; /* 0 = flat out */
    int64_t *appended_at;   /* per record number, for commit latency */
    size_t cap;
    _Atomic bool done;
} run;

static void *appender(void *arg)
{
    run *r = arg;
    uint64_t k = 0;
    int64_t start = hb_mono_us();
    while (hb_mono_us() < r->until) {
        if (r->per_thread_rate > 0) {
            int64_t due = start + (int64_t)((double)k * 1e6 / r->per_thread_rate);
            if (due > hb_mono_us())
                hb_sleep_until_mono(due);
        }
        Hb__Record rec = win(k);
        int64_t t = hb_mono_us();
        uint64_t seq = sv_journal_append(&r->j, &rec, -1);
        if (seq < r->cap)
            r->appended_at[seq] = t;
        k++;
    }
    return NULL;
}

/* Watches `committed` and turns it into per-record commit latencies. */
static void *watcher(void *arg)
{
    run *r = arg;
    hb_hist *h = calloc(1, sizeof *h);
    uint64_t seen = 0;
    while (!atomic_load(&r->done)) {
        uint64_t c = sv_journal_committed(&r->j);
        int64_t now = hb_mono_us();
        for (uint64_t s = seen + 1; s <= c && s < r->cap; s++)
            if (r->appended_at[s])
                hb_hist_record(h, (uint64_t)(now - r->appended_at[s]));
        seen = c;
        usleep(20);
    }
    return h;
}

static void group(const char *label, double total_rate, bool fsync)
{
    char path[512], err[256];
    path_for(path, sizeof path, "group");
    unlink(path);
    run *r = calloc(1, sizeof *r);
    int fd = sv_journal_lock(path, err, sizeof err);
    if (fd < 0 || sv_journal_open(&r->j, fd, path, fsync, 0, err, sizeof err) < 0 ||
        sv_journal_start(&r->j, 1, NULL, NULL) < 0)
        hb_die("%s", err);
    r->cap = total_rate > 0 ? (size_t)(total_rate * (double)seconds * 1.2) + 1000 : 50000000;
    r->appended_at = calloc(r->cap, sizeof *r->appended_at);
    r->per_thread_rate = total_rate / (double)threads;
    r->t0 = hb_mono_us();
    r->until = r->t0 + seconds * 1000000;
    pthread_t w, th[64];
    pthread_create(&w, NULL, watcher, r);
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, appender, r);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    uint64_t appended = sv_journal_appended(&r->j);
    while (sv_journal_committed(&r->j) < appended)
        usleep(100);
    double dt = (double)(hb_mono_us() - r->t0) / 1e6;
    atomic_store(&r->done, true);
    hb_hist *h;
    pthread_join(w, (void **)&h);
    uint64_t batches = atomic_load(&r->j.batches);
    printf("  %-36s %9.0f appends/s  %9.0f fsyncs/s  %7.1f records/batch  commit p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms\n",
           label, (double)appended / dt, fsync ? (double)batches / dt : 0.0, (double)appended / (double)batches,
           (double)hb_hist_percentile(h, 50) / 1000, (double)hb_hist_percentile(h, 99) / 1000, (double)h->max / 1000);
    sv_journal_close(&r->j);
    unlink(path);
    free(h);
    free(r->appended_at);
    free(r);
}

int main(int argc, char **argv)
{
    hb_prog = "hb-bench-journal";
    const hb_opt opts[] = {
        {"dir", HB_OPT_STR, &dir, "DIR", "directory for the test journal (the disk you will run on)", 0, 0},
        {"threads", HB_OPT_INT, &threads, "N", "appender threads (SETs)", 1, 64},
        {"seconds", HB_OPT_INT, &seconds, "N", "seconds per measurement", 1, 600},
        {"rate", HB_OPT_INT, &rate, "N", "paced total appends per second", 1, 10000000},
        {NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const hb_cli cli = {.synopsis = "hb-bench-journal [OPTIONS]",
                        .description = "Measure the grant journal: naive fsync per record vs group commit, flat out "
                                       "and paced.",
                        .opts = opts};
    hb_cli_parse(&cli, argc, argv);
    printf("hb-bench-journal: %lld appender threads, %lld s each, journal in %s\n", (long long)threads,
           (long long)seconds, dir);
    naive();
    group("group commit, flat out, fdatasync", 0, true);
    char label[96];
    snprintf(label, sizeof label, "group commit at %lld/s, fdatasync", (long long)rate);
    group(label, (double)rate, true);
    snprintf(label, sizeof label, "group commit at 200/s, fdatasync");
    group(label, 200, true);
    group("group commit, flat out, no fdatasync", 0, false);
    return 0;
}
