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
 * How: every node listens on one more TCP port (--live-port; by default
 * the kernel picks it) named in its registration, and holds, silently,
 * what connects there.  Every node holds one connection to each other
 * member's port.  When one closes, this node dials the port again at once:
 * a refused connect means nothing listens on the port that member's
 * process registered, so that process is gone, and `gone` is called
 * (cluster.c then drops the member from Redis, only the registration with
 * this liveness port, so a restart that registered since is kept, and from
 * its own list at once).  Anything else (the dial answered, timed out, no
 * route) proves nothing and changes nothing: the TTL still decides.
 *
 * Why the proof holds:
 *  - the listener is only in the node's shared descriptor table (the SETs
 *    close their copies, and accepting starts once they have their own
 *    tables), which a dying process closes first: in the 1M kill runs all
 *    its threads but the SETs were gone 0.33 s after the SIGKILL, while
 *    the SETs closed their 250,000 sockets for 30 s, their client-port
 *    listeners last (an exiting thread's files are released in the order
 *    opposite to their descriptors, so a client port answers until then);
 *  - within that table the listener is released first and without waiting:
 *    it sits at its highest descriptor, and neither it nor the connections
 *    it holds are in an epoll instance (cluster.c's loop polls), since the
 *    kernel releases an epoll-watched file only under one global mutex,
 *    for which the dying SETs queue with every socket they close (1M run
 *    20, before: the held connections closed 1.48 s after the SIGKILL and
 *    the listener not within the TTL, so nothing was proven);
 *  - a frozen or starved node (SIGSTOP, a saturated box) keeps its sockets:
 *    its connection does not close and its port answers;
 *  - a hot upgrade: the listener itself goes to the new process with the
 *    journal (upgrade.c), so the port answers before, during and after the
 *    old process's exit; the new process registers no liveness port of its
 *    own until it serves, then the one it took over;
 *  - a network partition: dials time out or find no route, never a refusal.
 *
 * Cost: one idle connection per pair of members, a dial when one closes.
 * The port holds at most SV_LIVE_HELD connections and closes what comes
 * beyond (a stranger filling it costs the others only their early notice
 * of this node's death).  Hosts that are not IPv4 literals are not watched
 * (the TTL alone applies). */
#ifndef SV_LIVENESS_H
#define SV_LIVENESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#define SV_LIVE_HELD 256          /* liveness connections this node holds for others */
#define SV_LIVE_REDIAL 1.0        /* s before dialling again after a failed dial, or a connection that
                                   * closed within a second of coming up */
#define SV_LIVE_DIAL_TIMEOUT 3.0  /* s a dial may take */
#define SV_LIVE_QUICK 0.05        /* s before dialling again after a brief connection closed ... */
#define SV_LIVE_QUICK_MAX 10      /* ... this many times in a row */

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
/* The same on a listening socket handed over by the process this one
 * took over (upgrade.c); lfd is closed on failure. */
sv_live *sv_live_adopt(int lfd, void (*gone)(void *arg, const char *name, unsigned live_port), void *arg,
                       char *err, size_t errlen);
/* Its port. */
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
 * that closed, dials; wall-clock us of the latest close and proof. */
typedef struct sv_live_stats {
    uint64_t gone, closed, dials;
    int64_t closed_us, gone_us;
} sv_live_stats;
void sv_live_get_stats(sv_live *l, sv_live_stats *st);
/* Close everything (on the loop's thread, or after it stopped). */
void sv_live_free(sv_live *l);

#endif
