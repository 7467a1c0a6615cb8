/* Registry under concurrency (server/registry.h): the grant table loses no
 * grant and never shows a half-written one while many threads add and find
 * and it grows; concurrent opens of one share pay it exactly once, and an
 * open that finds the share being opened elsewhere is not answered before
 * the first open's record exists.  Prints the grant table's throughput
 * (N threads x M grants) as an indicative figure. */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include "jfile.h"
#include "journal.h"
#include "lockstat.h"
#include "registry.h"
#include "set.h"
#include "util.h"

/* ---- grants ---------------------------------------------------------------- */

#define GT_THREADS 8
#define GT_GRANTS 60000 /* per thread: 480,000 in all, from a 1,024-slot table */

static sv_registry greg;
static _Atomic int gt_go;
static _Atomic uint64_t gt_claims;

/* Widen the races the table must survive: a successor made slowly (so
 * others fill the table to 3/4 and make their own), and now and then a
 * writer paused between claiming a slot and publishing its payload. */
static void gt_hook(int point, uint64_t key)
{
    (void)key;
    if (point == SV_RP_GRANT_GROW)
        usleep(300);
    else if (point == SV_RP_GRANT_CLAIMED && atomic_fetch_add(&gt_claims, 1) % 64 == 0)
        sched_yield();
}
static _Atomic uint64_t gt_bad, gt_checked;

/* What grant (uid, seq) carries: derived from the key, so any reader can
 * check a payload without knowing who wrote it. */
static uint64_t gt_pid(uint32_t uid, uint32_t seq) { return ((uint64_t)uid << 32 | seq) * 2654435761u + 1; }
static uint32_t gt_amount(uint32_t uid, uint32_t seq) { return (uid * 7919u + seq) % 100000u + 1; }
static uint64_t gt_jseq(uint32_t uid, uint32_t seq) { return (uint64_t)seq * 64 + uid + 1; }

static bool gt_check(uint32_t uid, uint32_t seq, bool must)
{
    uint64_t pid = 0, jseq = 0;
    uint32_t amount = 0;
    if (!sv_registry_find_grant(&greg, uid, seq, &pid, &amount, &jseq))
        return !must;
    atomic_fetch_add_explicit(&gt_checked, 1, memory_order_relaxed);
    return pid == gt_pid(uid, seq) && amount == gt_amount(uid, seq) && jseq == gt_jseq(uid, seq);
}

static void *gt_worker(void *arg)
{
    uint32_t me = (uint32_t)(uintptr_t)arg, other = (me + 1) % GT_THREADS;
    while (!atomic_load(&gt_go))
        ;
    for (uint32_t s = 1; s <= GT_GRANTS; s++) {
        sv_registry_add_grant(&greg, me, s, gt_pid(me, s), gt_amount(me, s), gt_jseq(me, s));
        /* my own grant, at once (what a retry after the directory lock sees) */
        if (!gt_check(me, s, true))
            atomic_fetch_add(&gt_bad, 1);
        /* another thread's latest ones, perhaps being written just now: absent
         * or whole, never half-written */
        for (uint32_t d = 0; d < 4; d++)
            if (s > d && !gt_check(other, s - d, false))
                atomic_fetch_add(&gt_bad, 1);
    }
    return NULL;
}

