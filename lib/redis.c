/* redis.c -- Redis address, password file and authenticated connection (see
 * redis.h). */
#include "redis.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

int hb_redis_parse_url(const char *url, hb_redis_addr *a)
{
    const char *p = url;
    if (!p)
        return -1;
    if (!strncmp(p, "redis://", 8))
        p += 8;
    const char *colon = strrchr(p, ':');
    if (!colon || colon == p || (size_t)(colon - p) >= sizeof a->host)
        return -1;
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (*end || v < 1 || v > 65535)
        return -1;
    memcpy(a->host, p, (size_t)(colon - p));
    a->host[colon - p] = 0;
    a->port = (int)v;
    return 0;
}

int hb_redis_read_password(const char *path, hb_redis_addr *a, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f || !fgets(a->password, (int)sizeof a->password, f)) {
        snprintf(err, errlen, "--redis-password-file %s: %s", path, f ? "empty" : strerror(errno));
        if (f)
            fclose(f);
        a->password[0] = 0;
        return -1;
    }
    fclose(f);
    a->password[strcspn(a->password, "\r\n")] = 0;
    return 0;
}

redisContext *hb_redis_connect(const hb_redis_addr *a, int timeout_ms, char *err, size_t errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *rc = redisConnectWithTimeout(a->host, a->port, tv);
    if (!rc || rc->err) {
        snprintf(err, errlen, "cannot reach Redis at %s:%d: %s", a->host, a->port, rc ? rc->errstr : "out of memory");
        if (rc)
            redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, tv);
    const char *argv[2] = {"AUTH", a->password};
    redisReply *r = a->password[0] ? redisCommandArgv(rc, 2, argv, NULL) : redisCommand(rc, "PING");
    if (!r || r->type == REDIS_REPLY_ERROR) {
        bool noauth = r && !strncmp(r->str, "NOAUTH", 6);
        snprintf(err, errlen, "Redis at %s:%d: %s%s", a->host, a->port, r ? r->str : rc->errstr,
                 noauth ? " (it needs a password: --redis-password-file)"
                 : a->password[0] ? " (the password of --redis-password-file was refused)" : "");
        if (r)
            freeReplyObject(r);
        redisFree(rc);
        return NULL;
    }
    freeReplyObject(r);
    return rc;
}

const char *hb_redis_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? r->str : NULL;
}

int hb_redis_int(const redisReply *r, long long *v)
{
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_INTEGER) {
        *v = r->integer;
        return 0;
    }
    const char *s = hb_redis_str(r);
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return *end || errno ? -1 : 0;
}
