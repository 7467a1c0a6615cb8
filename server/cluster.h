/* cluster.h -- membership: which hb-server nodes are alive, kept in Redis.
 *
 * Each node registers itself (name, advertised address, weight, index,
 * liveness port) in one Redis 7 server and refreshes that every second; a
 * node that has not refreshed for --cluster-ttl (3 s) has left, and one
 * whose process is proven gone has left at once (liveness.h).  The whole exchange is one Lua
 * script per second per node (CLUSTER_SCRIPT in cluster.c) that, atomically
 * and by Redis's own clock (TIME): stamps this node's expiry in a sorted set
 * (hb:cluster:alive, score = expiry ms; pushed back by any stretch in which
 * Redis served nobody, so a Redis stall drops no member), stores its
 * description in a hash
 * (hb:cluster:info), drops the members whose stamps passed, and returns the
 * live list.  Why one sorted set + hash rather than a key with a TTL per
 * member: the live list then comes back in the same round trip, as one
 * consistent snapshot, with no SCAN (whose cursor can miss or repeat keys
 * while they change) and no dependence on the nodes' clocks agreeing.
 *
 * Threads: the Redis client (hiredis, async, with its libev adapter) runs on
 * this module's own thread and libev loop: no SET ever talks to Redis, and
 * the shake path never looks at membership at all.  What the SETs see is an
 * immutable snapshot (sv_members) published RCU-style: the Redis thread
 * builds a new one, swaps the pointer atomically (release) with a new
 * generation number, and frees the old one only after a grace period
 * (SV_CLUSTER_GRACE_US); readers (a SET on Login and in its rehoming sweep,
 * the producer picking recipients) load it (acquire) and use it within one
 * call, never keeping it across loop turns.
 *
 * Flapping: a member that leaves within SV_FLAP_WINDOW_US of coming back
 * is taken for one that is alive but starved (it missed its refreshes on a
 * saturated box, as in the 1M runs), not dead.  The snapshot that drops it
 * carries promote_at: the standbys of its users (standby.h) are promoted
 * only once it has stayed away --flap-hold ms; if it returns sooner nothing
 * moves.  Without this, each drop of a live member promoted its quarter of
 * a million users at once and each return redirected them home (storms of
 * 400,000 promotions a node in a 1M run).  A first join is no return: a
 * member that fails for the first time is promoted at once.
 *
 * Redis unreachable: the node keeps serving with the last list (no
 * membership change until Redis answers again), logs the loss once and the
 * recovery once, and counts reconnect attempts.  At start-up Redis must
 * answer and accept the password: a wrong one is a clear error (exit 1). */
#ifndef SV_CLUSTER_H
#define SV_CLUSTER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "frame.h"
#include "placement.h"
#include "util.h"

#define SV_CLUSTER_MAX HB_PLACE_MAX       /* members in one list (64) */
#define SV_CLUSTER_GRACE_US 10000000      /* an old snapshot is freed 10 s after it was replaced */
#define SV_CLUSTER_NAME_MAX 64
#define SV_FLAP_WINDOW_US 60000000LL      /* a leave this soon after a return is a flap */

typedef struct sv_member {
    char name[SV_CLUSTER_NAME_MAX];
    char host[64];   /* advertised address */
    uint16_t port;
    uint16_t live_port; /* its liveness port (liveness.h), 0 if none */
    int index;       /* --node-index (money band), -1 if unknown */
} sv_member;

/* One published member list: immutable once published. */
typedef struct sv_members {
    uint64_t gen;    /* 1, 2, ... one per change */
    int self;        /* this node's index in m[], -1 if absent */
    int64_t promote_at; /* monotonic us: no standby promotion before (a flapping member's hold-down); 0 = none */
    size_t n;
    hb_place_member place[SV_CLUSTER_MAX]; /* parallel to m[]: keys and weights */
    sv_member m[SV_CLUSTER_MAX];
    /* The list as clients get it (Members in proto/hongbao.proto), built once
     * per snapshot so a Login only points at it: tag = 0 when it is not sent
     * (a host that is not IPv4, or a LoginOk/Redirect with it would pass
     * HB_FRAME_DOWN_MAX); wire's arrays point into w_*. */
    uint64_t tag;
    Hb__Members wire;
    uint64_t w_key[SV_CLUSTER_MAX];
    double w_weight[SV_CLUSTER_MAX];
    uint32_t w_addr[SV_CLUSTER_MAX], w_port[SV_CLUSTER_MAX], w_band[SV_CLUSTER_MAX];
} sv_members;

