/* redis.h -- the small Redis helpers the fleet shares (hb-client --agent and
 * hb-fleet): the redis://HOST:PORT address, the password file, and a
 * synchronous connection that is authenticated or refused with a message
 * saying why.
 *
 * The cluster's membership (server/cluster.c) uses them too: the
 * URL is redis://HOST:PORT (the scheme may be left out), the password is the
 * first line of a file (never a flag, so it does not show in `ps`).  Kept in
 * a library of its own (hbredis) so only the binaries that talk to Redis link
 * hiredis. */
#ifndef HB_REDIS_H
#define HB_REDIS_H

#include <stddef.h>
#include <hiredis/hiredis.h>

typedef struct hb_redis_addr {
    char host[256];
    int port;
    char password[512]; /* "" = none */
} hb_redis_addr;

/* "redis://HOST:PORT" or "HOST:PORT" -> addr (password untouched); 0 or -1. */
int hb_redis_parse_url(const char *url, hb_redis_addr *a);
/* The password: first line of `path` (trailing CR/LF removed); 0 or -1 with
 * a message naming the file. */
int hb_redis_read_password(const char *path, hb_redis_addr *a, char *err, size_t errlen);
/* Connect (and AUTH) with a timeout for the connect and for every command;
 * NULL with a message on failure. */
redisContext *hb_redis_connect(const hb_redis_addr *a, int timeout_ms, char *err, size_t errlen);

/* Reply helpers: the string of a reply (NULL if not a string/status), an
 * integer reply (or a string holding one) into *v. */
const char *hb_redis_str(const redisReply *r);
int hb_redis_int(const redisReply *r, long long *v);

#endif
