/* Journal: group commit writes what was appended; the reader stops at a torn
 * or corrupt tail and the writer cuts it; replay rebuilds the money state;
 * opens are refused to non-recipients, repeats and unknown packets. */
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "jfile.h"
#include "lockstat.h"
#include "journal.h"
#include "registry.h"
#include "replay.h"
#include "server.h"

static char path[256];

static int setup(void **st)
{
    snprintf(path, sizeof path, "/tmp/hb-test-journal-%d", getpid());
    unlink(path);
    return 0;
}

static int teardown(void **st)
{
    unlink(path);
    return 0;
}

/* Lock and open the test journal, as the server does. */
static int jopen(sv_journal *j, bool fsync, size_t valid, char *err, size_t errlen)
{
    int fd = sv_journal_lock(path, err, errlen);
    assert_true(fd >= 0);
    return sv_journal_open(j, fd, path, fsync, valid, err, errlen);
}

static Hb__Record rec(Hb__RecordType t, Hb__PacketKind k, uint64_t id, uint32_t amount, uint32_t uid)
{
    Hb__Record r = HB__RECORD__INIT;
    r.type = t;
    r.kind = k;
    r.packet_id = id;
    r.amount = amount;
    r.uid = uid;
    return r;
}

static uint64_t count_records(const char *p, const char **why, size_t *valid)
{
    hb_jfile jf;
    char err[256];
    assert_int_equal(hb_jfile_open(&jf, p, err, sizeof err), 0);
    Hb__Record *r;
    uint64_t n = 0;
    while (hb_jfile_next(&jf, &r))
        n++;
    *why = jf.stop_reason;
    *valid = jf.valid;
    hb_jfile_close(&jf);
    return n;
}

static void test_group_commit(void **st)
{
    sv_journal j;
    char err[256];
    assert_int_equal(jopen(&j, true, 0, err, sizeof err), 0);
    assert_int_equal(sv_journal_start(&j, 1, NULL, NULL), 0);
    uint64_t last = 0;
    for (int i = 1; i <= 5000; i++) {
        Hb__Record r = rec(HB__RECORD_TYPE__REC_CREATE, HB__PACKET_KIND__KIND_SHAKE, (uint64_t)i, 100, 0);
        last = sv_journal_append(&j, &r, 0);
    }
    assert_int_equal(last, 5000);
    while (sv_journal_committed(&j) < last)
        usleep(1000);
    uint64_t batches = atomic_load(&j.batches);
    assert_true(batches >= 1 && batches <= 5000);
    sv_journal_close(&j);
    const char *why;
    size_t valid;
    assert_int_equal(count_records(path, &why, &valid), 5000);
    assert_null(why);
}

static void test_torn_and_corrupt_tail(void **st)
{
    sv_journal j;
    char err[256];
    assert_int_equal(jopen(&j, false, 0, err, sizeof err), 0);
    assert_int_equal(sv_journal_start(&j, 1, NULL, NULL), 0);
    for (int i = 1; i <= 10; i++) {
        Hb__Record r = rec(HB__RECORD_TYPE__REC_CREATE, HB__PACKET_KIND__KIND_SHAKE, (uint64_t)i, 100, 0);
        sv_journal_append(&j, &r, -1);
    }
    sv_journal_close(&j);
    const char *why;
    size_t valid, good;
    count_records(path, &why, &good);
    /* a crash mid-write: half an entry at the end */
    uint8_t buf[64];
    Hb__Record r = rec(HB__RECORD_TYPE__REC_WIN, HB__PACKET_KIND__KIND_SHAKE, 3, 100, 9);
    size_t n = hb_jrec_pack(&r, buf, sizeof buf);
    FILE *f = fopen(path, "ab");
    fwrite(buf, 1, n / 2, f);
    fclose(f);
    assert_int_equal(count_records(path, &why, &valid), 10);
    assert_string_equal(why, "torn last entry");
    assert_int_equal(valid, good);
    /* reopening for append cuts the torn tail; new entries follow good ones */
    assert_int_equal(jopen(&j, false, valid, err, sizeof err), 0);
    assert_int_equal(sv_journal_start(&j, 1, NULL, NULL), 0);
    sv_journal_append(&j, &r, -1);
    sv_journal_close(&j);
    assert_int_equal(count_records(path, &why, &valid), 11);
    assert_null(why);
    /* a flipped bit inside the last entry is caught by its CRC */
    f = fopen(path, "r+b");
    fseek(f, -6, SEEK_END);
    int c = fgetc(f);
    fseek(f, -6, SEEK_END);
    fputc(c ^ 0x10, f);
    fclose(f);
    assert_int_equal(count_records(path, &why, &valid), 10);
    assert_string_equal(why, "CRC mismatch");
    /* ... and it is whole: damage, not a torn tail (the server refuses it) */
    hb_jfile jf;
    assert_int_equal(hb_jfile_open(&jf, path, err, sizeof err), 0);
    Hb__Record *rr;
    while (hb_jfile_next(&jf, &rr))
        ;
    assert_false(jf.torn);
    hb_jfile_close(&jf);
}

