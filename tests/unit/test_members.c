/* test_members -- a client worker's member table (client/members.c): a list
 * from a node is taken only when well-formed within bounds; owners computed
 * from it equal the nodes' (lib/placement.h); a suspect is left out of the
 * owners; a list that still names a suspect ours has dropped is not taken.
 * And the frame bound on what a node sends (HB_FRAME_DOWN_MAX, proto/frame.h):
 * the widest list a cluster can have (HB_PLACE_MAX members, every field at
 * its widest) in the longest Redirect or LoginOk packs within it (the sizes
 * printed are the arithmetic the header states), and such a frame passes
 * the client's scanner, unpacks in an arena of the client's size and is
 * taken; the 512-byte bound on what a client sends would refuse it. */
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

/* l: n members with every field at its widest -- keys and addresses are
 * fixed-width anyway; weights not all 1, so they travel (8 bytes each);
 * ports 65535 (3-byte varints); bands `band`. */
static void widest(list *l, double *w, int n, uint32_t band)
{
    make(l, 0, n, UINT64_MAX);
    for (int i = 0; i < n; i++) {
        l->addr[i] = UINT32_MAX - (uint32_t)i;
        l->port[i] = 65535;
        l->band[i] = band;
        w[i] = 0.5 + i;
    }
    l->m.n_weight = (size_t)n;
    l->m.weight = w;
}

/* The longest Redirect a node sends: the longest host a member can register
 * (63 bytes: sv_member.host, "%63s" in server/cluster.c), widest numbers. */
static size_t pack_redirect(const Hb__Members *m, uint8_t *buf, size_t cap)
{
    char host[64];
    memset(host, '9', 63);
    host[63] = 0;
    Hb__Redirect r = HB__REDIRECT__INIT;
    r.host = host;
    r.port = 65535;
    r.uid = UINT32_MAX;
    r.members = (Hb__Members *)m;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_REDIRECT;
    f.redirect = &r;
    return hb_frame_pack(&f, buf, cap);
}

static size_t pack_login_ok(const Hb__Members *m, uint8_t *buf, size_t cap)
{
    Hb__LoginOk ok = HB__LOGIN_OK__INIT;
    ok.uid = ok.set = ok.node = UINT32_MAX;
    ok.server_time_us = INT64_MIN; /* a negative int64: 10 bytes */
    ok.members = (Hb__Members *)m;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_LOGIN_OK;
    f.login_ok = &ok;
    return hb_frame_pack(&f, buf, cap);
}

static void widest_list_fits_the_down_bound(void **state)
{
    (void)state;
    static list l;
    double w[HB_PLACE_MAX];
    uint8_t buf[HB_FRAME_DOWN_WIRE_MAX];
    /* bands as the nodes send them (--node-index + 1 <= HB_NODES_MAX = 99:
     * one byte), then as wide as a uint32 gets (5 bytes: no description in
     * Redis can make a node send a longer list) */
    const uint32_t bands[] = {99, UINT32_MAX};
    for (size_t b = 0; b < sizeof bands / sizeof bands[0]; b++) {
        widest(&l, w, HB_PLACE_MAX, bands[b]);
        size_t r = pack_redirect(&l.m, buf, sizeof buf), o = pack_login_ok(&l.m, buf, sizeof buf);
        printf("%d members, bands %u: Members %zu bytes; Redirect %zu, LoginOk %zu bytes on the wire "
               "(prefix included; bound %d + %d)\n",
               HB_PLACE_MAX, bands[b], protobuf_c_message_get_packed_size(&l.m.base), r, o, HB_FRAME_DOWN_MAX,
               HB_FRAME_PREFIX_MAX);
        assert_true(r > 0 && o > 0); /* hb_frame_pack: 0 = does not fit */
        assert_true(r > HB_FRAME_WIRE_MAX && o > HB_FRAME_WIRE_MAX); /* why the bound down is not 512 */
    }
}

static void a_client_takes_the_widest_list(void **state)
{
    (void)state;
    static list l;
    static uint8_t mem[HB_FRAME_DOWN_ARENA]; /* client/worker.h: cl_worker.arena_mem */
    double w[HB_PLACE_MAX + 1];
    uint8_t buf[HB_FRAME_DOWN_WIRE_MAX];
    widest(&l, w, HB_PLACE_MAX, 65535); /* the widest band a client takes */
    const char *what[] = {"Redirect", "LoginOk"};
    for (int k = 0; k < 2; k++) {
        size_t n = k ? pack_login_ok(&l.m, buf, sizeof buf) : pack_redirect(&l.m, buf, sizeof buf);
        assert_true(n > 0);
        size_t prefix, body;
        /* the 512-byte bound (what a node accepts) refuses it; the client's takes it */
        assert_int_equal(hb_frame_scan(buf, n, HB_FRAME_MAX, &prefix, &body), HB_SCAN_TOO_LARGE);
        assert_int_equal(hb_frame_scan(buf, n, HB_FRAME_DOWN_MAX, &prefix, &body), HB_SCAN_FRAME);
        assert_int_equal(prefix + body, n);
        hb_arena a;
        hb_arena_init(&a, mem, sizeof mem);
        Hb__Frame *f = hb_frame_unpack(&a, buf + prefix, body);
        assert_non_null(f);
        assert_int_equal(a.failed, 0);
        printf("%s with %d members: unpacked in %zu of the client's %zu arena bytes\n", what[k], HB_PLACE_MAX, a.used,
               sizeof mem);
        const Hb__Members *m = k ? f->login_ok->members : f->redirect->members;
        assert_non_null(m);
        cl_members ms;
        cl_members_init(&ms);
        bool dropped;
        assert_int_equal(cl_members_take(&ms, m, &dropped), CL_LIST_NEW);
        assert_int_equal(ms.nalive, HB_PLACE_MAX);
        assert_true(ms.tag == UINT64_MAX);
    }
    /* a 65th member: the list is not taken, however it came */
    widest(&l, w, HB_PLACE_MAX + 1, 65535);
    cl_members ms;
    cl_members_init(&ms);
    bool dropped;
    assert_int_equal(cl_members_take(&ms, &l.m, &dropped), CL_LIST_BAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(malformed_lists_are_ignored),
        cmocka_unit_test(owners_are_the_nodes_owners),
        cmocka_unit_test(widest_list_fits_the_down_bound),
        cmocka_unit_test(a_client_takes_the_widest_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