static void run_grants(bool hooked)
{
    assert_int_equal(sv_registry_init(&greg), 0);
    atomic_store(&gt_bad, 0);
    sv_registry_hook = hooked ? gt_hook : NULL;
    pthread_t th[GT_THREADS];
    atomic_store(&gt_go, 0);
    for (uintptr_t i = 0; i < GT_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, gt_worker, (void *)i), 0);
    uint64_t waited = sv_lock_total_wait_us();
    int64_t t0 = hb_mono_us();
    atomic_store(&gt_go, 1);
    for (int i = 0; i < GT_THREADS; i++)
        pthread_join(th[i], NULL);
    int64_t us = hb_mono_us() - t0;
    sv_registry_hook = NULL;
    unsigned tables = 0;
    for (sv_gtab *t = atomic_load(&greg.grants); t; t = t->older)
        tables++;
    printf("grants%s: %d threads x %d adds (+5 finds each): %.1f ms, %.2f M adds/s, %.1f ms blocked on locks; "
           "%u tables, the newest of %zu slots\n",
           hooked ? " (races widened)" : "", GT_THREADS, GT_GRANTS, us / 1000.0,
           (double)GT_THREADS * GT_GRANTS / (double)us, (double)(sv_lock_total_wait_us() - waited) / 1000.0, tables,
           atomic_load(&greg.grants)->cap);
    assert_int_equal(atomic_load(&gt_bad), 0);
    /* afterwards: every grant there, with its payload; none that was not added */
    uint64_t missing = 0;
    for (uint32_t t = 0; t < GT_THREADS; t++)
        for (uint32_t s = 1; s <= GT_GRANTS; s++)
            missing += !gt_check(t, s, true);
    if (missing)
        printf("grants: %llu of %d lost or wrong\n", (unsigned long long)missing, GT_THREADS * GT_GRANTS);
    assert_int_equal(missing, 0);
    uint64_t pid, jseq;
    uint32_t amount;
    assert_false(sv_registry_find_grant(&greg, GT_THREADS, 1, &pid, &amount, &jseq));
    assert_false(sv_registry_find_grant(&greg, 0, GT_GRANTS + 1, &pid, &amount, &jseq));
    sv_registry_free(&greg);
}

/* Checked twice: with the races widened by the hook, and as it runs (the
 * timing printed is that second run's, comparable across versions). */
static void test_grants_concurrent(void **st)
{
    (void)st;
    run_grants(true);
    run_grants(false);
}

/* A writer held between claiming its slot and publishing the payload: a
 * find meanwhile sees nothing (the grant is not added yet), never a slot
 * with an empty payload; once published, the whole grant. */
static _Atomic int held, release_it;
static __thread bool hold_me;

static void hold_hook(int point, uint64_t key)
{
    (void)point;
    (void)key;
    if (!hold_me)
        return;
    atomic_store(&held, 1);
    for (int i = 0; i < 5000 && !atomic_load(&release_it); i++)
        usleep(1000); /* a preempted thread: 5 s at most */
}

static void *grant_writer(void *arg)
{
    (void)arg;
    hold_me = true;
    sv_registry_add_grant(&greg, 42, 77, 9001, 123, 55);
    return NULL;
}

static void test_grant_being_written(void **st)
{
    (void)st;
    assert_int_equal(sv_registry_init(&greg), 0);
    sv_registry_add_grant(&greg, 42, 76, 9000, 100, 54);
    atomic_store(&held, 0);
    atomic_store(&release_it, 0);
    sv_registry_hook = hold_hook;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, grant_writer, NULL), 0);
    while (!atomic_load(&held))
        usleep(100);
    uint64_t pid = 0, jseq = 0;
    uint32_t amount = 0;
    bool found = sv_registry_find_grant(&greg, 42, 77, &pid, &amount, &jseq);
    if (found)
        printf("a half-written grant was found: packet %llu, %u cents, record %llu\n", (unsigned long long)pid,
               amount, (unsigned long long)jseq);
    assert_false(found);
    assert_true(sv_registry_find_grant(&greg, 42, 76, &pid, &amount, &jseq)); /* the rest is readable meanwhile */
    assert_int_equal(pid, 9000);
    atomic_store(&release_it, 1);
    pthread_join(th, NULL);
    sv_registry_hook = NULL;
    assert_true(sv_registry_find_grant(&greg, 42, 77, &pid, &amount, &jseq));
    assert_int_equal(pid, 9001);
    assert_int_equal(amount, 123);
    assert_int_equal(jseq, 55);
    /* a later add of the same (uid, seq) is the one found, as an overwrite was */
    sv_registry_add_grant(&greg, 42, 77, 9002, 124, 56);
    assert_true(sv_registry_find_grant(&greg, 42, 77, &pid, &amount, &jseq));
    assert_int_equal(pid, 9002);
    sv_registry_free(&greg);
}