/* One journal, one server: a second lock is refused and names the holder. */
static void test_lock(void **st)
{
    char err[256], want[32];
    int fd = sv_journal_lock(path, err, sizeof err);
    assert_true(fd >= 0);
    assert_int_equal(sv_journal_lock(path, err, sizeof err), -1);
    snprintf(want, sizeof want, "process %d", (int)getpid());
    assert_non_null(strstr(err, want));
    close(fd);
    fd = sv_journal_lock(path, err, sizeof err); /* released with its descriptor */
    assert_true(fd >= 0);
    close(fd);
}

/* An open that must be answered at once (no other thread opens). */
static Hb__OpenStatus open1(sv_registry *reg, sv_journal *j, uint64_t id, uint32_t uid, uint32_t *share,
                            uint64_t *jseq)
{
    Hb__OpenStatus st;
    assert_true(sv_registry_open(reg, j, 0, id, uid, &st, share, jseq));
    return st;
}

static void test_open_security(void **st)
{
    sv_journal j;
    char err[256];
    sv_registry reg;
    assert_int_equal(jopen(&j, false, 0, err, sizeof err), 0);
    assert_int_equal(sv_journal_start(&j, 1, NULL, NULL), 0);
    assert_int_equal(sv_registry_init(&reg), 0);
    sv_sendpkt p = {.amount = 100, .n = 3, .uid = {7, 8, 9}, .share = {10, 30, 60}};
    assert_int_equal(sv_registry_put_send(&reg, hb_send_id(0), &p), 0);
    uint32_t share;
    uint64_t jseq;
    /* not a recipient */
    assert_int_equal(open1(&reg, &j, hb_send_id(0), 5, &share, &jseq),
                     HB__OPEN_STATUS__OPEN_NOT_RECIPIENT);
    assert_int_equal(share, 0);
    /* unknown packets: never created, a shake-flow id, id 0 */
    assert_int_equal(open1(&reg, &j, hb_send_id(1), 7, &share, &jseq),
                     HB__OPEN_STATUS__OPEN_UNKNOWN_PACKET);
    assert_int_equal(open1(&reg, &j, 5, 7, &share, &jseq), HB__OPEN_STATUS__OPEN_UNKNOWN_PACKET);
    assert_int_equal(open1(&reg, &j, 0, 7, &share, &jseq), HB__OPEN_STATUS__OPEN_UNKNOWN_PACKET);
    /* a recipient opens once: paid its share, journaled */
    assert_int_equal(open1(&reg, &j, hb_send_id(0), 8, &share, &jseq), HB__OPEN_STATUS__OPEN_OK);
    assert_int_equal(share, 30);
    assert_true(jseq > 0);
    /* twice: refused, told what it got, nothing new journaled */
    uint64_t before = sv_journal_appended(&j);
    assert_int_equal(open1(&reg, &j, hb_send_id(0), 8, &share, &jseq), HB__OPEN_STATUS__OPEN_ALREADY);
    assert_int_equal(share, 30);
    assert_int_equal(sv_journal_appended(&j), before);
    sv_journal_close(&j);
    /* exactly one SHARE record in the journal */
    hb_jfile jf;
    assert_int_equal(hb_jfile_open(&jf, path, err, sizeof err), 0);
    Hb__Record *r;
    int shares = 0;
    while (hb_jfile_next(&jf, &r))
        shares += r->type == HB__RECORD_TYPE__REC_SHARE;
    hb_jfile_close(&jf);
    assert_int_equal(shares, 1);
    sv_registry_free(&reg);
}

