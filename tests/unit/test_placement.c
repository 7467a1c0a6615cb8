/* test_placement -- rendezvous placement (lib/placement.c): a join or a
 * leave moves about 1/N of the uids and only to or from the member that came
 * or went; weights set the shares; the owner does not depend on the order of
 * the member list; the runner-up is exactly where a uid goes when its owner
 * leaves (where hb-client --standby holds it). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>
#include "placement.h"

#define UIDS 100000

static void members(hb_place_member *m, int n)
{
    char name[32];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "node-%d", i);
        m[i] = (hb_place_member){hb_place_key(name), 1.0};
    }
}

static void join_moves_a_fifth_to_the_newcomer(void **state)
{
    hb_place_member m[5];
    members(m, 5);
    int moved = 0, per[5] = {0};
    for (uint32_t u = 0; u < UIDS; u++) {
        int before = hb_place_owner(u, m, 4), after = hb_place_owner(u, m, 5);
        assert_true(before >= 0 && before < 4);
        per[after]++;
        if (before != after) {
            moved++;
            assert_int_equal(after, 4); /* a moved uid goes to the new node only */
        }
    }
    double f = (double)moved / UIDS;
    printf("4 -> 5 nodes: %.4f of %d uids moved (ideal 0.2000); shares %d %d %d %d %d\n", f, UIDS, per[0], per[1],
           per[2], per[3], per[4]);
    assert_true(f >= 0.15 && f <= 0.25);
    for (int i = 0; i < 5; i++)
        assert_true(per[i] > UIDS / 5 * 0.9 && per[i] < UIDS / 5 * 1.1);
}

static void leave_moves_only_the_leavers_uids(void **state)
{
    hb_place_member m[5], rest[4];
    members(m, 5);
    /* node 2 leaves */
    for (int i = 0, k = 0; i < 5; i++)
        if (i != 2)
            rest[k++] = m[i];
    int moved = 0;
    for (uint32_t u = 0; u < UIDS; u++) {
        int before = hb_place_owner(u, m, 5), after = hb_place_owner(u, rest, 4);
        uint64_t kb = m[before].key, ka = rest[after].key;
        if (kb != ka) {
            moved++;
            assert_int_equal(before, 2); /* only the leaver's uids move */
        }
    }
    double f = (double)moved / UIDS;
    printf("5 -> 4 nodes: %.4f of %d uids moved (ideal 0.2000)\n", f, UIDS);
    assert_true(f >= 0.15 && f <= 0.25);
}

static void weights_set_the_shares(void **state)
{
    hb_place_member m[3];
    members(m, 3);
    m[0].weight = 1;
    m[1].weight = 2;
    m[2].weight = 1;
    int per[3] = {0};
    for (uint32_t u = 0; u < UIDS; u++)
        per[hb_place_owner(u, m, 3)]++;
    printf("weights 1:2:1: shares %d %d %d (ideal 25000 50000 25000)\n", per[0], per[1], per[2]);
    assert_true(fabs(per[1] / (double)UIDS - 0.5) < 0.02);
    assert_true(fabs(per[0] / (double)UIDS - 0.25) < 0.02);
    assert_true(fabs(per[2] / (double)UIDS - 0.25) < 0.02);
    /* weight 0 owns nothing; no member of positive weight: no owner */
    m[1].weight = 0;
    for (uint32_t u = 0; u < 1000; u++)
        assert_int_not_equal(hb_place_owner(u, m, 3), 1);
    m[0].weight = m[2].weight = 0;
    assert_int_equal(hb_place_owner(7, m, 3), -1);
    assert_int_equal(hb_place_owner(7, m, 0), -1);
}

static void order_does_not_matter(void **state)
{
    hb_place_member m[4], r[4];
    members(m, 4);
    for (int i = 0; i < 4; i++)
        r[i] = m[3 - i];
    for (uint32_t u = 0; u < 10000; u++)
        assert_true(m[hb_place_owner(u, m, 4)].key == r[hb_place_owner(u, r, 4)].key);
}

/* For every uid and every owner that leaves: the new owner is the runner-up
 * hb_place_top2 named before the leave, and it is never the owner itself. */
static void runner_up_inherits(void **state)
{
    (void)state;
    hb_place_member m[4], rest[3];
    members(m, 4);
    m[2].weight = 2; /* unequal weights too */
    int per[4] = {0};
    for (uint32_t u = 0; u < 20000; u++) {
        int second;
        int owner = hb_place_top2(u, m, 4, &second);
        assert_int_equal(owner, hb_place_owner(u, m, 4));
        assert_true(second >= 0 && second != owner);
        per[second]++;
        size_t k = 0;
        for (int i = 0; i < 4; i++)
            if (i != owner)
                rest[k++] = m[i];
        int heir = hb_place_owner(u, rest, 3);
        assert_true(rest[heir].key == m[second].key);
    }
    printf("runner-ups over 4 nodes (weights 1 1 2 1): %d %d %d %d\n", per[0], per[1], per[2], per[3]);
    int second;
    assert_int_equal(hb_place_top2(7, m, 1, &second), 0); /* one member: no runner-up */
    assert_int_equal(second, -1);
    assert_int_equal(hb_place_top2(7, m, 0, &second), -1);
    assert_int_equal(second, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(join_moves_a_fifth_to_the_newcomer),
        cmocka_unit_test(leave_moves_only_the_leavers_uids),
        cmocka_unit_test(weights_set_the_shares),
        cmocka_unit_test(order_does_not_matter),
        cmocka_unit_test(runner_up_inherits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
