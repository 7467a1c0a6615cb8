/* Scheduling: over a simulated minute, exactly qps shakes per second in
 * aggregate, each uid at most once per round, even across client processes,
 * for rates that divide the user count and rates that do not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "schedule.h"

typedef struct sim {
    uint64_t users, qps;
    int procs;
    cl_layout lay;
    cl_plan plan;
    cl_mine mine[17];
    uint64_t per_proc_total[17];
    uint64_t this_second;
    int64_t *last_sec; /* per uid: second of its last shake */
    uint64_t *last_abs;
    int64_t sec;
    int64_t now_us;
    uint64_t late; /* fired after its due time */
    uint64_t twice_in_round;
    int proc;
} sim;

static void fired(void *ctx, uint32_t ref, uint64_t abs)
{
    sim *s = ctx;
    uint64_t uid = ref;
    /* its position is exactly the one that fell due */
    assert_int_equal(cl_layout_pos(&s->lay, uid), abs % s->users);
    /* never fired before it is due */
    assert_true(cl_plan_when(&s->plan, abs) <= s->now_us);
    if (s->last_abs[uid] != UINT64_MAX && abs - s->last_abs[uid] < s->users)
        s->twice_in_round++;
    s->last_abs[uid] = abs;
    s->this_second++;
    s->per_proc_total[s->proc]++;
}

/* Run `seconds` of schedule for `procs` client processes with contiguous uid
 * ranges, stepping the clock in ticks of tick_us. */
static void run(uint64_t users, uint64_t qps, int procs, int seconds, int64_t tick_us)
{
    sim *s = calloc(1, sizeof *s);
    s->users = users;
    s->qps = qps;
    s->procs = procs;
    cl_layout_init(&s->lay, users, qps, 0);
    cl_plan_init(&s->plan, qps);
    s->last_abs = malloc(users * sizeof *s->last_abs);
    memset(s->last_abs, 0xff, users * sizeof *s->last_abs);
    int64_t t0 = 1795000000; /* an arbitrary unix second */
    for (int p = 0; p < procs; p++) {
        uint64_t from = users * (uint64_t)p / (uint64_t)procs, to = users * (uint64_t)(p + 1) / (uint64_t)procs;
        uint32_t *pos = malloc((to - from) * sizeof *pos), *ref = malloc((to - from) * sizeof *ref);
        for (uint64_t u = from; u < to; u++) {
            pos[u - from] = (uint32_t)cl_layout_pos(&s->lay, u);
            ref[u - from] = (uint32_t)u;
        }
        cl_mine_init(&s->mine[p], users, pos, ref, to - from);
        cl_mine_seek(&s->mine[p], cl_plan_due(&s->plan, t0 * 1000000));
    }
    for (int sec = 0; sec < seconds; sec++) {
        s->this_second = 0;
        for (int64_t us = tick_us; us <= 1000000; us += tick_us) {
            s->now_us = (t0 + sec) * 1000000 + us - 1; /* the last microsecond of each tick */
            if (us == 1000000)
                s->now_us = (t0 + sec + 1) * 1000000; /* end exactly on the boundary */
            uint64_t due = cl_plan_due(&s->plan, s->now_us);
            for (int p = 0; p < procs; p++) {
                s->proc = p;
                cl_mine_advance(&s->mine[p], due, fired, s);
            }
        }
        assert_int_equal(s->this_second, qps); /* exact aggregate, every second */
    }
    assert_int_equal(s->twice_in_round, 0);
    /* even across processes: totals within 1% of each other */
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int p = 0; p < procs; p++) {
        if (s->per_proc_total[p] < lo)
            lo = s->per_proc_total[p];
        if (s->per_proc_total[p] > hi)
            hi = s->per_proc_total[p];
    }
    assert_true((double)(hi - lo) <= 0.01 * (double)hi);
    for (int p = 0; p < procs; p++) {
        free(s->mine[p].pos);
        free(s->mine[p].ref);
    }
    free(s->last_abs);
    free(s);
}

static void test_divisible(void **st)
{
    run(1000000, 50000, 2, 60, 10000);
    run(20000, 2000, 2, 60, 2000);
}

