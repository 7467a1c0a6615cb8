/* net.c -- parsing addresses and ports, listening, non-blocking connects. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static int parse_port(const char *s, size_t n, int *out)
{
    if (n == 0 || n > 5)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *out = v;
    return 0;
}

int hb_parse_ports(const char *spec, int *ports, int max, char *err, size_t errlen)
{
    int n = 0;
    const char *p = spec;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *dash = memchr(p, '-', len);
        int a, b;
        if (dash) {
            if (parse_port(p, (size_t)(dash - p), &a) < 0 || parse_port(dash + 1, len - (size_t)(dash - p) - 1, &b) < 0 ||
                b < a)
                goto bad;
        } else {
            if (parse_port(p, len, &a) < 0)
                goto bad;
            b = a;
        }
        for (int v = a; v <= b; v++) {
            if (n == max) {
                snprintf(err, errlen, "ports '%s': more than %d ports", spec, max);
                return -1;
            }
            ports[n++] = v;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (n == 0)
        goto bad;
    return n;
bad:
    snprintf(err, errlen, "ports '%s': expected PORT, FIRST-LAST or a comma list (1..65535)", spec);
    return -1;
}

int hb_parse_addrs(const char *spec, struct in_addr *out, int max, char *err, size_t errlen)
{
    int n = 0;
    char item[64];
    const char *p = spec;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len >= sizeof item)
            goto bad;
        memcpy(item, p, len);
        item[len] = 0;
        char *dash = strchr(item, '-');
        struct in_addr a, b;
        if (dash) {
            *dash = 0;
            if (inet_pton(AF_INET, item, &a) != 1 || inet_pton(AF_INET, dash + 1, &b) != 1 ||
                ntohl(b.s_addr) < ntohl(a.s_addr))
                goto bad;
        } else {
            if (inet_pton(AF_INET, item, &a) != 1)
                goto bad;
            b = a;
        }
        for (uint32_t v = ntohl(a.s_addr); v <= ntohl(b.s_addr); v++) {
            if (n == max) {
                snprintf(err, errlen, "addresses '%s': more than %d", spec, max);
                return -1;
            }
            out[n++].s_addr = htonl(v);
            if (v == UINT32_MAX)
                break;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (n == 0)
        goto bad;
    return n;
bad:
    snprintf(err, errlen, "addresses '%s': expected IPv4 addresses, comma-separated, or FIRST-LAST", spec);
    return -1;
}

int hb_parse_hostport(const char *spec, struct sockaddr_in *sa, char *err, size_t errlen)
{
    const char *colon = strrchr(spec, ':');
    int port;
    if (!colon || parse_port(colon + 1, strlen(colon + 1), &port) < 0) {
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

int hb_connect_nb(const struct sockaddr_in *dst, const struct in_addr *src)
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
    if (connect(fd, (const struct sockaddr *)dst, sizeof *dst) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

void hb_tcp_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

const char *hb_addr_str(const struct in_addr *a, char *buf, size_t n)
{
    if (!inet_ntop(AF_INET, a, buf, (socklen_t)n))
        snprintf(buf, n, "?");
    return buf;
}
