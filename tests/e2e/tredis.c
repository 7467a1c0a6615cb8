/* tredis.c -- a test's redis-server on loopback: start, wait, stop (tredis.h). */
#include "tredis.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "peer.h"
#include "redis.h"
#include "spawn.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A connection that got through AUTH, and then PING: a Redis loading its
 * AOF accepts AUTH but answers other commands with LOADING until it is
 * done.  NULL with the reason in err. */
static redisContext *answer(const tredis *r, char *err, size_t errlen)
{
    hb_redis_addr a = {.port = r->port};
    snprintf(a.host, sizeof a.host, "127.0.0.1");
    snprintf(a.password, sizeof a.password, "%s", r->password);
    redisContext *rc = hb_redis_connect(&a, 1000, err, errlen);
    if (!rc)
        return NULL;
    redisReply *p = redisCommand(rc, "PING");
    bool ok = p && p->type == REDIS_REPLY_STATUS && !strcmp(p->str, "PONG");
    snprintf(err, errlen, "PING: %s", p ? (p->str ? p->str : "not a status") : rc->errstr);
    if (p)
        freeReplyObject(p);
    if (ok)
        return rc;
    redisFree(rc);
    return NULL;
}

static void run(tredis *r)
{
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    const char *argv[20] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", r->dir, "--save", "",
                            "--appendonly", r->aof ? "yes" : "no"};
    int n = 11;
    if (r->aof) {
        argv[n++] = "--appendfsync";
        argv[n++] = "always";
    }
    if (r->password[0]) {
        argv[n++] = "--requirepass";
        argv[n++] = r->password;
    }
    argv[n] = NULL;
    r->pid = spawn(argv, r->log);
    char err[256] = "";
    redisContext *rc;
    for (int64_t end = now_ms() + 5000; !(rc = answer(r, err, sizeof err)); usleep(20000)) {
        CHECK(waitpid(r->pid, NULL, WNOHANG) == 0, "redis-server exited at start (see %s)", r->log);
        CHECK(now_ms() < end, "redis-server on port %d does not answer in 5 s: %s (see %s)", r->port, err, r->log);
    }
    redisFree(rc);
}

void tredis_start(tredis *r, const char *dir, const char *password, bool aof)
{
    memset(r, 0, sizeof *r);
    CHECK(strlen(dir) < sizeof r->dir && (!password || strlen(password) < sizeof r->password), "%s: too long", dir);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    snprintf(r->log, sizeof r->log, "%s/redis.log", dir);
    r->aof = aof;
    if (password) {
        snprintf(r->password, sizeof r->password, "%s", password);
        snprintf(r->pwfile, sizeof r->pwfile, "%s/pw", dir);
        FILE *f = fopen(r->pwfile, "w");
        CHECK(f, "%s: %m", r->pwfile);
        fprintf(f, "%s\n", password);
        fclose(f);
    }
    r->port = peer_free_port();
    snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d", r->port);
    run(r);
}

void tredis_restart(tredis *r)
{
    CHECK(r->pid <= 0, "tredis_restart: redis-server %d is still running", (int)r->pid);
    run(r);
}

void tredis_stop(tredis *r, int sig, int ms)
{
    spawn_stop(&r->pid, sig, ms);
}

redisContext *tredis_connect(const tredis *r)
{
    char err[256];
    redisContext *rc = answer(r, err, sizeof err);
    CHECK(rc, "redis-server on port %d: %s", r->port, err);
    return rc;
}
