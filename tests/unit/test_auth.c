/* Login tokens with a signed expiry (lib/auth.c, issue 13.7): the format is
 * pinned by a known answer (computed independently with Python's hmac), and
 * the verdicts at the edges -- the clock-skew boundary, expires = 0, an
 * expiry near UINT64_MAX that must not wrap, a moved uid or expiry, a short
 * token -- are what the server relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "auth.h"

static const uint8_t S[] = "0123456789abcdef0123456789abcdef";
#define SL (sizeof S - 1)

static void test_known_answer(void **state)
{
    (void)state;
    /* python3: hmac.new(S, struct.pack('>IQ', 7, 1700000000), sha256) */
    const char *want = "856e39e6a08234b202405c79c1fdd7b177baaf57caf94c175f8a081bc3b3b094";
    uint8_t t[HB_TOKEN_LEN];
    char hex[2 * HB_TOKEN_LEN + 1];
    hb_token_make(S, SL, 7, 1700000000, t);
    for (int i = 0; i < HB_TOKEN_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", t[i]);
    assert_string_equal(hex, want);
}

static void test_verdicts(void **state)
{
    (void)state;
    const uint64_t now = 1700000000;
    uint8_t t[HB_TOKEN_LEN];
    hb_token_make(S, SL, 7, now + 10, t);
    assert_int_equal(hb_token_check(S, SL, 7, now + 10, t, sizeof t, now), HB_TOKEN_OK);
    /* moved to another uid or another expiry */
    assert_int_equal(hb_token_check(S, SL, 8, now + 10, t, sizeof t, now), HB_TOKEN_BAD);
    assert_int_equal(hb_token_check(S, SL, 7, now + 11, t, sizeof t, now), HB_TOKEN_BAD);
    /* short, or under another secret */
    assert_int_equal(hb_token_check(S, SL, 7, now + 10, t, 16, now), HB_TOKEN_BAD);
    assert_int_equal(hb_token_check(S, SL - 1, 7, now + 10, t, sizeof t, now), HB_TOKEN_BAD);
    /* the skew boundary: accepted up to HB_TOKEN_SKEW s after the expiry */
    assert_int_equal(hb_token_check(S, SL, 7, now + 10, t, sizeof t, now + 10 + HB_TOKEN_SKEW), HB_TOKEN_OK);
    assert_int_equal(hb_token_check(S, SL, 7, now + 10, t, sizeof t, now + 11 + HB_TOKEN_SKEW), HB_TOKEN_EXPIRED);
    /* a forged token past its expiry is BAD, not EXPIRED: EXPIRED means genuine */
    uint8_t f[HB_TOKEN_LEN];
    memset(f, 0x5a, sizeof f);
    assert_int_equal(hb_token_check(S, SL, 7, now - 3600, f, sizeof f, now), HB_TOKEN_BAD);
    /* no expiry is never valid, even correctly signed */
    hb_token_make(S, SL, 7, 0, t);
    assert_int_equal(hb_token_check(S, SL, 7, 0, t, sizeof t, now), HB_TOKEN_BAD);
    /* far future does not wrap into the past */
    hb_token_make(S, SL, 7, UINT64_MAX, t);
    assert_int_equal(hb_token_check(S, SL, 7, UINT64_MAX, t, sizeof t, now), HB_TOKEN_OK);
    assert_int_equal(hb_token_check(S, SL, 7, UINT64_MAX, t, sizeof t, UINT64_MAX), HB_TOKEN_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_verdicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
