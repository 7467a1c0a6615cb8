/* Port and address lists (lib/net.c): one range-list parser serves both;
 * every form the flags accept, and every malformed one refused.  And the
 * listener options accepted connections inherit (hb_listen_conn_opts), and
 * TCP Fast Open through both (in a network namespace of its own). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
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
    assert_int_equal(hb_listen_conn_opts(tuned, 16384, 0), 0);
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

/* TCP Fast Open through hb_connect_nb and hb_listen_conn_opts, in a network
 * namespace of its own (a forked child: the sysctl is per namespace, and
 * the box's own stays as it is).  The first connect has no cookie: a plain
 * handshake that fetches one (not ready).  The second returns at once
 * having sent nothing (ready); its first write sends the SYN with the data,
 * and the server's socket says the SYN carried data (TCPI_OPT_SYN_DATA).
 * Returns the child's failing step, 0 if all held, 77 if no namespace. */
static int tfo_child(void)
{
    if (unshare(CLONE_NEWNET) < 0)
        return 77;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        return 1;
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        return 2;
    close(s);
    int f = open("/proc/sys/net/ipv4/tcp_fastopen", O_WRONLY);
    if (f < 0 || write(f, "3", 1) != 1)
        return 3;
    close(f);
    struct in_addr lo = {htonl(INADDR_LOOPBACK)};
    char err[128];
    int l = hb_listen_tcp(&lo, 0, 16, false, err, sizeof err);
    if (l < 0 || hb_listen_conn_opts(l, 0, 16) < 0)
        return 4;
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    getsockname(l, (struct sockaddr *)&sa, &sl);
    for (int round = 0; round < 2; round++) {
        bool ready = true;
        int c = hb_connect_nb(&sa, NULL, true, &ready);
        if (c < 0)
            return 5;
        if (ready != (round == 1))
            return 10 + round; /* 10: ready without a cookie; 11: not deferred with one */
        if (!ready) { /* wait for the plain handshake (blocking poll on loopback) */
            fd_set w;
            FD_ZERO(&w);
            FD_SET(c, &w);
            if (select(c + 1, NULL, &w, NULL, &(struct timeval){2, 0}) != 1)
                return 6;
        }
        if (send(c, "login", 5, MSG_NOSIGNAL) != 5)
            return 7;
        int a = accept(l, NULL, NULL);
        if (a < 0)
            return 8;
        struct tcp_info ti;
        socklen_t tl = sizeof ti;
        if (getsockopt(a, IPPROTO_TCP, TCP_INFO, &ti, &tl) < 0)
            return 9;
        if (!!(ti.tcpi_options & TCPI_OPT_SYN_DATA) != (round == 1))
            return 20 + round; /* 21: the data did not ride in the SYN */
        char buf[8];
        fd_set r;
        FD_ZERO(&r);
        FD_SET(a, &r);
        if (select(a + 1, &r, NULL, NULL, &(struct timeval){2, 0}) != 1 || recv(a, buf, sizeof buf, 0) != 5)
            return 30 + round;
        close(a);
        close(c);
    }
    return 0;
}

static void test_fastopen(void **st)
{
    (void)st;
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0)
        _exit(tfo_child());
    int status = 0;
    assert_int_equal(waitpid(p, &status, 0), p);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        print_message("skipped: no network namespace here (not root?)\n");
        return;
    }
    assert_int_equal(WEXITSTATUS(status), 0);
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
        cmocka_unit_test(test_fastopen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