static void test_replay(void **st)
{
    sv_journal j;
    char err[256];
    assert_int_equal(jopen(&j, false, 0, err, sizeof err), 0);
    assert_int_equal(sv_journal_start(&j, 1, NULL, NULL), 0);
    Hb__Record r;
    for (uint64_t id = 1; id <= 4; id++) {
        r = rec(HB__RECORD_TYPE__REC_CREATE, HB__PACKET_KIND__KIND_SHAKE, id, (uint32_t)(100 * id), 0);
        sv_journal_append(&j, &r, -1);
    }
    r = rec(HB__RECORD_TYPE__REC_WIN, HB__PACKET_KIND__KIND_SHAKE, 2, 200, 42);
    r.seq = 77;
    sv_journal_append(&j, &r, -1);
    r = rec(HB__RECORD_TYPE__REC_WIN, HB__PACKET_KIND__KIND_SHAKE, 2, 200, 43); /* a double pay: must be refused */
    sv_journal_append(&j, &r, -1);
    uint32_t uids[3] = {5, 6, 7}, shares[3] = {1, 2, 3};
    r = rec(HB__RECORD_TYPE__REC_CREATE, HB__PACKET_KIND__KIND_SEND, hb_send_id(0), 6, 0);
    r.n_recipients = r.n_shares = 3;
    r.recipients = uids;
    r.shares = shares;
    sv_journal_append(&j, &r, -1);
    r = rec(HB__RECORD_TYPE__REC_SHARE, HB__PACKET_KIND__KIND_SEND, hb_send_id(0), 2, 6);
    sv_journal_append(&j, &r, -1);
    sv_journal_close(&j);

    static sv_registry reg;
    assert_int_equal(sv_registry_init(&reg), 0);
    sv_replay_t rp;
    assert_int_equal(sv_replay(&reg, path, &rp, err, sizeof err), 0);
    assert_int_equal(rp.shake_made, 4);
    assert_int_equal(rp.send_made, 1);
    assert_int_equal(rp.wins, 1);
    assert_int_equal(rp.win_amount, 200);
    assert_int_equal(rp.anomalies, 1);
    assert_int_equal(rp.n_unwon, 3); /* 1, 3, 4 go back into the queues */
    assert_int_equal(rp.unwon[0].id, 1);
    assert_int_equal(rp.unwon[1].id, 3);
    assert_int_equal(rp.unwon[2].amount, 400);
    assert_int_equal(rp.shares, 1);
    uint64_t pid, jseq;
    uint32_t amount;
    assert_true(sv_registry_find_grant(&reg, 42, 77, &pid, &amount, &jseq)); /* a retried shake finds its win */
    assert_int_equal(pid, 2);
    assert_int_equal(jseq, 0); /* replayed: durable */
    assert_false(sv_registry_find_grant(&reg, 43, 77, &pid, &amount, &jseq));
    sv_sendpkt p;
    assert_true(sv_registry_get_send(&reg, hb_send_id(0), &p));
    assert_int_equal(p.opened, 2); /* recipient 1 (uid 6) opened */
    sv_replay_free(&rp);
    sv_registry_free(&reg);
}

/* Ids out of order or far ahead (a crafted or damaged journal) are refused
 * as anomalies: no gap in the registry, no huge allocation, no crash. */
static void test_replay_sparse_ids(void **st)
{
    sv_journal j;
    char err[256];
    assert_int_equal(jopen(&j, false, 0, err, sizeof err), 0);
    assert_int_equal(sv_journal_start(&j, 1, NULL, NULL), 0);
    Hb__Record r = rec(HB__RECORD_TYPE__REC_CREATE, HB__PACKET_KIND__KIND_SHAKE, 1, 100, 0);
    sv_journal_append(&j, &r, -1);
    r = rec(HB__RECORD_TYPE__REC_CREATE, HB__PACKET_KIND__KIND_SHAKE, (uint64_t)1 << 39, 100, 0);
    sv_journal_append(&j, &r, -1);
    uint32_t uids[3] = {5, 6, 7}, shares[3] = {1, 2, 3};
    r = rec(HB__RECORD_TYPE__REC_CREATE, HB__PACKET_KIND__KIND_SEND, hb_send_id(65536), 6, 0);
    r.n_recipients = r.n_shares = 3;
    r.recipients = uids;
    r.shares = shares;
    sv_journal_append(&j, &r, -1);
    sv_journal_close(&j);
    static sv_registry reg;
    assert_int_equal(sv_registry_init(&reg), 0);
    sv_replay_t rp;
    assert_int_equal(sv_replay(&reg, path, &rp, err, sizeof err), 0);
    assert_int_equal(rp.shake_made, 1);
    assert_int_equal(rp.send_made, 0);
    assert_int_equal(rp.anomalies, 2);
    assert_int_equal(atomic_load(&reg.send_count), 0);
    sv_replay_free(&rp);
    sv_registry_free(&reg);
}