/* ---- opens ---------------------------------------------------------------- */

static char path[256];
static sv_journal oj;
static sv_registry oreg;

static int setup(void **st)
{
    (void)st;
    char err[256];
    snprintf(path, sizeof path, "/tmp/hb-test-registry-%d", getpid());
    unlink(path);
    int fd = sv_journal_lock(path, err, sizeof err);
    assert_true(fd >= 0);
    assert_int_equal(sv_journal_open(&oj, fd, path, false, 0, err, sizeof err), 0);
    assert_int_equal(sv_journal_start(&oj, 1, NULL, NULL), 0);
    assert_int_equal(sv_registry_init(&oreg), 0);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    sv_registry_free(&oreg);
    unlink(path);
    return 0;
}

/* SHARE records in the closed journal, per (packet k, recipient uid). */
static uint64_t count_shares(uint32_t *per, size_t npkt)
{
    hb_jfile jf;
    char err[256];
    assert_int_equal(hb_jfile_open(&jf, path, err, sizeof err), 0);
    Hb__Record *r;
    uint64_t n = 0;
    while (hb_jfile_next(&jf, &r))
        if (r->type == HB__RECORD_TYPE__REC_SHARE) {
            n++;
            uint64_t k = r->packet_id - hb_send_id(0);
            if (k < npkt && r->uid >= 100 && r->uid < 103)
                per[k * 3 + (r->uid - 100)]++;
        }
    hb_jfile_close(&jf);
    return n;
}

#define OP_THREADS 6
#define OP_PACKETS 3000 /* x 3 recipients, each opened by every thread */

typedef struct op_result {
    Hb__OpenStatus st[OP_PACKETS][3];
    uint32_t share[OP_PACKETS][3];
    uint64_t jseq[OP_PACKETS][3];
    uint64_t waits; /* opens answered "ask again later" */
} op_result;
static op_result *ops;
static _Atomic int op_go;

static void *opener(void *arg)
{
    op_result *me = &ops[(uintptr_t)arg];
    while (!atomic_load(&op_go))
        ;
    for (uint32_t k = 0; k < OP_PACKETS; k++)
        for (uint32_t i = 0; i < 3; i++) {
            uint32_t u = 100 + (i + (uint32_t)(uintptr_t)arg) % 3; /* threads start on different recipients */
            while (!sv_registry_open(&oreg, &oj, -1, hb_send_id(k), u, &me->st[k][u - 100], &me->share[k][u - 100],
                                     &me->jseq[k][u - 100])) {
                me->waits++; /* in flight elsewhere: a SET asks again on a later turn */
                sched_yield();
            }
        }
    return NULL;
}

/* The same shares opened from several threads at once: each is paid exactly
 * once (one OPEN_OK, one SHARE record); every other open is OPEN_ALREADY
 * with the same share and a record at or after the paying one. */
