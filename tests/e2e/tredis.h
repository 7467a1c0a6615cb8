/* tredis.h -- the one redis-server a C test starts for its cluster nodes
 * (cluster.c, cluster_members.c, cluster_msgs.c, cluster_name.c,
 * orphans.c), names tredis_*.
 *
 * Invariants: it binds 127.0.0.1 only, on a port free when it was picked,
 * with no RDB snapshots (--save ""), its files (redis.log, the AOF, the
 * password file) in the test's own directory; it is started through spawn(),
 * so it dies with the test even when no cleanup runs (spawn.h).  A start
 * returns only once it answers a command (AUTHed when it has a password),
 * or the test fails naming its log: a node started right after must find it
 * up, and a Redis that never comes up is a clear failure, not a node's
 * reconnect counter going up.  A restart is on the same port and directory,
 * with the same flags: nodes have its URL, and with AOF it comes back with
 * its data (cluster_msgs kills it with SIGKILL and checks that).
 *
 * Why one module: the five tests each had a copy of the argv, the wait and
 * the stop, and they had drifted (three waited for a TCP connect, two for a
 * hiredis connect and AUTHed after; one restart did not wait at all). */
#ifndef HB_TREDIS_H
#define HB_TREDIS_H

#include <stdbool.h>
#include <sys/types.h>
#include <hiredis/hiredis.h>

typedef struct tredis {
    pid_t pid;          /* 0 when stopped */
    int port;
    char dir[128];      /* --dir: its log and AOF */
    char url[64];       /* redis://127.0.0.1:PORT, for --cluster */
    char password[64];  /* --requirepass; "" none */
    char pwfile[192];   /* the password's file for --redis-password-file; "" none */
    char log[192];
    bool aof;           /* --appendonly yes --appendfsync always (else --appendonly no) */
} tredis;

/* Start redis-server in the existing directory dir on a free loopback port,
 * with requirepass `password` (NULL: none; else also written to dir/pw) and
 * AOF on or off; waits until it answers (5 s). */
void tredis_start(tredis *r, const char *dir, const char *password, bool aof);
/* Start it again where it was (after tredis_stop); waits until it answers. */
void tredis_restart(tredis *r);
/* Signal it with sig (SIGTERM, SIGKILL), wait up to ms for its exit, then
 * SIGKILL.  Nothing if it is not running (cleanup may call it twice). */
void tredis_stop(tredis *r, int sig, int ms);
/* A connection to it, AUTHed, with a 1 s timeout; the test fails if not. */
redisContext *tredis_connect(const tredis *r);

#endif
