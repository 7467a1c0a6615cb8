/* The load fleet's pure parts (issue 16): a histogram shipped as text and
 * merged is exactly the histogram of all the values (never averaged
 * percentiles); malformed text is refused; the slices of a task cover every
 * uid exactly once; a run that joins late builds the task's past rate
 * changes into its schedule at their own seconds (in step with the agents
 * that saw them happen) and queues the ones to come. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "client.h"
#include "fleet.h"
#include "hist.h"

static char text[HB_HIST_TEXT_MAX];

static void test_hist_text_roundtrip_and_merge(void **state)
{
    (void)state;
    static hb_hist a, b, all, da, db, merged;
    hb_hist_reset(&a);
    hb_hist_reset(&b);
    hb_hist_reset(&all);
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t v = (x % 4 == 0) ? x % 300 : (x >> 20) % (1ULL << (x % 41)); /* exact, mid, clamped */
        hb_hist_record(i % 3 ? &a : &b, v);
        hb_hist_record(&all, v);
    }
    size_t n = hb_hist_encode(&a, text, sizeof text);
    assert_true(n < sizeof text);
    assert_int_equal(hb_hist_decode(&da, text), 0);
    assert_memory_equal(&da, &a, sizeof a);
    assert_int_equal(hb_hist_decode(&db, (hb_hist_encode(&b, text, sizeof text), text)), 0);
    hb_hist_reset(&merged);
    hb_hist_merge(&merged, &da);
    hb_hist_merge(&merged, &db);
    assert_memory_equal(&merged, &all, sizeof all);
    assert_int_equal(hb_hist_percentile(&merged, 99), hb_hist_percentile(&all, 99));
    /* cut short: says how much it needs, and the cut text is refused */
    char small[40];
    assert_int_equal(hb_hist_encode(&a, small, sizeof small), n);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_int_equal(hb_hist_decode(&da, small), -1);
    /* empty */
    hb_hist_reset(&a);
    hb_hist_encode(&a, text, sizeof text);
    assert_string_equal(text, "hist1 0 0 0 0");
    assert_int_equal(hb_hist_decode(&da, text), 0);
    assert_int_equal(da.count, 0);
}

static void test_hist_text_refused(void **state)
{
    (void)state;
    static hb_hist h;
    const char *bad[] = {
        "",
        "hist2 1 5 5 5 5:1",
        "hist1 2 10 5 5 5:1",      /* count is not the buckets' sum */
        "hist1 2 10 5 6 6:1 5:1",  /* buckets out of order */
        "hist1 1 5 5 5 5:0",       /* an empty bucket listed */
        "hist1 1 5 5 5 99999999:1", /* no such bucket */
        "hist1 1 5 5 5 5:1 junk",
        "hist1 1 5 5 5 5:1x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        h.count = 7;
        assert_int_equal(hb_hist_decode(&h, bad[i]), -1);
        assert_int_equal(h.count, 0);
    }
    assert_int_equal(hb_hist_decode(&h, "hist1 2 10 5 5 5:2"), 0);
    assert_int_equal(h.count, 2);
    assert_int_equal(h.b[5], 2);
}

static void test_slices_cover_every_uid_once(void **state)
{
    (void)state;
    const long long cases[][2] = {{1000000, 17}, {5000, 5}, {10, 10}, {7, 3}, {100, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        long long users = cases[c][0], k = cases[c][1], next = 0, lo = users, hi = 0;
        for (long long s = 0; s < k; s++) {
            long long from, to;
            hb_fleet_slice(users, k, s, &from, &to);
            assert_int_equal(from, next);
            assert_true(to > from);
            lo = to - from < lo ? to - from : lo;
            hi = to - from > hi ? to - from : hi;
            next = to;
        }
        assert_int_equal(next, users);
        assert_true(hi - lo <= 1); /* even */
    }
}

static void test_late_join_builds_past_changes(void **state)
{
    (void)state;
    static cl_client a, late;
    int64_t now = hb_now_us() / 1000000;
    for (int i = 0; i < 2; i++) {
        cl_client *c = i ? &late : &a;
        memset(c, 0, sizeof *c);
        c->cfg.users = 5000;
        c->cfg.qps = 1000;
        cl_client_init(c);
    }
    /* agent a saw two changes happen (applied at their seconds by main) */
    cl_plan_change(&a.plan, now - 20, 2000);
    cl_plan_change(&a.plan, now - 7, 1500);
    char plan[128], err[256];
    snprintf(plan, sizeof plan, "%lld:2000,%lld:1500,%lld:3000", (long long)(now - 20), (long long)(now - 7),
             (long long)(now + 30));
    assert_int_equal(cl_rate_history(&late, plan, err, sizeof err), 0);
    assert_int_equal(late.plan.t0, a.plan.t0);
    assert_int_equal(late.plan.c0, a.plan.c0);
    assert_int_equal(late.plan.qps, a.plan.qps);
    assert_int_equal(cl_plan_cursor(&late.plan, now), cl_plan_cursor(&a.plan, now));
    assert_int_equal(late.changes.n, 1); /* the change to come waits for its second */
    assert_int_equal(late.changes.c[0].at, now + 30);
    assert_int_equal(late.changes.c[0].qps, 3000);
    /* refused: not ascending, a rate above the users, malformed */
    const char *bad[] = {"100:10,100:20", "100:6000", "x", "100", "100:", "100:5,"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(cl_rate_history(&late, bad[i], err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_text_roundtrip_and_merge),
        cmocka_unit_test(test_hist_text_refused),
        cmocka_unit_test(test_slices_cover_every_uid_once),
        cmocka_unit_test(test_late_join_builds_past_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