static void test_opens_concurrent(void **st)
{
    (void)st;
    for (uint32_t k = 0; k < OP_PACKETS; k++) {
        sv_sendpkt p = {.amount = 60 + k, .n = 3, .uid = {100, 101, 102}, .share = {10, 20, 30 + k}};
        assert_int_equal(sv_registry_put_send(&oreg, hb_send_id(k), &p), 0);
    }
    ops = calloc(OP_THREADS, sizeof *ops);
    assert_non_null(ops);
    pthread_t th[OP_THREADS];
    atomic_store(&op_go, 0);
    for (uintptr_t t = 0; t < OP_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, opener, (void *)t), 0);
    atomic_store(&op_go, 1);
    uint64_t waits = 0;
    for (int t = 0; t < OP_THREADS; t++) {
        pthread_join(th[t], NULL);
        waits += ops[t].waits;
    }
    sv_journal_close(&oj);
    uint32_t *per = calloc(OP_PACKETS * 3, sizeof *per);
    assert_non_null(per);
    uint64_t shares = count_shares(per, OP_PACKETS);
    uint64_t bad = 0;
    for (uint32_t k = 0; k < OP_PACKETS; k++)
        for (uint32_t i = 0; i < 3; i++) {
            int oks = 0;
            uint64_t win = 0;
            uint32_t want = i == 0 ? 10 : i == 1 ? 20 : 30 + k;
            for (int t = 0; t < OP_THREADS; t++)
                if (ops[t].st[k][i] == HB__OPEN_STATUS__OPEN_OK) {
                    oks++;
                    win = ops[t].jseq[k][i];
                }
            for (int t = 0; t < OP_THREADS; t++) {
                bool ok = ops[t].share[k][i] == want &&
                          (ops[t].st[k][i] == HB__OPEN_STATUS__OPEN_OK ||
                           (ops[t].st[k][i] == HB__OPEN_STATUS__OPEN_ALREADY && ops[t].jseq[k][i] >= win));
                bad += !ok;
            }
            if (oks != 1 || per[k * 3 + i] != 1) {
                if (bad < 5)
                    printf("packet %u recipient %u: %d OPEN_OK, %u SHARE records\n", k, i, oks, per[k * 3 + i]);
                bad++;
            }
        }
    sv_sendpkt p;
    assert_true(sv_registry_get_send(&oreg, hb_send_id(OP_PACKETS - 1), &p));
    printf("opens: %d threads x %d shares: %llu SHARE records, %llu opens asked again later\n", OP_THREADS,
           OP_PACKETS * 3, (unsigned long long)shares, (unsigned long long)waits);
    assert_int_equal(p.opened, 7);
    assert_int_equal(bad, 0);
    assert_int_equal(shares, OP_PACKETS * 3);
    free(per);
    free(ops);
}

static Hb__OpenStatus held_st;
static uint32_t held_share;
static uint64_t held_jseq;

static void *held_opener(void *arg)
{
    (void)arg;
    hold_me = true;
    assert_true(sv_registry_open(&oreg, &oj, -1, hb_send_id(0), 101, &held_st, &held_share, &held_jseq));
    return NULL;
}

/* An opener held between its claim and its record (a preempted SET): a
 * second open of that share is not answered -- neither paid nor told
 * OPEN_ALREADY before the record it would repeat exists -- and returns at
 * once; the producer's snapshot does not wait either.  Once the first open
 * has its record, the second is OPEN_ALREADY with it. */
static void test_open_in_flight(void **st)
{
    (void)st;
    sv_sendpkt p = {.amount = 100, .n = 3, .uid = {100, 101, 102}, .share = {10, 30, 60}};
    assert_int_equal(sv_registry_put_send(&oreg, hb_send_id(0), &p), 0);
    atomic_store(&held, 0);
    atomic_store(&release_it, 0);
    sv_registry_hook = hold_hook;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, held_opener, NULL), 0);
    while (!atomic_load(&held))
        usleep(100);
    int64_t t0 = hb_mono_us();
    uint64_t appended = sv_journal_appended(&oj);
    Hb__OpenStatus s2 = HB__OPEN_STATUS__OPEN_OK;
    uint32_t share = 0;
    uint64_t jseq = 0;
    bool answered = sv_registry_open(&oreg, &oj, -1, hb_send_id(0), 101, &s2, &share, &jseq);
    if (answered)
        printf("answered while the first open has no record: status %d, share %u, record %llu\n", (int)s2, share,
               (unsigned long long)jseq);
    assert_false(answered);
    assert_int_equal(sv_journal_appended(&oj), appended); /* nothing paid */
    sv_sendpkt snap;
    assert_true(sv_registry_get_send(&oreg, hb_send_id(0), &snap));
    assert_int_equal(snap.opened, 2); /* claimed: the producer does not tell it again */
    /* another recipient of the same packet is not held up */
    assert_true(sv_registry_open(&oreg, &oj, -1, hb_send_id(0), 102, &s2, &share, &jseq));
    assert_int_equal(s2, HB__OPEN_STATUS__OPEN_OK);
    assert_int_equal(share, 60);
    assert_true(hb_mono_us() - t0 < 1000000); /* nothing waited for the held opener */
    atomic_store(&release_it, 1);
    pthread_join(th, NULL);
    sv_registry_hook = NULL;
    assert_int_equal(held_st, HB__OPEN_STATUS__OPEN_OK);
    assert_int_equal(held_share, 30);
    assert_true(held_jseq > 0);
    assert_true(sv_registry_open(&oreg, &oj, -1, hb_send_id(0), 101, &s2, &share, &jseq));
    assert_int_equal(s2, HB__OPEN_STATUS__OPEN_ALREADY);
    assert_int_equal(share, 30);
    assert_true(jseq >= held_jseq);
    sv_journal_close(&oj);
    uint32_t per[3] = {0};
    assert_int_equal(count_shares(per, 1), 2);
    assert_int_equal(per[1], 1);
    assert_int_equal(per[2], 1);
}