/* A bad entry followed by intact ones is damage, not a torn tail. */
static void test_damage_in_the_middle(void **st)
{
    sv_journal j;
    char err[256];
    assert_int_equal(jopen(&j, false, 0, err, sizeof err), 0);
    assert_int_equal(sv_journal_start(&j, 1, NULL, NULL), 0);
    for (uint64_t id = 1; id <= 3; id++) {
        Hb__Record r = rec(HB__RECORD_TYPE__REC_CREATE, HB__PACKET_KIND__KIND_SHAKE, id, 100, 0);
        sv_journal_append(&j, &r, -1);
    }
    sv_journal_close(&j);
    hb_jfile jf;
    assert_int_equal(hb_jfile_open(&jf, path, err, sizeof err), 0);
    size_t entry = jf.size / 3;
    jf.data[entry + 3] ^= 0x40; /* inside the second entry */
    Hb__Record *r;
    int n = 0;
    while (hb_jfile_next(&jf, &r))
        n++;
    assert_int_equal(n, 1);
    assert_non_null(jf.stop_reason);
    assert_int_equal(hb_jfile_intact_after(&jf), 2 * entry); /* the third entry is intact */
    hb_jfile_close(&jf);
    /* a torn tail has nothing intact after it */
    assert_int_equal(hb_jfile_open(&jf, path, err, sizeof err), 0);
    jf.size -= 2;
    while (hb_jfile_next(&jf, &r))
        ;
    assert_non_null(jf.stop_reason);
    assert_true(jf.torn);
    assert_int_equal(hb_jfile_intact_after(&jf), 0);
    hb_jfile_close(&jf);
}


/* ---- the lock-free ring: many appenders, one writer ------------------------- */

#define RING_THREADS 4
#define RING_PER 30000
#define RING_WAIT_EVERY 97 /* every so many appends, wait for the record as a SET does */

static sv_journal ring_j;
static uint64_t ring_seq[RING_THREADS][RING_PER]; /* what append returned */
static sem_t ring_woken[RING_THREADS];
static _Atomic uint64_t ring_lost; /* waits that timed out: a lost wake-up */

static void ring_notify(void *ctx, int set)
{
    (void)ctx;
    sem_post(&ring_woken[set]);
}

/* A record of thread t's i-th append; every 5th is large (2 to 4 slots) so
 * records span slots and the ring's end. */
static size_t ring_record(int t, int i, Hb__Record *r, uint32_t *u, uint32_t *sh, Hb__Cycle *cy)
{
    *r = rec(HB__RECORD_TYPE__REC_CREATE, HB__PACKET_KIND__KIND_SEND, (uint64_t)t << 32 | (uint64_t)i, 1, (uint32_t)t);
    if (i % 5 == 0) {
        unsigned n = 1 + (unsigned)i % HB_SPLIT_MAX;
        for (unsigned m = 0; m < n; m++) {
            u[m] = 0xfffffff0u - m;
            sh[m] = 0xfffffff0u - (uint32_t)i;
        }
        r->n_recipients = r->n_shares = n;
        r->recipients = u;
        r->shares = sh;
        hb__cycle__init(cy);
        cy->number = (uint32_t)i;
        cy->users = cy->amount_max = cy->send_amount_max = 0xffffffffu;
        cy->total = cy->send_total = cy->cluster_total = (uint64_t)-1;
        cy->rate = cy->send_rate = 1e300;
        r->cycle = i % 10 == 0 ? cy : NULL;
    }
    uint8_t buf[HB_JREC_MAX + 16];
    return hb_jrec_pack(r, buf, sizeof buf);
}

static void *ring_appender(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < RING_PER; i++) {
        Hb__Record r;
        uint32_t u[HB_SPLIT_MAX], sh[HB_SPLIT_MAX];
        Hb__Cycle cy;
        ring_record(t, i, &r, u, sh, &cy);
        /* Threads 0 and 1 wait now and then, as a SET does; 2 and 3 append
         * flat out and fill the ring. */
        bool wait = (t < 2 && i % RING_WAIT_EVERY == 0) || i == RING_PER - 1;
        if (wait)
            while (sem_trywait(&ring_woken[t]) == 0)
                ; /* wake-ups from before this record do not count */
        uint64_t seq = ring_seq[t][i] = sv_journal_append(&ring_j, &r, wait && i % 2 ? t : -1);
        if (!wait || sv_journal_watch(&ring_j, seq, t))
            continue;
        /* As a SET: look again only when woken by the writer's
         * notification; a lost one times out. */
        do {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 5;
            if (sem_timedwait(&ring_woken[t], &ts) < 0) {
                atomic_fetch_add(&ring_lost, 1);
                break;
            }
        } while (sv_journal_committed(&ring_j) < seq);
    }
    return NULL;
}

