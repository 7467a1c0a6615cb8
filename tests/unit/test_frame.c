/* Framing: the delimited decoder against partial, coalesced, oversized,
 * empty and unknown frames; arena unpacking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "frame.h"

static size_t pack_shake(uint8_t *buf, size_t cap, uint32_t seq)
{
    Hb__Shake sh = HB__SHAKE__INIT;
    sh.seq = seq;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_SHAKE;
    f.shake = &sh;
    return hb_frame_pack(&f, buf, cap);
}

typedef struct seen {
    uint32_t seqs[1000];
    int n;
    hb_arena arena;
    uint8_t mem[4096];
} seen;

static int on_frame(void *ctx, const uint8_t *body, size_t len)
{
    seen *s = ctx;
    Hb__Frame *f = hb_frame_unpack(&s->arena, body, len);
    assert_non_null(f);
    assert_int_equal(f->body_case, HB__FRAME__BODY_SHAKE);
    s->seqs[s->n++] = f->shake->seq;
    return 0;
}

static void test_byte_by_byte(void **st)
{
    uint8_t wire[4096];
    size_t n = 0;
    for (uint32_t i = 1; i <= 50; i++)
        n += pack_shake(wire + n, sizeof wire - n, i * 1000003u);
    static seen s;
    memset(&s, 0, sizeof s);
    hb_arena_init(&s.arena, s.mem, sizeof s.mem);
    static hb_stream str;
    hb_stream_init(&str, HB_FRAME_MAX);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(hb_stream_feed(&str, wire + i, 1, on_frame, &s), 0);
    assert_int_equal(s.n, 50);
    for (int i = 0; i < 50; i++)
        assert_int_equal(s.seqs[i], (uint32_t)(i + 1) * 1000003u);
    assert_int_equal(str.len, 0);
}

static void test_many_in_one_read(void **st)
{
    uint8_t wire[16384];
    size_t n = 0;
    for (uint32_t i = 1; i <= 500; i++)
        n += pack_shake(wire + n, sizeof wire - n, i);
    static seen s;
    memset(&s, 0, sizeof s);
    hb_arena_init(&s.arena, s.mem, sizeof s.mem);
    static hb_stream str;
    hb_stream_init(&str, HB_FRAME_MAX);
    /* all at once, then in uneven chunks */
    assert_int_equal(hb_stream_feed(&str, wire, n, on_frame, &s), 0);
    assert_int_equal(s.n, 500);
    s.n = 0;
    for (size_t off = 0; off < n;) {
        size_t chunk = 1 + (off * 7919) % 37;
        if (chunk > n - off)
            chunk = n - off;
        assert_int_equal(hb_stream_feed(&str, wire + off, chunk, on_frame, &s), 0);
        off += chunk;
    }
    assert_int_equal(s.n, 500);
    for (int i = 0; i < 500; i++)
        assert_int_equal(s.seqs[i], (uint32_t)i + 1);
}

