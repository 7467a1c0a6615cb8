/* test_members -- a client worker's member table (client/members.c): a list
 * from a node is taken only when well-formed within bounds; owners computed
 * from it equal the nodes' (lib/placement.h); a suspect is left out of the
 * owners; a list that still names a suspect ours has dropped is not taken. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include "members.h"

typedef struct list {
    Hb__Members m;
    uint64_t key[HB_PLACE_MAX + 1];
    uint32_t addr[HB_PLACE_MAX + 1], port[HB_PLACE_MAX + 1], band[HB_PLACE_MAX + 1];
} list;

/* Members named node-first .. node-(first+n-1), on 127.0.0.1:7000+i. */
static void make(list *l, int first, int n, uint64_t tag)
{
    memset(l, 0, sizeof *l);
    hb__members__init(&l->m);
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "node-%d", first + i);
        l->key[i] = hb_place_key(name);
        l->addr[i] = 0x7f000001;
        l->port[i] = 7000 + (uint32_t)(first + i);
        l->band[i] = (uint32_t)(first + i) + 1;
    }
    l->m.tag = tag;
    l->m.n_key = l->m.n_addr = l->m.n_port = l->m.n_band = (size_t)n;
    l->m.key = l->key;
    l->m.addr = l->addr;
    l->m.port = l->port;
    l->m.band = l->band;
}

static void malformed_lists_are_ignored(void **state)
{
    (void)state;
    cl_members ms;
    cl_members_init(&ms);
    list l;
    bool dropped;
    make(&l, 0, 3, 0); /* tag 0 */
    assert_int_equal(cl_members_take(&ms, &l.m, &dropped), CL_LIST_BAD);
    make(&l, 0, 3, 7);
    l.m.n_port = 2; /* arrays disagree */
    assert_int_equal(cl_members_take(&ms, &l.m, &dropped), CL_LIST_BAD);
    make(&l, 0, 3, 7);
    l.port[1] = 70000; /* not a port */
    assert_int_equal(cl_members_take(&ms, &l.m, &dropped), CL_LIST_BAD);
    make(&l, 0, HB_PLACE_MAX + 1, 7); /* too long */
    assert_int_equal(cl_members_take(&ms, &l.m, &dropped), CL_LIST_BAD);
    make(&l, 0, 3, 7);
    double w[3] = {1, -1, 1}; /* a weight not positive */
    l.m.n_weight = 3;
    l.m.weight = w;
    assert_int_equal(cl_members_take(&ms, &l.m, &dropped), CL_LIST_BAD);
    make(&l, 0, 3, 7);
    l.key[2] = l.key[0]; /* one member twice */
    assert_int_equal(cl_members_take(&ms, &l.m, &dropped), CL_LIST_BAD);
    assert_int_equal(ms.tag, 0);
    assert_int_equal(ms.nalive, 0);
    make(&l, 0, 3, 7);
    assert_int_equal(cl_members_take(&ms, &l.m, &dropped), CL_LIST_NEW);
    assert_int_equal(cl_members_take(&ms, &l.m, &dropped), CL_LIST_SAME);
    assert_int_equal(ms.nalive, 3);
}

static void owners_are_the_nodes_owners(void **state)
{
    (void)state;
    cl_members ms;
    cl_members_init(&ms);
    list l;
    bool dropped;
    make(&l, 0, 4, 9);
    assert_int_equal(cl_members_take(&ms, &l.m, &dropped), CL_LIST_NEW);
    hb_place_member p[4];
    for (int i = 0; i < 4; i++)
        p[i] = (hb_place_member){l.key[i], 1.0};
    for (uint32_t u = 0; u < 20000; u++) {
        int s = cl_members_owner(&ms, u);
        assert_true(s != CL_MEMBER_NONE);
        assert_true(ms.m[s].key == p[hb_place_owner(u, p, 4)].key);
        assert_int_equal(ms.m[s].port, 7000 + hb_place_owner(u, p, 4));
    }
    /* node-3 suspected: its uids go where the nodes will place them without it */
    int s3 = cl_members_slot_of(&ms, htonl(0x7f000001), 7003);
    assert_true(cl_members_suspect(&ms, s3, 1000));
    for (uint32_t u = 0; u < 20000; u++)
        assert_true(ms.m[cl_members_owner(&ms, u)].key == p[hb_place_owner(u, p, 3)].key);
    /* a list that drops it: taken (its users move); one that names it again
     * while it is suspected (a node that lags): not taken */
    list l3;
    make(&l3, 0, 3, 10);
    assert_int_equal(cl_members_take(&ms, &l3.m, &dropped), CL_LIST_NEW);
    assert_true(dropped);
    assert_int_equal(cl_members_take(&ms, &l.m, &dropped), CL_LIST_LAGS);
    assert_int_equal(ms.tag, 10);
    /* the suspicion over: the list naming it is taken, it owns again */
    assert_true(cl_members_expire(&ms, 1000 + CL_SUSPECT_US));
    assert_int_equal(cl_members_take(&ms, &l.m, &dropped), CL_LIST_NEW);
    assert_int_equal(ms.nalive, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(malformed_lists_are_ignored),
        cmocka_unit_test(owners_are_the_nodes_owners),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