static void test_ring_many_appenders(void **st)
{
    char err[256];
    sv_journal *j = &ring_j;
    assert_int_equal(jopen(j, false, 0, err, sizeof err), 0);
    j->batch_delay_us = 2000; /* a slow disk: the ring fills, appenders wait for room */
    for (int t = 0; t < RING_THREADS; t++)
        sem_init(&ring_woken[t], 0, 0);
    assert_int_equal(sv_journal_start(j, RING_THREADS, ring_notify, NULL), 0);
    pthread_t th[RING_THREADS];
    for (int t = 0; t < RING_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, ring_appender, (void *)(intptr_t)t), 0);
    for (int t = 0; t < RING_THREADS; t++)
        pthread_join(th[t], NULL);
    assert_int_equal(atomic_load(&ring_lost), 0);
    print_message("ring: %llu batches, %llu records at most in one, %llu waits for room\n",
                  (unsigned long long)atomic_load(&j->batches), (unsigned long long)atomic_load(&j->max_batch),
                  (unsigned long long)atomic_load(&sv_lock_kinds[SV_LK_JOURNAL].waits));
    assert_int_equal(sv_journal_committed(j), sv_journal_appended(j));
    sv_journal_close(j);

    /* The file: every record once, whole, in the order of its number. */
    static uint8_t seen[RING_THREADS][RING_PER];
    memset(seen, 0, sizeof seen);
    hb_jfile jf;
    assert_int_equal(hb_jfile_open(&jf, path, err, sizeof err), 0);
    Hb__Record *r;
    uint64_t n = 0, prev = 0, multi = 0;
    while (hb_jfile_next(&jf, &r)) {
        int t = (int)(r->packet_id >> 32), i = (int)(uint32_t)r->packet_id;
        assert_true(t >= 0 && t < RING_THREADS && i >= 0 && i < RING_PER);
        assert_int_equal(r->uid, (uint32_t)t);
        assert_false(seen[t][i]);
        seen[t][i] = 1;
        Hb__Record want;
        uint32_t u[HB_SPLIT_MAX], sh[HB_SPLIT_MAX];
        Hb__Cycle cy;
        size_t len = ring_record(t, i, &want, u, sh, &cy);
        multi += len > SV_JSLOT;
        assert_int_equal(r->n_recipients, want.n_recipients);
        for (size_t m = 0; m < r->n_recipients; m++)
            assert_int_equal(r->recipients[m], u[m]);
        assert_int_equal(r->cycle != NULL, want.cycle != NULL);
        assert_true(ring_seq[t][i] > prev); /* file order is ticket order */
        prev = ring_seq[t][i];
        n++;
    }
    assert_null(jf.stop_reason);
    hb_jfile_close(&jf);
    assert_int_equal(n, (uint64_t)RING_THREADS * RING_PER);
    assert_true(multi > 0);
    for (int t = 0; t < RING_THREADS; t++)
        sem_destroy(&ring_woken[t]);
}

/* A full ring: the appender waits for the writer (here, not yet started),
 * is woken when it takes records out, and nothing is lost. */
static sv_journal full_j;
static _Atomic uint64_t full_done;

static void *full_appender(void *arg)
{
    (void)arg;
    for (uint64_t i = 1; i <= 3 * SV_JSLOTS; i++) {
        Hb__Record r = rec(HB__RECORD_TYPE__REC_CREATE, HB__PACKET_KIND__KIND_SHAKE, i, 100, 0);
        sv_journal_append(&full_j, &r, -1);
        atomic_store(&full_done, i);
    }
    return NULL;
}

static void test_full_ring_waits_for_writer(void **st)
{
    (void)st;
    char err[256];
    assert_int_equal(jopen(&full_j, false, 0, err, sizeof err), 0);
    uint64_t waits = atomic_load(&sv_lock_kinds[SV_LK_JOURNAL].waits);
    atomic_store(&full_done, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, full_appender, NULL), 0);
    while (atomic_load(&full_done) < SV_JSLOTS)
        usleep(1000);
    usleep(100000);
    assert_int_equal(atomic_load(&full_done), SV_JSLOTS); /* one ring's worth, then it waits */
    assert_int_equal(sv_journal_start(&full_j, 1, NULL, NULL), 0);
    pthread_join(th, NULL);
    assert_true(atomic_load(&sv_lock_kinds[SV_LK_JOURNAL].waits) > waits); /* counted as a journal wait */
    sv_journal_close(&full_j);
    const char *why;
    size_t valid;
    assert_int_equal(count_records(path, &why, &valid), 3 * SV_JSLOTS);
    assert_null(why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_and_corrupt_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_security, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_sparse_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_in_the_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_many_appenders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_ring_waits_for_writer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
