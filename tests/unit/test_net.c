/* Port and address lists (lib/net.c): one range-list parser serves both;
 * every form the flags accept, and every malformed one refused.  And the
 * listener options accepted connections inherit (hb_listen_conn_opts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include "net.h"

/* The server sets TCP_NODELAY and SO_SNDBUF once on each listener and
 * relies on accepted connections inheriting them. */
static int opt(int fd, int level, int name)
{
    int v = -1;
    socklen_t l = sizeof v;
    assert_int_equal(getsockopt(fd, level, name, &v, &l), 0);
    return v;
}

static void accepted_pair(int lfd, int *cfd, int *afd)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    *cfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(*cfd, (struct sockaddr *)&sa, sizeof sa), 0);
    *afd = accept(lfd, NULL, NULL);
    assert_true(*afd >= 0);
}

static void test_listener_opts(void **st)
{
    (void)st;
    struct in_addr lo = {htonl(INADDR_LOOPBACK)};
    char err[128];
    int plain = hb_listen_tcp(&lo, 0, 16, false, err, sizeof err);
    int tuned = hb_listen_tcp(&lo, 0, 16, false, err, sizeof err);
    assert_true(plain >= 0 && tuned >= 0);
    hb_listen_conn_opts(tuned, 16384);
    int c1, a1, c2, a2;
    accepted_pair(plain, &c1, &a1);
    accepted_pair(tuned, &c2, &a2);
    assert_int_equal(opt(a1, IPPROTO_TCP, TCP_NODELAY), 0); /* the default, so the next check means something */
    assert_int_not_equal(opt(a2, IPPROTO_TCP, TCP_NODELAY), 0);
    assert_int_equal(opt(a2, SOL_SOCKET, SO_SNDBUF), 2 * 16384); /* the kernel doubles what it is given */
    assert_int_not_equal(opt(a1, SOL_SOCKET, SO_SNDBUF), 2 * 16384);
    int fds[] = {plain, tuned, c1, a1, c2, a2};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close(fds[i]);
}

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
        cmocka_unit_test(test_listener_opts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
