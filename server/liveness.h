/* liveness.h -- a member whose process is gone leaves the list at once,
 * not when its registration expires (cluster only; runs on the Redis
 * thread of cluster.c).
 *
 * Why: a node that is killed (SIGKILL, the OOM killer, a crash) stops
 * refreshing, and the others dropped it only when its registration expired:
 * 2-3 s after the death with --cluster-ttl 3000, plus up to a second until
 * each survivor's own refresh.  In the 1M kill runs that was a third of the
 * 10 s in which its quarter of a million users must be logged in elsewhere
 * (their relogins began 2.4-3.5 s after the kill).  Yet the kernel knows at
 * once: it closes a dead process's sockets as the process exits.
 *
 * How: every node listens on one more TCP port (the kernel picks it; it is
 * the fifth field of the node's description in Redis) and holds, silently,
 * what connects there.  Every node holds one connection to each other
 * member's port.  When one closes, that member is suspect: this node tries
 * the member's client port (its advertised HOST:PORT) every
 * SV_LIVE_PROBE_EVERY for SV_LIVE_PROBE_FOR.  A refused connect means no
 * process listens there any more: the member is gone, and `gone` is called
 * (cluster.c then drops it from Redis, only the registration with this
 * liveness port, so a restart that registered since is kept, and from its
 * own list at once).  Anything else proves nothing and changes nothing; the
 * TTL still decides.
 *
 * Why each proof holds:
 *  - a frozen or starved node (SIGSTOP, a saturated box) keeps its sockets
 *    and listeners: its connection stays open and its port accepts;
 *  - a hot upgrade: the old process's exit closes its liveness connections,
 *    but its SET listeners went to the new process before (upgrade.h): the
 *    client port accepts; the new process's own liveness port comes with
 *    its next refresh and is dialled then;
 *  - a network partition: connects time out or find no route, never a
 *    refusal: the TTL decides;
 *  - a dying process closes its SET listeners early: each SET's listeners
 *    are among the first descriptors of its private table, and a table is
 *    closed in descriptor order, so the port refuses long before all of a
 *    1M node's sockets are closed (39 s after the kill in run 14).
 *
 * Cost: one idle connection per pair of members; while a member is suspect,
 * up to 20 connects to its port a second.  The port holds at most
 * SV_LIVE_HELD connections and closes what comes beyond (a stranger filling
 * it costs the others only their early notice of this node's death).  Hosts
 * that are not IPv4 literals are not watched (the TTL alone applies). */
#ifndef SV_LIVENESS_H
#define SV_LIVENESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#define SV_LIVE_HELD 256          /* liveness connections this node holds for others */
#define SV_LIVE_PROBE_EVERY 0.05  /* s between connects to a suspect member's client port */
#define SV_LIVE_PROBE_FOR 1.0     /* s of probes after a close before dialling its liveness port again */
#define SV_LIVE_REDIAL 1.0        /* s before dialling again after a failed or timed-out dial */
#define SV_LIVE_DIAL_TIMEOUT 3.0  /* s a dial may take */

struct ev_loop;
struct sv_members;
typedef struct sv_live sv_live;

/* A listener on bind_host (an IPv4 literal; NULL = all) and port (0: one
 * the kernel picks).  `gone(arg, name, live_port)` runs on the loop when
 * member `name`, registered with liveness port live_port, is proven gone.
 * NULL with err on failure. */
sv_live *sv_live_new(const char *bind_host, int port,
                     void (*gone)(void *arg, const char *name, unsigned live_port), void *arg, char *err,
                     size_t errlen);
/* The port the kernel chose. */
unsigned sv_live_port(const sv_live *l);
/* Accept and watch on `loop` from now on (on the loop's thread).  Not
 * before the SETs made their private descriptor tables: a socket of ours
 * open when they copied the table stays open in every copy, so the port
 * would go on accepting, and a connection stay up, until the last SET of
 * a dying process closed its table (31 s after the kill in a 1M run, whose
 * survivors then dialled the port again, were answered, and proved
 * nothing). */
void sv_live_start(sv_live *l, struct ev_loop *loop);
/* The listening socket: a SET closes its copy after unsharing its table. */
int sv_live_fd(const sv_live *l);
/* Whether sv_live_start ran. */
bool sv_live_started(const sv_live *l);
/* The members as Redis listed them at a refresh (on the loop's thread):
 * dial the new ones, forget those that left, dial again where a member's
 * liveness port changed (a restart or an upgrade). */
void sv_live_members(sv_live *l, const struct sv_members *ms);
/* Since start (any thread): members proven gone, liveness connections
 * that closed, probes sent; wall-clock us of the latest close and proof. */
typedef struct sv_live_stats {
    uint64_t gone, closed, probes;
    int64_t closed_us, gone_us;
} sv_live_stats;
void sv_live_get_stats(sv_live *l, sv_live_stats *st);
/* Close everything (on the loop's thread, or after it stopped). */
void sv_live_free(sv_live *l);

#endif