static void test_not_divisible(void **st)
{
    run(1000000, 30000, 17, 60, 10000); /* the seed's 30k over 1M users, 17 client hosts */
    run(1000000, 60000, 17, 60, 10000);
    run(99991, 777, 3, 60, 5000); /* a prime number of users */
}

static void test_seed_rule_when_divisible(void **st)
{
    /* qps divides users: second t shakes exactly the uids with
     * uid % groups == t % groups, the seed's rule. */
    uint64_t users = 1000, qps = 100, groups = users / qps;
    cl_layout lay;
    cl_plan plan;
    cl_layout_init(&lay, users, qps, 0);
    cl_plan_init(&plan, qps);
    assert_int_equal(lay.groups, groups);
    for (int64_t t = 1795000000; t < 1795000000 + 25; t++) {
        uint64_t c = cl_plan_cursor(&plan, t);
        for (uint64_t k = 0; k < qps; k++) {
            uint64_t uid = cl_layout_uid(&lay, (c + k) % users);
            assert_int_equal(uid % groups, (uint64_t)t % groups);
        }
    }
}

static void test_layout_bijection(void **st)
{
    uint64_t sizes[][2] = {{1000000, 30000}, {99991, 777}, {10, 3}, {7, 7}, {5, 100}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        cl_layout lay;
        cl_layout_init(&lay, sizes[i][0], sizes[i][1], 0);
        uint8_t *hit = calloc(lay.users, 1);
        for (uint64_t u = 0; u < lay.users; u++) {
            uint64_t p = cl_layout_pos(&lay, u);
            assert_true(p < lay.users);
            assert_int_equal(hit[p], 0);
            hit[p] = 1;
            assert_int_equal(cl_layout_uid(&lay, p), u);
        }
        free(hit);
    }
}

static void test_spread_inside_second(void **st)
{
    /* position k of second t is due at t + k/qps: the first half of the
     * window is due by mid-second, not all at the boundary */
    cl_plan plan;
    cl_plan_init(&plan, 30000);
    int64_t t = 1795000000;
    uint64_t c = cl_plan_cursor(&plan, t);
    /* position 0 is due exactly at the boundary, position 15000 at mid-second */
    assert_int_equal(cl_plan_due(&plan, t * 1000000 - 1), c);
    assert_int_equal(cl_plan_due(&plan, t * 1000000), c + 1);
    assert_int_equal(cl_plan_due(&plan, t * 1000000 + 499999), c + 15000);
    assert_int_equal(cl_plan_due(&plan, t * 1000000 + 500000), c + 15001);
    assert_int_equal(cl_plan_due(&plan, (t + 1) * 1000000 - 1), c + 30000);
    assert_int_equal(cl_plan_when(&plan, c + 15000), t * 1000000 + 500000);
    /* every position is released exactly at its due time, never later */
    for (uint64_t k = 0; k < 30000; k += 7) {
        int64_t when = cl_plan_when(&plan, c + k);
        assert_true(cl_plan_due(&plan, when) > c + k);
        assert_true(cl_plan_due(&plan, when - 1) <= c + k);
    }
}

static void test_rate_change_continuous(void **st)
{
    /* 30k -> 60k at second T: the cursor continues, so two clients that
     * apply the change at the same second agree, and no position is skipped
     * or repeated across the switch. */
    cl_plan a, b;
    cl_plan_init(&a, 30000);
    int64_t T = 1795000100;
    uint64_t before = cl_plan_cursor(&a, T);
    b = a;
    cl_plan_change(&a, T, 60000);
    cl_plan_change(&b, T, 60000);
    assert_int_equal(cl_plan_cursor(&a, T), before);
    assert_int_equal(cl_plan_cursor(&a, T + 1), before + 60000);
    assert_int_equal(cl_plan_cursor(&b, T + 7), cl_plan_cursor(&a, T + 7));
}

/* A worker that sleeps until its next due position (cl_mine_next +
 * cl_plan_when) instead of ticking every millisecond fires exactly the same
 * positions in the same order, each at its own due time, and wakes only
 * when something is due: once per position or fewer, never for nothing.
 * Also across laps and a rate change (the wake for a change is the change's
 * second, as the worker arms it). */
typedef struct rec {
    uint64_t *abs;
    size_t n, cap;
} rec;

