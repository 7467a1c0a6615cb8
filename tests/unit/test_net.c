/* Port and address lists (lib/net.c): one range-list parser serves both;
 * every form the flags accept, and every malformed one refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <string.h>
#include <cmocka.h>
#include "net.h"

static void test_ports(void **st)
{
    int p[HB_MAX_PORTS];
    char err[128];
    assert_int_equal(hb_parse_ports("7000", p, HB_MAX_PORTS, err, sizeof err), 1);
    assert_int_equal(p[0], 7000);
    assert_int_equal(hb_parse_ports("7000-7003", p, HB_MAX_PORTS, err, sizeof err), 4);
    assert_int_equal(p[3], 7003);
    assert_int_equal(hb_parse_ports("7000,7002,7005-7006", p, HB_MAX_PORTS, err, sizeof err), 4);
    assert_int_equal(p[1], 7002);
    assert_int_equal(p[3], 7006);
    const char *bad[] = {"", "0", "65536", "7003-7000", "a", "70a0", "7000,,7001", "7000-", "-7000", "123456"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(hb_parse_ports(bad[i], p, HB_MAX_PORTS, err, sizeof err), -1);
    assert_int_equal(hb_parse_ports("1-300", p, HB_MAX_PORTS, err, sizeof err), -1); /* more than 256 */
    assert_non_null(strstr(err, "more than"));
    assert_int_equal(hb_parse_hostport("127.0.0.1:7000", &(struct sockaddr_in){0}, err, sizeof err), 0);
    assert_int_equal(hb_parse_hostport("127.0.0.1:0", &(struct sockaddr_in){0}, err, sizeof err), -1);
}

static void test_addrs(void **st)
{
    struct in_addr a[HB_MAX_ADDRS];
    char err[128], s[32];
    assert_int_equal(hb_parse_addrs("127.0.0.2,127.0.0.3", a, HB_MAX_ADDRS, err, sizeof err), 2);
    assert_int_equal(hb_parse_addrs("10.0.0.254-10.0.1.1", a, HB_MAX_ADDRS, err, sizeof err), 4);
    assert_string_equal(inet_ntop(AF_INET, &a[2], s, sizeof s), "10.0.1.0");
    const char *bad[] = {"", "1.2.3", "10.0.0.9-10.0.0.1", "x", "1.2.3.4,", "1.2.3.4-"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(hb_parse_addrs(bad[i], a, HB_MAX_ADDRS, err, sizeof err), i == 4 ? 1 : -1);
    assert_int_equal(hb_parse_addrs("10.0.0.0-10.0.255.255", a, HB_MAX_ADDRS, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_addrs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
