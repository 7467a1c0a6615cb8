/* net.c -- parsing addresses and ports, listening, non-blocking connects. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static bool port_value(const char *s, uint32_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5 || strspn(s, "0123456789") != n)
        return false;
    *out = (uint32_t)atoi(s);
    return *out >= 1 && *out <= 65535;
}

static bool addr_value(const char *s, uint32_t *out)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1)
        return false;
    *out = ntohl(a.s_addr);
    return true;
}

/* A comma list of VALUE or FIRST-LAST items (each value read by `value`),
 * expanded into out[0..max).  The count, -1 on a malformed list, -2 when
 * it expands to more than max. */
static int parse_ranges(const char *spec, bool (*value)(const char *, uint32_t *), uint32_t *out, int max)
{
    int n = 0;
    char item[64];
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof item)
            return -1;
        memcpy(item, p, len);
        item[len] = 0;
        char *dash = strchr(item, '-');
        if (dash)
            *dash = 0;
        uint32_t a, b;
        if (!value(item, &a) || !(dash ? value(dash + 1, &b) && b >= a : (b = a, true)))
            return -1;
        for (uint64_t v = a; v <= b; v++) {
            if (n == max)
                return -2;
            out[n++] = (uint32_t)v;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return n ? n : -1;
}

int hb_parse_ports(const char *spec, int *ports, int max, char *err, size_t errlen)
{
    uint32_t v[HB_MAX_PORTS];
    int n = parse_ranges(spec, port_value, v, max < HB_MAX_PORTS ? max : HB_MAX_PORTS);
    if (n == -2)
        snprintf(err, errlen, "ports '%s': more than %d ports", spec, max);
    else if (n < 0)
        snprintf(err, errlen, "ports '%s': expected PORT, FIRST-LAST or a comma list (1..65535)", spec);
    for (int i = 0; i < n; i++)
        ports[i] = (int)v[i];
    return n < 0 ? -1 : n;
}

int hb_parse_addrs(const char *spec, struct in_addr *out, int max, char *err, size_t errlen)
{
    uint32_t v[HB_MAX_ADDRS];
    int n = parse_ranges(spec, addr_value, v, max < HB_MAX_ADDRS ? max : HB_MAX_ADDRS);
    if (n == -2)
        snprintf(err, errlen, "addresses '%s': more than %d", spec, max);
    else if (n < 0)
        snprintf(err, errlen, "addresses '%s': expected IPv4 addresses, comma-separated, or FIRST-LAST", spec);
    for (int i = 0; i < n; i++)
        out[i].s_addr = htonl(v[i]);
    return n < 0 ? -1 : n;
}

int hb_parse_hostport(const char *spec, struct sockaddr_in *sa, char *err, size_t errlen)
{
    const char *colon = strrchr(spec, ':');
    uint32_t port;
    if (!colon || !port_value(colon + 1, &port)) {
        snprintf(err, errlen, "'%s': expected HOST:PORT", spec);
        return -1;
    }
    char host[256];
    size_t hl = (size_t)(colon - spec);
    if (hl == 0 || hl >= sizeof host) {
        snprintf(err, errlen, "'%s': expected HOST:PORT", spec);
        return -1;
    }
    memcpy(host, spec, hl);
    host[hl] = 0;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) == 1)
        return 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "'%s': %s", host, gai_strerror(rc));
        return -1;
    }
    sa->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

int hb_listen_tcp(const struct in_addr *addr, int port, int backlog, bool reuseport, char *err, size_t errlen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        snprintf(err, errlen, "SO_REUSEPORT: %s", strerror(errno));
        close(fd);
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = *addr};
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, backlog) < 0) {
        char a[32];
        snprintf(err, errlen, "cannot listen on %s:%d: %s", hb_addr_str(addr, a, sizeof a), port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

bool hb_port_taken(const struct in_addr *addr, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = *addr};
    bool taken = bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

int hb_connect_nb(const struct sockaddr_in *dst, const struct in_addr *src, bool fastopen, bool *ready)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (src) {
        int one = 1;
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = *src};
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    if (fastopen) { /* an old kernel without it: a plain connect */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof one);
    }
    int r = connect(fd, (const struct sockaddr *)dst, sizeof *dst);
    if (r < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (ready)
        *ready = r == 0;
    return fd;
}

void hb_tcp_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int hb_listen_conn_opts(int lfd, int sndbuf, int fastopen)
{
    hb_tcp_nodelay(lfd);
    if (sndbuf > 0)
        setsockopt(lfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (fastopen > 0 && setsockopt(lfd, IPPROTO_TCP, TCP_FASTOPEN, &fastopen, sizeof fastopen) < 0)
        return -1;
    return 0;
}

const char *hb_addr_str(const struct in_addr *a, char *buf, size_t n)
{
    if (!inet_ntop(AF_INET, a, buf, (socklen_t)n))
        snprintf(buf, n, "?");
    return buf;
}
