/* Producer: with a simulated clock, the rate is exact, every SET gets its
 * round-robin share, a full queue never loses a packet, the send flow follows
 * the shake flow, and a restart continues ids and totals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "producer.h"

#define NSETS 7

typedef struct fake {
    uint64_t per_set[NSETS];
    uint64_t cap[NSETS]; /* queue capacity, UINT64_MAX = unbounded */
    uint64_t created_shake, created_send, sent;
    uint64_t last_id;
    uint64_t amount_sum;
    uint64_t rng;
    uint64_t order[64]; /* ids dealt, in order (the first 64) */
    int norder;
} fake;

static void created(void *ctx, const Hb__Record *r)
{
    fake *f = ctx;
    if (r->kind == HB__PACKET_KIND__KIND_SHAKE) {
        assert_int_equal(r->packet_id, f->last_id + 1); /* dense ids, in order */
        f->last_id = r->packet_id;
        f->created_shake++;
    } else {
        f->created_send++;
    }
}

static bool deal(void *ctx, int set, const sv_packet *p)
{
    fake *f = ctx;
    if (f->per_set[set] >= f->cap[set])
        return false;
    f->per_set[set]++;
    f->amount_sum += p->amount;
    if (f->norder < 64)
        f->order[f->norder++] = p->id;
    return true;
}

static void sent(void *ctx, uint64_t id, const sv_sendpkt *p)
{
    fake *f = ctx;
    uint64_t sum = 0;
    for (int i = 0; i < p->n; i++)
        sum += p->share[i];
    assert_int_equal(sum, p->amount);
    f->sent++;
}

static uint32_t pick(void *ctx, uint64_t *rng)
{
    return hb_rand_below(rng, 1000);
}

static sv_producer_ops ops(fake *f)
{
    return (sv_producer_ops){.ctx = f, .created = created, .deal = deal, .sent = sent, .pick = pick};
}

/* A producer over NSETS queues that never fill. */
static void unbounded(fake *f, sv_producer *p)
{
    *f = (fake){0};
    for (int i = 0; i < NSETS; i++)
        f->cap[i] = UINT64_MAX;
    sv_producer_ops o = ops(f);
    assert_int_equal(sv_producer_init(p, &o, NSETS, 42), 0);
}

static void test_rate_exact(void **st)
{
    fake f;
    sv_producer p;
    unbounded(&f, &p);
    sv_flow_set(&p.shake, 200, 1000000, 0, 1, 100);
    int64_t t0 = 5000000;
    sv_producer_start(&p, t0);
    /* step at irregular intervals (1..97 ms) for 60 simulated seconds */
    int64_t now = t0;
    uint64_t step = 0;
    while (now < t0 + 60000000) {
        now += 1000 + (int64_t)((step++ * 7919) % 97) * 1000;
        sv_producer_step(&p, now);
        /* packet k is due at t0 + k/rate: exactly floor(elapsed*rate)+1 made */
        uint64_t want = (uint64_t)((now - t0) * 200 / 1000000) + 1;
        assert_int_equal(p.shake.made, want);
    }
    /* round-robin: shares differ by at most one */
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < NSETS; i++) {
        lo = f.per_set[i] < lo ? f.per_set[i] : lo;
        hi = f.per_set[i] > hi ? f.per_set[i] : hi;
        assert_int_equal(HB_GET(p.dealt[i]), f.per_set[i]);
    }
    assert_true(hi - lo <= 1);
    assert_int_equal(f.created_shake, p.shake.made);
    sv_producer_free(&p);
}

static void test_total_then_send_flow(void **st)
{
    fake f = {0};
    for (int i = 0; i < NSETS; i++)
        f.cap[i] = UINT64_MAX;
    sv_producer p;
    sv_producer_ops o = ops(&f);
    sv_producer_init(&p, &o, NSETS, 7);
    sv_flow_set(&p.shake, 100, 500, 0, 1, 100);     /* 5 s */
    sv_flow_set(&p.send, 50, 100, 0, 10, 1000);     /* then 2 s */
    p.split = 3;
    sv_producer_start(&p, 0);
    for (int64_t now = 0; now <= 10000000; now += 10000)
        sv_producer_step(&p, now);
    assert_true(sv_producer_done(&p));
    assert_int_equal(f.created_shake, 500);
    assert_int_equal(f.created_send, 100);
    assert_int_equal(f.sent, 100);
    /* the send flow started where the shake flow ended (5 s), so by 6 s it
     * had made about 50 */
    sv_producer p2;
    fake g = {0};
    for (int i = 0; i < NSETS; i++)
        g.cap[i] = UINT64_MAX;
    sv_producer_ops o2 = ops(&g);
    sv_producer_init(&p2, &o2, NSETS, 7);
    sv_flow_set(&p2.shake, 100, 500, 0, 1, 100);
    sv_flow_set(&p2.send, 50, 100, 0, 10, 1000);
    sv_producer_start(&p2, 0);
    for (int64_t now = 0; now <= 6000000; now += 10000)
        sv_producer_step(&p2, now);
    assert_int_equal(g.created_shake, 500);
    assert_int_equal(g.created_send, 51); /* packets 0..50 due at 5.00 .. 6.00 s */
    sv_producer_free(&p);
    sv_producer_free(&p2);
}

