/* Rate changes (issue 13.2): the queue of changes waiting for their second
 * keeps them sorted, one per second, refuses beyond its size without losing
 * any, and applies each at its own second in order -- so a worker that copies
 * main's plan and queue after a change's second but before main applied it
 * still switches at that second, and ends with the plan main ends with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "schedule.h"

#define T 1795000100LL
#define S(t) ((int64_t)(t) * 1000000)

static void test_sorted_one_per_second(void **state)
{
    (void)state;
    cl_changes q = {0};
    assert_int_equal(cl_changes_add(&q, T + 4, 1000), 0);
    assert_int_equal(cl_changes_add(&q, T, 2000), 0);
    assert_int_equal(cl_changes_add(&q, T + 2, 3000), 0);
    assert_int_equal(cl_changes_add(&q, T, 2500), 0); /* same second: replaced */
    assert_int_equal(q.n, 3);
    assert_int_equal(q.c[0].at, T);
    assert_int_equal(q.c[0].qps, 2500);
    assert_int_equal(q.c[1].at, T + 2);
    assert_int_equal(q.c[2].at, T + 4);
}

static void test_full_refuses_and_keeps(void **state)
{
    (void)state;
    cl_changes q = {0};
    for (int i = 0; i < CL_CHANGES_MAX; i++)
        assert_int_equal(cl_changes_add(&q, T + 2 * i, 100 + (uint64_t)i), 0);
    cl_changes before = q;
    assert_int_equal(cl_changes_add(&q, T + 1, 999), -1); /* new second: no room */
    assert_memory_equal(&q, &before, sizeof q);
    assert_int_equal(cl_changes_add(&q, T + 2, 777), 0); /* a queued second: still replaceable */
    assert_int_equal(q.c[1].qps, 777);
}

/* Applying a queue step by step, at any moments, gives the plan of applying
 * each change directly at its second. */
static void test_apply_at_its_second(void **state)
{
    (void)state;
    cl_plan direct, p;
    cl_plan_init(&direct, 1000);
    p = direct;
    cl_changes q = {0};
    cl_changes_add(&q, T, 2000);
    cl_changes_add(&q, T + 4, 1000);
    assert_int_equal(cl_changes_apply(&q, &p, S(T) - 1), 0);
    assert_int_equal(p.qps, 1000);
    assert_int_equal(cl_changes_apply(&q, &p, S(T) + 200000), 1);
    assert_int_equal(q.n, 1);
    assert_int_equal(p.qps, 2000);
    cl_plan_change(&direct, T, 2000);
    assert_int_equal(cl_plan_cursor(&p, T + 3), cl_plan_cursor(&direct, T + 3));
    /* both due at once (a late tick): applied in order, each at its second */
    cl_changes_add(&q, T + 6, 3000);
    assert_int_equal(cl_changes_apply(&q, &p, S(T + 9)), 2);
    assert_int_equal(q.n, 0);
    cl_plan_change(&direct, T + 4, 1000);
    cl_plan_change(&direct, T + 6, 3000);
    assert_int_equal(p.t0, direct.t0);
    assert_int_equal(p.c0, direct.c0);
    assert_int_equal(p.qps, 3000);
}

/* The race of issue 13.2: change A (T) is due, main has not ticked, change B
 * (T+4) arrives; a worker that applied A copies main's plan and queue. */
static void test_worker_copy_mid_second(void **state)
{
    (void)state;
    cl_plan main_plan, worker_plan, base;
    cl_changes main_q = {0}, worker_q;
    cl_plan_init(&main_plan, 1000);
    base = main_plan; /* 1,000/s throughout */
    cl_changes_add(&main_q, T, 2000);
    worker_plan = main_plan, worker_q = main_q; /* the worker copies */
    cl_changes_apply(&worker_q, &worker_plan, S(T) + 1000); /* and switches at T */
    cl_changes_add(&main_q, T + 4, 1000);                   /* /qps at T+0.2 */
    worker_plan = main_plan, worker_q = main_q;             /* version moved: copy again */
    cl_changes_apply(&worker_q, &worker_plan, S(T) + 200000);
    assert_int_equal(worker_plan.qps, 2000);
    cl_changes_apply(&main_q, &main_plan, S(T) + 500000); /* main's tick, late */
    assert_int_equal(main_plan.qps, 2000);
    /* from here on worker and main agree every second, and both ran
     * 2,000/s through T..T+3 and 1,000/s from T+4 */
    uint64_t cT = cl_plan_cursor(&base, T);
    for (int64_t t = T - 1; t <= T + 6; t++) {
        cl_changes_apply(&worker_q, &worker_plan, S(t));
        cl_changes_apply(&main_q, &main_plan, S(t));
        assert_int_equal(cl_plan_cursor(&worker_plan, t + 1), cl_plan_cursor(&main_plan, t + 1));
    }
    assert_int_equal(cl_plan_cursor(&worker_plan, T + 4), cT + 4 * 2000);
    assert_int_equal(cl_plan_cursor(&worker_plan, T + 7), cT + 4 * 2000 + 3 * 1000);
    assert_int_equal(worker_q.n, 0);
    assert_int_equal(main_q.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sorted_one_per_second),
        cmocka_unit_test(test_full_refuses_and_keeps),
        cmocka_unit_test(test_apply_at_its_second),
        cmocka_unit_test(test_worker_copy_mid_second),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
