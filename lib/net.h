/* net.h -- socket helpers shared by server, client, monitor and tools
 * (in the spirit of Redis' anet.c: small wrappers with clear errors). */
#ifndef HB_NET_H
#define HB_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#define HB_MAX_PORTS 256
#define HB_MAX_ADDRS 256

/* "7000", "7000-7003" or "7000,7002,7005": fills ports[], returns the count,
 * or -1 with a message in err. */
int hb_parse_ports(const char *spec, int *ports, int max, char *err, size_t errlen);

/* "127.0.0.2,127.0.0.3" or a range "127.0.0.2-127.0.0.9" (IPv4). */
int hb_parse_addrs(const char *spec, struct in_addr *out, int max, char *err, size_t errlen);

/* "host:port" (IPv4 literal or name) into sa; -1 with err. */
int hb_parse_hostport(const char *spec, struct sockaddr_in *sa, char *err, size_t errlen);


/* A non-blocking listening socket with SO_REUSEADDR (+ SO_REUSEPORT when
 * asked: one listener per SET on the same port, the kernel spreads the
 * incoming connections over them).  -1 with err on failure. */
int hb_listen_tcp(const struct in_addr *addr, int port, int backlog, bool reuseport, char *err, size_t errlen);

/* True if some socket listens on addr:port already.  A bind without
 * SO_REUSEPORT (but with SO_REUSEADDR, so TIME_WAIT connections of an
 * earlier run do not count) fails exactly then, even when the listener
 * uses SO_REUSEPORT and would let our own SO_REUSEPORT bind succeed. */
bool hb_port_taken(const struct in_addr *addr, int port);

/* Start a non-blocking connect to dst, from src when given.  With a source
 * address the port is left to connect() (IP_BIND_ADDRESS_NO_PORT), so one
 * source port can serve many destinations: the 4-tuple, not the local port,
 * must be unique.  fastopen: TCP Fast Open (TCP_FASTOPEN_CONNECT) -- with
 * a cookie for dst from an earlier connection, connect() sends nothing and
 * the first write carries its data in the SYN; without one it is a plain
 * handshake that asks for a cookie.  *ready (may be NULL): connect()
 * returned 0, so the caller may write at once (a loopback handshake that
 * completed inside the call, or a Fast Open connect waiting for its first
 * write).  Returns the fd or -1. */
int hb_connect_nb(const struct sockaddr_in *dst, const struct in_addr *src, bool fastopen, bool *ready);

/* TCP_NODELAY: replies are single small frames that must leave at once. */
void hb_tcp_nodelay(int fd);

/* Set on a listening socket what every connection it accepts should have:
 * TCP_NODELAY, and SO_SNDBUF when sndbuf > 0.  Linux starts an accepted
 * socket as a copy of its listener, so these cost nothing per connection
 * (test_net checks that this kernel still copies them).  fastopen > 0:
 * accept data in the SYN (TCP Fast Open) with at most that many such
 * connections not yet accepted; the kernel takes it only where
 * net.ipv4.tcp_fastopen has bit 2 (sysctl/server.conf).  Returns 0, or -1
 * if the kernel refused TCP_FASTOPEN (errno). */
int hb_listen_conn_opts(int lfd, int sndbuf, int fastopen);

const char *hb_addr_str(const struct in_addr *a, char *buf, size_t n);

#endif
