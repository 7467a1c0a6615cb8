/* The formats in proto/ that cross a process boundary and were once written
 * by hand in several places: ledger lines, the stats file, error and message
 * names taken from the schema's descriptors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "frame.h"
#include "ledgerfile.h"
#include "money.h"
#include "statsfile.h"

static void test_ledger_roundtrip(void **st)
{
    const hb_lline in[] = {
        {.type = HB_LL_WIN, .packet_id = 42, .uid = 7, .amount = 1999, .seq = 4000000000u},
        {.type = HB_LL_SHARE, .packet_id = hb_send_id(3), .uid = 4294967295u, .amount = 1},
        {.type = HB_LL_UNANSWERED_SHAKE, .uid = 9, .seq = 12},
        {.type = HB_LL_UNANSWERED_OPEN, .packet_id = hb_send_id(0), .uid = 0},
    };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        char line[128];
        size_t n = hb_lline_format(line, sizeof line, &in[i]);
        assert_true(n > 0 && line[n - 1] == '\n');
        hb_lline out;
        assert_int_equal(hb_lline_parse(line, &out), 1);
        assert_int_equal(out.type, in[i].type);
        assert_true(out.packet_id == in[i].packet_id);
        assert_int_equal(out.uid, in[i].uid);
        assert_int_equal(out.amount, in[i].amount);
        assert_int_equal(out.seq, in[i].seq);
    }
}

static void test_ledger_strict(void **st)
{
    hb_lline l;
    assert_int_equal(hb_lline_parse("# header\n", &l), 0);
    assert_int_equal(hb_lline_parse("\n", &l), 0);
    const char *bad[] = {
        "W 1 2 3\n",            /* seq missing */
        "W 1 2 3 4 5\n",        /* one too many */
        "W 1 2 4294967296 1\n", /* amount over 32 bits */
        "W 1 -2 3 4\n",         /* negative */
        "W 1  2 3 4\n",         /* two spaces */
        "S 18446744073709551616 1 1\n", /* id over 64 bits */
        "S 1 2 3x\n",
        "X 1 2 3\n",
        "Q 1\n",
        "O 1 2 3\n",
        "W1 2 3 4\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(hb_lline_parse(bad[i], &l), -1);
}

static void test_statsfile(void **st)
{
    char path[64], mem[256], err[256];
    snprintf(path, sizeof path, "/tmp/hb-test-stats-%d", getpid());
    hb_statsbuf b;
    hb_sb_init(&b, mem, sizeof mem);
    hb_sb_comment(&b, "test %d", 1);
    hb_sb_u64(&b, "wins", 18446744073709551615ull);
    hb_sb_i64(&b, "offset", -5);
    hb_sb_f(&b, "uptime_s", 1.5);
    assert_int_equal(hb_sb_write(&b, path), 0);
    hb_statsfile f;
    assert_int_equal(hb_statsfile_load(&f, path, err, sizeof err), 0);
    uint64_t v = 0;
    assert_int_equal(hb_statsfile_u64(&f, "wins", &v), 1);
    assert_true(v == 18446744073709551615ull);
    assert_int_equal(hb_statsfile_u64(&f, "missing", &v), 0); /* missing is not 0 */
    assert_int_equal(hb_statsfile_u64(&f, "offset", &v), -1); /* not a whole number */
    assert_string_equal(hb_statsfile_get(&f, "uptime_s"), "1.500");
    assert_null(hb_statsfile_get(&f, "test"));                 /* comments are not keys */
    hb_statsfile_free(&f);
    unlink(path);
    assert_int_equal(hb_statsfile_load(&f, path, err, sizeof err), -1);
    /* a buffer too small is never written half */
    char tiny[8];
    hb_sb_init(&b, tiny, sizeof tiny);
    hb_sb_u64(&b, "a_long_name", 1);
    assert_int_equal(hb_sb_write(&b, path), -1);
    assert_int_equal(access(path, F_OK), -1);
}

static void test_names_from_schema(void **st)
{
    /* HB_ERR_N must cover every ErrorCode of hongbao.proto. */
    assert_int_equal(hb__error_code__descriptor.n_values, HB_ERR_N);
    assert_string_equal(hb_error_name(HB__ERROR_CODE__ERR_FRAME_TOO_LARGE), "frame_too_large");
    assert_string_equal(hb_error_name(HB__ERROR_CODE__ERR_OUTPUT_OVERFLOW), "output_overflow");
    assert_string_equal(hb_error_name(HB_ERR_N), "unknown");
    assert_string_equal(hb_body_name(HB__FRAME__BODY_SHAKE_REPLY), "shake_reply");
    assert_string_equal(hb_body_name(HB__FRAME__BODY__NOT_SET), "none");
}

static void test_send_ids(void **st)
{
    assert_false(hb_is_send_id(1));
    assert_false(hb_is_send_id(HB_SEND_ID_BASE));
    assert_true(hb_is_send_id(hb_send_id(0)));
    assert_true(hb_send_id(0) == HB_SEND_ID_BASE + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ledger_roundtrip), cmocka_unit_test(test_ledger_strict),
        cmocka_unit_test(test_statsfile),        cmocka_unit_test(test_names_from_schema),
        cmocka_unit_test(test_send_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