typedef struct sv_cluster_opts {
    const char *url;       /* redis://HOST:PORT */
    const char *password;  /* NULL: no AUTH */
    const char *name;      /* this node */
    const char *advertise; /* HOST:PORT clients are redirected to */
    double weight;
    int index;
    int ttl_ms;            /* a member missing refreshes this long has left */
    int flap_hold_ms;      /* a flapping member's users' standbys are promoted this long after it left */
    int nice;              /* the Redis thread's nice value (--urgent-nice; 0 = the process's) */
    const char *pin;       /* test hook: place every uid on this member (plays a stale list) */
    const char *live_bind; /* the liveness port's address (--listen; NULL = all) */
    int live_port;         /* and its port: 0 = the kernel picks, -1 = none (liveness.h; a takeover
                            * makes none: it takes the old process's over, sv_cluster_live_adopt) */
    bool starting;         /* registered as starting until sv_cluster_ready: the name is held, but no
                            * member places a user here (a fresh start; a takeover is a serving node) */
} sv_cluster_opts;

typedef struct sv_cluster sv_cluster;

/* Connect (synchronously, bounded), authenticate, register this node and
 * publish the first member list.  NULL with *err on failure: Redis not
 * reachable, a wrong password, a name already taken by a live node with
 * another address. */
sv_cluster *sv_cluster_new(const sv_cluster_opts *o, char *err, size_t errlen);
/* The Redis thread: refresh every second, publish changes.  Started right
 * after sv_cluster_new, before the journal is replayed and the SETs made:
 * the registration's TTL (--cluster-ttl) runs from the join, and a restarted node
 * whose start-up took longer on a saturated box dropped out of the list
 * 3.0 s after it came back, while its users poured in (the 1M kill runs). */
int sv_cluster_start(sv_cluster *c, char *err, size_t errlen);
/* The server is serving: it is listed from its next refresh on (at once),
 * and the hooks' `start` runs on the thread (the cross-node messages
 * deliver into the SETs, so not before they run).  Listed while it still
 * replayed and set up (up to 24 s on the saturated 1M box), the others
 * redirected its users to a port nobody listened on yet. */
void sv_cluster_ready(sv_cluster *c);
/* Stop the thread, deregister (best effort), free everything. */
/* Hot upgrade: while `stay`, freeing it does not leave: the node was
 * handed over (the old process), or the takeover is not done yet (the new
 * one: failing, it must not deregister the old process that serves on). */
void sv_cluster_stay(sv_cluster *c, bool stay);
/* The liveness port's listening socket (liveness.h), -1 if none: a SET
 * closes its copy once it has its own descriptor table, and a hot upgrade
 * hands it to the new process. */
int sv_cluster_live_fd(const sv_cluster *c);
/* The new process of a hot upgrade: the running one's liveness listener
 * (taken over with the journal), served and registered from
 * sv_cluster_ready on.  Until then this node registers no liveness port:
 * the port stays the old process's, which answers on it. */
void sv_cluster_live_adopt(sv_cluster *c, int fd);
void sv_cluster_free(sv_cluster *c);

/* Another module that talks to Redis on this thread (xmsg.c): `start` runs
 * on the thread with its loop once sv_cluster_ready is called (it may add
 * watchers), `stop` on the thread after its loop ended, if `start` ran.
 * Set before sv_cluster_start. */
struct ev_loop;
void sv_cluster_set_hooks(sv_cluster *c, void (*start)(void *arg, struct ev_loop *loop), void (*stop)(void *arg),
                          void *arg);
/* Where Redis is (for such a module's own connection). */
void sv_cluster_redis_addr(const sv_cluster *c, const char **host, int *port, const char **password);

/* The list to attach to a LoginOk or Redirect for a client holding the list
 * tagged `client_tag` (Login.members_tag): NULL when that is current, or the
 * list is not sent to clients. */
static inline Hb__Members *sv_members_for(const sv_members *ms, uint64_t client_tag)
{
    return ms && ms->tag && ms->tag != client_tag ? (Hb__Members *)&ms->wire : NULL;
}

/* The current snapshot (any thread; never NULL after sv_cluster_new). */
const sv_members *sv_cluster_members(sv_cluster *c);
/* uid's owner in ms when it is another member; NULL when it is this node or
 * nobody (serve it here). */
const sv_member *sv_members_other_owner(const sv_members *ms, uint32_t uid);

typedef struct sv_cluster_stats {
    uint64_t gen, members, refreshes, reconnects, redis_errors, flaps;
    uint64_t gone; /* members dropped on proof that their process is gone (liveness.h) */
    uint64_t live_closed, live_dials;  /* liveness connections that closed; dials of liveness ports */
    int64_t live_closed_us, gone_us;   /* wall clock of the latest close, of the latest proof */
    bool redis_up;
} sv_cluster_stats;
void sv_cluster_get_stats(sv_cluster *c, sv_cluster_stats *st);

#endif