static void test_scan_limits(void **st)
{
    size_t pre, body;
    /* 513 = 0x81 0x04: one over the limit */
    uint8_t over[] = {0x81, 0x04};
    assert_int_equal(hb_frame_scan(over, 2, HB_FRAME_MAX, &pre, &body), HB_SCAN_TOO_LARGE);
    /* known too large before the varint even ends: 0xff 0xff ... */
    uint8_t early[] = {0xff, 0xff};
    assert_int_equal(hb_frame_scan(early, 2, HB_FRAME_MAX, &pre, &body), HB_SCAN_TOO_LARGE);
    /* an over-long varint of zeros with continuation bits */
    uint8_t longv[] = {0x80, 0x80, 0x80, 0x80};
    assert_int_equal(hb_frame_scan(longv, 4, HB_FRAME_MAX, &pre, &body), HB_SCAN_TOO_LARGE);
    /* zero-length frame */
    uint8_t zero[] = {0x00};
    assert_int_equal(hb_frame_scan(zero, 1, HB_FRAME_MAX, &pre, &body), HB_SCAN_EMPTY);
    /* exactly the limit is fine, and needs all its bytes */
    uint8_t at[HB_FRAME_MAX + 2] = {0x80, 0x04};
    assert_int_equal(hb_frame_scan(at, 2, HB_FRAME_MAX, &pre, &body), HB_SCAN_MORE);
    assert_int_equal(pre, 2);
    assert_int_equal(body, HB_FRAME_MAX);
    assert_int_equal(hb_frame_scan(at, sizeof at, HB_FRAME_MAX, &pre, &body), HB_SCAN_FRAME);
    /* incomplete length */
    uint8_t part[] = {0x80};
    assert_int_equal(hb_frame_scan(part, 1, HB_FRAME_MAX, &pre, &body), HB_SCAN_MORE);
    assert_int_equal(pre, 0);
    assert_int_equal(hb_frame_scan(part, 0, HB_FRAME_MAX, &pre, &body), HB_SCAN_MORE);

    /* the stream reports the same errors */
    static hb_stream str;
    static seen s;
    hb_arena_init(&s.arena, s.mem, sizeof s.mem);
    hb_stream_init(&str, HB_FRAME_MAX);
    assert_int_equal(hb_stream_feed(&str, over, 2, on_frame, &s), HB_SCAN_TOO_LARGE);
    hb_stream_init(&str, HB_FRAME_MAX);
    assert_int_equal(hb_stream_feed(&str, zero, 1, on_frame, &s), HB_SCAN_EMPTY);
}

static void test_unknown_and_bad(void **st)
{
    static uint8_t mem[4096];
    hb_arena a;
    hb_arena_init(&a, mem, sizeof mem);
    /* field 99, varint: a Frame with no body we know */
    uint8_t unknown[] = {0x98, 0x06, 0x01};
    Hb__Frame *f = hb_frame_unpack(&a, unknown, sizeof unknown);
    assert_non_null(f);
    assert_int_equal(f->body_case, HB__FRAME__BODY__NOT_SET);
    /* truncated: shake (field 3, length 5) with only 2 bytes */
    uint8_t trunc[] = {0x1a, 0x05, 0x08, 0x01};
    assert_null(hb_frame_unpack(&a, trunc, sizeof trunc));
    /* wrong wire type for a message field */
    uint8_t wrong[] = {0x18, 0x05};
    assert_null(hb_frame_unpack(&a, wrong, sizeof wrong));
}

static void test_arena_bounded(void **st)
{
    /* A report with many histogram buckets needs more than a tiny arena: the
     * unpack must fail cleanly, not allocate elsewhere. */
    uint32_t idx[200];
    uint64_t cnt[200];
    for (int i = 0; i < 200; i++)
        idx[i] = (uint32_t)i, cnt[i] = 1;
    Hb__Report r = HB__REPORT__INIT;
    r.n_lat_index = r.n_lat_count = 200;
    r.lat_index = idx;
    r.lat_count = cnt;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_REPORT;
    f.report = &r;
    static uint8_t buf[HB_REPORT_MAX];
    size_t n = hb_frame_pack(&f, buf, sizeof buf);
    assert_true(n > 0);
    size_t pre, body;
    assert_int_equal(hb_frame_scan(buf, n, HB_REPORT_MAX, &pre, &body), HB_SCAN_FRAME);
    static uint8_t small[256], big[16384];
    hb_arena a;
    hb_arena_init(&a, small, sizeof small);
    assert_null(hb_frame_unpack(&a, buf + pre, body));
    assert_true(a.failed > 0);
    hb_arena_init(&a, big, sizeof big);
    Hb__Frame *g = hb_frame_unpack(&a, buf + pre, body);
    assert_non_null(g);
    assert_int_equal(g->report->n_lat_index, 200);
    assert_int_equal(g->report->lat_index[199], 199);
}

static void test_pack_too_small(void **st)
{
    uint8_t tiny[2];
    assert_int_equal(pack_shake(tiny, sizeof tiny, 123456), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_by_byte),   cmocka_unit_test(test_many_in_one_read),
        cmocka_unit_test(test_scan_limits),    cmocka_unit_test(test_unknown_and_bad),
        cmocka_unit_test(test_arena_bounded),  cmocka_unit_test(test_pack_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