/* ---- the SET side: an open found in flight is kept, not answered ------------- */

/* One in-process SET whose loop is never run (tests/fuzz/fuzz_server.c does
 * the same): frames go in through a socketpair and the connection's read
 * callback, replies come out of the other end. */
static sv_server srv;
static sv_set *set;

static void set_up(void)
{
    memset(&srv, 0, sizeof srv);
    sv_config *c = &srv.cfg;
    sv_server_defaults(c);
    c->listen = "127.0.0.1";
    c->ports = "1";
    c->sets = 1;
    c->max_conns = 64;
    c->users = 100;
    c->queue = 16;
    c->inbox = 64;
    c->journal = "/dev/null";
    c->fsync = false;
    char err[256];
    assert_int_equal(sv_server_init(&srv, err, sizeof err), 0);
    assert_int_equal(
        sv_journal_open(&srv.journal, open("/dev/null", O_WRONLY | O_CLOEXEC), "/dev/null", false, 0, err, sizeof err),
        0);
    assert_int_equal(sv_journal_start(&srv.journal, 1, NULL, NULL), 0);
    assert_int_equal(sv_set_create(&srv, 0, err, sizeof err), 0);
    set = srv.sets[0];
    set->t0_mono = hb_mono_us();
    for (uint64_t k = 0; k < 2; k++) {
        sv_sendpkt p = {.amount = 600, .n = 3, .uid = {1, 2, 3}, .share = {100, 200, 300}};
        assert_int_equal(sv_registry_put_send(&srv.reg, hb_send_id(k), &p), 0);
    }
}

static void set_down(void)
{
    sv_journal_close(&srv.journal);
    sv_server_free(&srv);
    set = NULL;
}

typedef struct client {
    int fd;     /* our end */
    sv_conn *c; /* the server's */
    uint32_t gen;
} client;

static void client_send(client *k, const Hb__Frame *f)
{
    uint8_t buf[256];
    size_t n = hb_frame_pack(f, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(write(k->fd, buf, n), (ssize_t)n);
    sv_conn_io_cb(set->loop, &k->c->io, EV_READ);
}

static client client_login(uint32_t uid)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    client k = {.fd = sv[1]};
    k.c = sv_conn_accepted(set, sv[0], 0x0100007f);
    assert_non_null(k.c);
    k.gen = k.c->gen;
    Hb__Login l = HB__LOGIN__INIT;
    l.uid = uid;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_LOGIN;
    f.login = &l;
    client_send(&k, &f);
    return k;
}

static void client_open(client *k, uint64_t id)
{
    Hb__Open o = HB__OPEN__INIT;
    o.packet_id = id;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_OPEN;
    f.open = &o;
    client_send(k, &f);
}

/* The OpenReplies that reached the client since last asked (-1: the
 * connection was closed); the last one's status and share. */