static void record(void *ctx, uint32_t ref, uint64_t abs)
{
    (void)ref;
    rec *r = ctx;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 1024;
        r->abs = realloc(r->abs, r->cap * sizeof *r->abs);
    }
    r->abs[r->n++] = abs;
}

static void mine_of(const cl_layout *lay, uint64_t from, uint64_t to, cl_mine *m)
{
    uint32_t *pos = malloc((to - from) * sizeof *pos), *ref = malloc((to - from) * sizeof *ref);
    for (uint64_t u = from; u < to; u++) {
        pos[u - from] = (uint32_t)cl_layout_pos(lay, u);
        ref[u - from] = (uint32_t)u;
    }
    cl_mine_init(m, lay->users, pos, ref, to - from);
}

static void test_wake_at_next_due(void **st)
{
    (void)st;
    const uint64_t users = 20000, from = 5000, to = 10000; /* one process of four */
    const int64_t t0 = 1795000000, T = t0 + 25, end = t0 + 60;
    cl_layout lay;
    cl_layout_init(&lay, users, 2000, 0);
    cl_plan pa, pb, after;
    cl_plan_init(&pa, 2000);
    pb = pa;
    after = pa;
    cl_plan_change(&after, T, 700); /* the rate the change brings, from second T */
    cl_mine a, b;
    mine_of(&lay, from, to, &a);
    mine_of(&lay, from, to, &b);
    cl_mine_seek(&a, cl_plan_due(&pa, t0 * 1000000));
    cl_mine_seek(&b, cl_plan_due(&pb, t0 * 1000000));
    rec ra = {0}, rb = {0};
    /* a: the old 1 ms tick */
    for (int64_t now = t0 * 1000000 + 1000; now <= end * 1000000; now += 1000) {
        if (now / 1000000 >= T && pa.qps == 2000)
            cl_plan_change(&pa, T, 700);
        cl_mine_advance(&a, cl_plan_due(&pa, now), record, &ra);
    }
    /* b: wake exactly when the next of its positions (or the change) is due */
    size_t wakes = 0;
    for (;;) {
        uint64_t x = cl_mine_next(&b);
        assert_true(x != UINT64_MAX);
        assert_true(x >= b.upto);
        int64_t when = cl_plan_when(&pb, x);
        if (pb.qps == 2000 && when >= T * 1000000)
            when = T * 1000000; /* the worker also wakes for the change's second */
        if (when > end * 1000000)
            break;
        if (when / 1000000 >= T && pb.qps == 2000)
            cl_plan_change(&pb, T, 700);
        size_t before = rb.n;
        cl_mine_advance(&b, cl_plan_due(&pb, when), record, &rb);
        wakes++;
        /* every fired position was due exactly now, not a microsecond before */
        for (size_t i = before; i < rb.n; i++)
            assert_int_equal(cl_plan_when(&pb, rb.abs[i]), when);
        if (when != T * 1000000)
            assert_true(rb.n > before); /* never woken for nothing */
    }
    /* the tick stops at the boundary exactly: what it fires by `end` is what
     * the wakes fired up to `end` */
    cl_mine_advance(&b, cl_plan_due(&pb, end * 1000000), record, &rb);
    assert_int_equal(ra.n, rb.n);
    assert_memory_equal(ra.abs, rb.abs, ra.n * sizeof *ra.abs);
    assert_true(wakes <= rb.n + 1);
    /* a quarter of the users' 25 s at 2000/s and 35 s at 700/s, +-1 per second at the edges */
    assert_true(ra.n + 60 >= 25 * 500 + 35 * 175 && ra.n <= 25 * 500 + 35 * 175 + 60);
    assert_int_equal(after.qps, pb.qps);
    free(ra.abs);
    free(rb.abs);
    free(a.pos), free(a.ref), free(b.pos), free(b.ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_bijection),     cmocka_unit_test(test_seed_rule_when_divisible),
        cmocka_unit_test(test_spread_inside_second), cmocka_unit_test(test_rate_change_continuous),
        cmocka_unit_test(test_divisible),            cmocka_unit_test(test_not_divisible),
        cmocka_unit_test(test_wake_at_next_due),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