static void test_full_queues_lose_nothing(void **st)
{
    fake f = {0};
    for (int i = 0; i < NSETS; i++)
        f.cap[i] = 3; /* tiny queues */
    sv_producer p;
    sv_producer_ops o = ops(&f);
    sv_producer_init(&p, &o, NSETS, 1);
    sv_flow_set(&p.shake, 1000, 100, 0, 5, 5);
    sv_producer_start(&p, 0);
    for (int64_t now = 0; now < 1000000; now += 1000)
        sv_producer_step(&p, now);
    /* 21 fit; the 22nd is held, none after it is made */
    uint64_t placed = 0;
    for (int i = 0; i < NSETS; i++)
        placed += f.per_set[i];
    assert_int_equal(placed, 21);
    assert_int_equal(f.created_shake, 22);
    assert_int_equal(sv_producer_held(&p), 1);
    assert_true(HB_GET(p.stalls) > 0);
    /* space appears: the held packet goes first, then production resumes */
    for (int i = 0; i < NSETS; i++)
        f.cap[i] = UINT64_MAX;
    sv_producer_step(&p, 1000000);
    assert_int_equal(sv_producer_held(&p), 0);
    placed = 0;
    for (int i = 0; i < NSETS; i++)
        placed += f.per_set[i];
    assert_int_equal(placed, f.created_shake);
    assert_int_equal(f.amount_sum, 5 * placed);
    sv_producer_free(&p);
}

/* Packets held at start (the journal's unwon ones that did not fit the
 * queues, issue 13.4) are dealt before anything new, in order, as room
 * appears; holding more later keeps the order (the ring is unwrapped). */
static void test_held_dealt_first(void **st)
{
    fake f = {0};
    for (int i = 0; i < NSETS; i++)
        f.cap[i] = 1;
    sv_producer p;
    sv_producer_ops o = ops(&f);
    sv_producer_init(&p, &o, NSETS, 1);
    sv_packet replayed[10], more[20];
    for (int i = 0; i < 10; i++)
        replayed[i] = (sv_packet){.id = 1001 + (uint64_t)i, .amount = 5};
    for (int i = 0; i < 20; i++)
        more[i] = (sv_packet){.id = 2001 + (uint64_t)i, .amount = 5};
    assert_int_equal(sv_producer_hold(&p, replayed, 10), 0);
    sv_flow_set(&p.shake, 1000, 5, 0, 5, 5);
    sv_producer_start(&p, 0);
    assert_int_equal(sv_producer_step(&p, 1000000), 0); /* 7 placed, 3 wait; nothing new made */
    assert_int_equal(f.norder, 7);
    assert_int_equal(sv_producer_held(&p), 3);
    assert_int_equal(f.created_shake, 0);
    assert_int_equal(sv_producer_next_due(&p), 0);
    assert_false(sv_producer_done(&p));
    assert_int_equal(sv_producer_hold(&p, more, 20), 0);
    for (int i = 0; i < NSETS; i++)
        f.cap[i] = UINT64_MAX;
    assert_int_equal(sv_producer_step(&p, 1000000), 5);
    assert_int_equal(sv_producer_held(&p), 0);
    assert_int_equal(f.norder, 7 + 3 + 20 + 5);
    for (int i = 0; i < 10; i++)
        assert_int_equal(f.order[i], 1001 + (uint64_t)i);
    for (int i = 0; i < 20; i++)
        assert_int_equal(f.order[10 + i], 2001 + (uint64_t)i);
    for (int i = 0; i < 5; i++)
        assert_int_equal(f.order[30 + i], 1 + (uint64_t)i);
    assert_true(sv_producer_done(&p));
    sv_producer_free(&p);
}

static void test_restart_continues(void **st)
{
    fake f = {0};
    for (int i = 0; i < NSETS; i++)
        f.cap[i] = UINT64_MAX;
    f.last_id = 300; /* the journal had ids 1..300 */
    sv_producer p;
    sv_producer_ops o = ops(&f);
    sv_producer_init(&p, &o, NSETS, 1);
    sv_flow_set(&p.shake, 100, 400, 300, 1, 10);
    sv_producer_start(&p, 0);
    for (int64_t now = 0; now <= 5000000; now += 1000)
        sv_producer_step(&p, now);
    assert_int_equal(f.created_shake, 100); /* only the remaining 100 */
    assert_int_equal(f.last_id, 400);
    assert_true(sv_producer_done(&p));
    sv_producer_free(&p);
}

