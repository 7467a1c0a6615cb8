/* Histogram: percentiles of known data within the stated precision (1/128
 * relative), merging equals recording into one, extremes exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "hist.h"
#include "util.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The exact percentile by the same rank rule: the value at rank ceil(p*n). */
static uint64_t exact(const uint64_t *sorted, size_t n, double p)
{
    size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999999);
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static void check(uint64_t *v, size_t n)
{
    hb_hist *h = calloc(1, sizeof *h);
    for (size_t i = 0; i < n; i++)
        hb_hist_record(h, v[i]);
    qsort(v, n, sizeof *v, cmp_u64);
    double ps[] = {1, 10, 50, 90, 99, 99.9, 99.99, 100};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        uint64_t e = exact(v, n, ps[i]), got = hb_hist_percentile(h, ps[i]);
        /* reported as the top of the value's bucket: never below the exact
         * value, at most 1/128 above it */
        assert_true(got >= e);
        assert_true((double)(got - e) <= (double)e / 128.0 + 1e-9);
    }
    assert_int_equal(h->min, v[0]);
    assert_int_equal(h->max, v[n - 1]);
    assert_int_equal(h->count, n);
    free(h);
}

static void test_uniform(void **st)
{
    size_t n = 200000;
    uint64_t *v = malloc(n * sizeof *v), rng = 1;
    for (size_t i = 0; i < n; i++)
        v[i] = hb_rand64(&rng) % 10000000; /* 0 .. 10 s */
    check(v, n);
    free(v);
}

static void test_exponential_like(void **st)
{
    size_t n = 100000;
    uint64_t *v = malloc(n * sizeof *v), rng = 2;
    for (size_t i = 0; i < n; i++) {
        /* heavy tail: 2^(random 0..30) scaled */
        unsigned e = (unsigned)(hb_rand64(&rng) % 31);
        v[i] = ((uint64_t)1 << e) + hb_rand64(&rng) % ((uint64_t)1 << e);
    }
    check(v, n);
    free(v);
}

static void test_small_exact(void **st)
{
    /* below 256 us every value has its own bucket: exact */
    hb_hist *h = calloc(1, sizeof *h);
    for (uint64_t i = 1; i <= 100; i++)
        hb_hist_record(h, i);
    assert_int_equal(hb_hist_percentile(h, 50), 50);
    assert_int_equal(hb_hist_percentile(h, 99), 99);
    assert_int_equal(hb_hist_percentile(h, 100), 100);
    assert_int_equal(hb_hist_percentile(h, 0.5), 1);
    free(h);
}

static void test_bucket_edges(void **st)
{
    for (uint64_t v = 0; v < ((uint64_t)1 << 36); v = v * 3 / 2 + 1) {
        unsigned i = hb_hist_index(v);
        assert_true(i < HB_HIST_BUCKETS);
        assert_true(hb_hist_low(i) <= v);
        assert_true(v <= hb_hist_high(i));
        if (i + 1 < HB_HIST_BUCKETS)
            assert_int_equal(hb_hist_low(i + 1), hb_hist_high(i) + 1);
    }
    /* huge values are clamped, not lost */
    hb_hist *h = calloc(1, sizeof *h);
    hb_hist_record(h, UINT64_MAX / 2);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->b[HB_HIST_BUCKETS - 1], 1);
    free(h);
}

static void test_merge_equals_one(void **st)
{
    hb_hist *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *one = calloc(1, sizeof *one);
    uint64_t rng = 3;
    for (int i = 0; i < 50000; i++) {
        uint64_t v = hb_rand64(&rng) % 5000000;
        hb_hist_record(one, v);
        hb_hist_record(i % 3 ? a : b, v);
    }
    hb_hist_merge(a, b);
    assert_int_equal(a->count, one->count);
    assert_int_equal(a->sum, one->sum);
    assert_int_equal(a->min, one->min);
    assert_int_equal(a->max, one->max);
    assert_memory_equal(a->b, one->b, sizeof a->b);
    assert_int_equal(hb_hist_percentile(a, 99.9), hb_hist_percentile(one, 99.9));
    free(a);
    free(b);
    free(one);
}

static void test_count_le(void **st)
{
    hb_hist *h = calloc(1, sizeof *h);
    for (uint64_t v = 0; v < 100000; v += 10)
        hb_hist_record(h, v);
    /* at bucket tops the count is exact */
    for (unsigned i = 0; i < HB_HIST_BUCKETS && hb_hist_high(i) < 100000; i += 37) {
        uint64_t top = hb_hist_high(i), want = top / 10 + 1;
        assert_int_equal(hb_hist_count_le(h, top), want);
    }
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uniform),    cmocka_unit_test(test_exponential_like), cmocka_unit_test(test_small_exact),
        cmocka_unit_test(test_bucket_edges), cmocka_unit_test(test_merge_equals_one), cmocka_unit_test(test_count_le),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
