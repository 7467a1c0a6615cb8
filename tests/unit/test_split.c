/* Split: over 100,000 random packets, every share >= 1 cent, the shares sum
 * exactly to the amount, recipients are distinct; and the split is fair
 * (every position gets about the same on average). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "registry.h"
#include "util.h"

static void test_split_invariants(void **st)
{
    uint64_t rng = 99;
    double mean[HB_SPLIT_MAX] = {0};
    for (int k = 0; k < 100000; k++) {
        unsigned n = 1 + (unsigned)(k % HB_SPLIT_MAX);
        uint32_t amount = n + hb_rand_below(&rng, 100000);
        uint32_t s[HB_SPLIT_MAX];
        assert_int_equal(sv_split(&rng, amount, n, s), 0);
        uint64_t sum = 0;
        for (unsigned i = 0; i < n; i++) {
            assert_true(s[i] >= 1);
            sum += s[i];
        }
        assert_int_equal(sum, amount);
        if (n == 3)
            for (unsigned i = 0; i < 3; i++)
                mean[i] += (double)s[i] / amount;
    }
    /* the seed's split of 3: each position averages a third */
    for (unsigned i = 0; i < 3; i++) {
        double m = mean[i] / (100000.0 / HB_SPLIT_MAX);
        assert_true(m > 0.32 && m < 0.347);
    }
}

static void test_split_edges(void **st)
{
    uint64_t rng = 5;
    uint32_t s[HB_SPLIT_MAX];
    assert_int_equal(sv_split(&rng, 3, 3, s), 0); /* the only split: 1+1+1 */
    assert_int_equal(s[0] + s[1] + s[2], 3);
    assert_int_equal(s[0], 1);
    assert_int_equal(sv_split(&rng, 2, 3, s), -1); /* cannot give 3 people >= 1 cent */
    assert_int_equal(sv_split(&rng, 100, 0, s), -1);
    assert_int_equal(sv_split(&rng, 100, HB_SPLIT_MAX + 1, s), -1);
    assert_int_equal(sv_split(&rng, 7, 1, s), 0);
    assert_int_equal(s[0], 7);
}

/* The producer picks distinct recipients: checked through a real producer
 * with a tiny user population, where collisions are frequent. */
#include "producer.h"
static uint64_t distinct_bad, made;
static void created(void *c, const Hb__Record *r) { (void)c; (void)r; }
static bool deal(void *c, int s, const sv_packet *p) { (void)c; (void)s; (void)p; return true; }
static void sent(void *c, uint64_t id, const sv_sendpkt *p)
{
    (void)c;
    (void)id;
    made++;
    for (int i = 0; i < p->n; i++)
        for (int j = 0; j < i; j++)
            distinct_bad += p->uid[i] == p->uid[j];
}
static uint32_t pick(void *c, uint64_t *rng) { (void)c; return hb_rand_below(rng, 4); }

static void test_distinct_recipients(void **st)
{
    sv_producer p;
    sv_producer_ops o = {.created = created, .deal = deal, .sent = sent, .pick = pick};
    sv_producer_init(&p, &o, 1, 11);
    sv_flow_set(&p.send, 1000, 100000, 0, 3, 10000);
    p.split = 3;
    sv_producer_start(&p, 0);
    sv_producer_step(&p, 200 * 1000000LL);
    assert_int_equal(made, 100000);
    assert_int_equal(distinct_bad, 0);
    sv_producer_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_invariants),
        cmocka_unit_test(test_split_edges),
        cmocka_unit_test(test_distinct_recipients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