static void test_cycles(void **st)
{
    fake f = {0};
    for (int i = 0; i < NSETS; i++)
        f.cap[i] = UINT64_MAX;
    sv_producer p;
    sv_producer_ops o = ops(&f);
    sv_producer_init(&p, &o, NSETS, 3);
    sv_flow_set(&p.shake, 100, 50, 0, 1, 10);
    sv_flow_set(&p.send, 100, 10, 0, 10, 100);
    sv_producer_start(&p, 0);
    for (int64_t now = 0; now <= 2000000; now += 1000)
        sv_producer_step(&p, now);
    assert_true(sv_producer_done(&p));
    assert_int_equal(f.created_shake, 50);
    assert_int_equal(f.created_send, 10);
    /* a second cycle, later: again 50 shake packets, then 10 send packets,
     * ids continuing, at the same rate from the moment it starts */
    sv_producer_add_cycle(&p, 50, 10, 5000000);
    sv_producer_step(&p, 5000000 + 250000);
    assert_int_equal(f.created_shake, 76); /* 26 due in the first 0.25 s */
    assert_int_equal(f.created_send, 10);  /* the send flow waits for the shake flow */
    for (int64_t now = 5250000; now <= 7000000; now += 1000)
        sv_producer_step(&p, now);
    assert_true(sv_producer_done(&p));
    assert_int_equal(f.created_shake, 100);
    assert_int_equal(f.last_id, 100);
    assert_int_equal(f.created_send, 20);
    assert_int_equal(f.sent, 20);
    sv_producer_free(&p);
}

/* Lateness: a step at the due time counts nothing; a step 7 ms after a
 * packet was due counts it (and each packet by its own due time). */
static void test_lateness(void **st)
{
    fake f;
    sv_producer p;
    unbounded(&f, &p);
    sv_flow_set(&p.shake, 200, 1000, 0, 1, 100); /* one every 5 ms */
    int64_t t0 = 1000000;
    sv_producer_start(&p, t0);
    for (int64_t now = t0; now <= t0 + 100000; now += 5000) /* on time */
        sv_producer_step(&p, now);
    assert_int_equal(p.shake.made, 21);
    assert_int_equal(HB_GET(p.late_us), 0);
    assert_int_equal(HB_GET(p.late_5ms), 0);
    /* due at +105, +110, +115 ms; made at +117 ms: 12, 7 and 2 ms late */
    sv_producer_step(&p, t0 + 117000);
    assert_int_equal(p.shake.made, 24);
    assert_int_equal(HB_GET(p.late_us), 12000 + 7000 + 2000);
    assert_int_equal(HB_GET(p.late_5ms), 2);
    assert_int_equal(HB_GET(p.late_max_us), 12000);
    sv_producer_free(&p);
}

/* The producer thread's tick (dealer.c): slots of 50 ms on a grid at an
 * arbitrary phase (the wall clock's seconds on the monotonic clock), the
 * schedule starting off the grid, the thread woken 0, 15 or 30 ms late.
 * Each slot's packets are made at its start: late by no more than the
 * wake-up, at most 20 wake-ups a second, and each second of the grid gets
 * exactly 200: a late wake-up stays inside its second, since slots start on
 * the second (with the slots off the seconds' grid, these wake-ups would
 * carry packets into the next second). */
static void test_tick(void **st)
{
    fake f;
    sv_producer p;
    unbounded(&f, &p);
    sv_flow_set(&p.shake, 200, 1000000, 0, 1, 100);
    const int64_t t0 = 5000000 + 12345, tick = 50000, phase = 7777;
    sv_producer_start(&p, t0);
    int64_t now = t0;
    uint64_t wakes = 0, in_second[64] = {0};
    while (now < t0 + 60000000) {
        uint64_t before = p.shake.made;
        int64_t next = sv_producer_tick(&p, now, tick, phase);
        wakes++;
        /* everything due before the end of now's slot is made, nothing later */
        int64_t end = now - ((now - phase) % tick) + tick;
        assert_int_equal(p.shake.made, (uint64_t)((end - 1 - t0) * 200 / 1000000) + 1);
        assert_true(next >= end);                 /* one wake-up per slot at most */
        assert_int_equal((next - phase) % tick, 0); /* at a slot's start */
        in_second[(now - phase) / 1000000 % 64] += p.shake.made - before;
        now = next + (int64_t)(wakes % 3) * 15000; /* woken late */
    }
    /* the whole seconds of the grid after the start, before the end */
    for (int64_t sec = (t0 - phase) / 1000000 + 1; sec < (now - phase) / 1000000 - 1; sec++)
        assert_int_equal(in_second[sec % 64], 200);
    assert_true(HB_GET(p.late_max_us) <= 30000);
    assert_true(wakes <= 60 * 20 + 1);
    /* a thread woken 200 ms late: what fell due meanwhile is late, counted against now */
    sv_producer_tick(&p, now + 200000, tick, phase);
    assert_true(HB_GET(p.late_max_us) >= 190000 && HB_GET(p.late_max_us) <= 230000);
    sv_producer_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_exact),
        cmocka_unit_test(test_total_then_send_flow),
        cmocka_unit_test(test_full_queues_lose_nothing),
        cmocka_unit_test(test_held_dealt_first),
        cmocka_unit_test(test_restart_continues),
        cmocka_unit_test(test_cycles),
        cmocka_unit_test(test_lateness),
        cmocka_unit_test(test_tick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