static int client_replies(client *k, int *st, uint32_t *share)
{
    static uint8_t buf[65536];
    static uint8_t mem[4096];
    ssize_t n = read(k->fd, buf, sizeof buf);
    if (n == 0)
        return -1;
    int got = 0;
    size_t off = 0, prefix, body;
    while (n > 0 && (size_t)n > off && hb_frame_scan(buf + off, (size_t)n - off, 65536, &prefix, &body) == HB_SCAN_FRAME) {
        hb_arena a;
        hb_arena_init(&a, mem, sizeof mem);
        Hb__Frame *f = hb_frame_unpack(&a, buf + off + prefix, body);
        if (f && f->body_case == HB__FRAME__BODY_OPEN_REPLY) {
            got++;
            *st = f->open_reply->status;
            *share = f->open_reply->share;
        }
        off += prefix + body;
    }
    return got;
}

static void test_set_keeps_open_in_flight(void **st)
{
    (void)st;
    set_up();
    client k = client_login(2);
    int status = -1;
    uint32_t share = 0;
    client_replies(&k, &status, &share); /* LoginOk */
    /* uid 2's share of packet 0 claimed by another thread, its record not
     * appended yet: what a concurrent open holds between the two */
    sv_sendrec *rec = &srv.reg.chunk[0][0];
    atomic_fetch_or(&rec->opened, (uint16_t)SV_OPEN_CLAIMED(1));
    uint64_t appended = sv_journal_appended(&srv.journal);
    client_open(&k, hb_send_id(0));
    int got = client_replies(&k, &status, &share);
    if (got)
        printf("answered while in flight: status %d, share %u\n", status, share);
    assert_int_equal(got, 0);
    assert_int_equal(set->nreopen, 1);
    assert_true(ev_is_active(&set->reopen_timer));
    assert_int_equal(sv_journal_appended(&srv.journal), appended); /* nothing paid */
    /* a later turn, still in flight: kept again */
    sv_retry_opens(set, false);
    assert_int_equal(client_replies(&k, &status, &share), 0);
    assert_int_equal(set->nreopen, 1);
    /* the other open appends its record and says so: the next turn answers */
    atomic_store(&rec->jseq, 0); /* (0: durable, answered at once) */
    atomic_fetch_or(&rec->opened, (uint16_t)SV_OPEN_RECORDED(1));
    sv_retry_opens(set, false);
    assert_int_equal(set->nreopen, 0);
    assert_int_equal(client_replies(&k, &status, &share), 1);
    assert_int_equal(status, HB__OPEN_STATUS__OPEN_ALREADY);
    assert_int_equal(share, 200);
    assert_int_equal(sv_journal_appended(&srv.journal), appended);

    /* a full list closes the connection (the client opens again after
     * reconnecting), and so does a hot upgrade's last turn */
    sv_sendrec *rec1 = &srv.reg.chunk[0][1];
    atomic_fetch_or(&rec1->opened, (uint16_t)SV_OPEN_CLAIMED(1));
    for (int i = 0; i < SV_REOPEN_MAX; i++)
        client_open(&k, hb_send_id(1));
    assert_int_equal(set->nreopen, SV_REOPEN_MAX);
    assert_true(k.c->gen == k.gen && k.c->state == SV_CONN_ACTIVE);
    client_open(&k, hb_send_id(1));
    assert_false(k.c->gen == k.gen && k.c->state == SV_CONN_ACTIVE);
    close(k.fd);
    client k2 = client_login(3);
    client_replies(&k2, &status, &share);
    atomic_fetch_or(&rec1->opened, (uint16_t)SV_OPEN_CLAIMED(2));
    client_open(&k2, hb_send_id(1));
    sv_retry_opens(set, true); /* the first client's entries are dropped: it left */
    assert_int_equal(set->nreopen, 0);
    assert_false(k2.c->gen == k2.gen && k2.c->state == SV_CONN_ACTIVE);
    close(k2.fd);
    set_down();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grants_concurrent),
        cmocka_unit_test(test_grant_being_written),
        cmocka_unit_test_setup_teardown(test_opens_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_in_flight, setup, teardown),
        cmocka_unit_test(test_set_keeps_open_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
