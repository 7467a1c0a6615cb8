/* xmsg.h -- messages between cluster nodes, through Redis Streams.
 *
 * What crosses nodes: a send-flow notice or a chat for a uid another node
 * owns (route.c forwards it), an Open of a send packet another node made
 * (its id band names the node: handlers.c), and that Open's reply.  Each
 * node reads one stream, hb:node:<index>:in (the money index, which a node
 * keeps across restarts and which even a dead node's packets still name),
 * with the consumer group "hb", consumer = its name.
 *
 * Invariants:
 *   - The shake path never gets here, and no SET or producer thread talks
 *     to Redis: they push into a bounded lock-free queue (inbox.h's) that
 *     the cluster thread drains, XADDing pipelined.  A full queue refuses
 *     and the drop is counted (renotify.c tells an unopened recipient again;
 *     an asking client retries its Open after reconnecting).
 *   - An entry is XACKed only after it was delivered (into the SET inbox),
 *     parked, forwarded, or answered (an Open's reply XADDed, after the
 *     share's journal record is durable).  Until then it stays in the
 *     group's pending list, which is read again (XREADGROUP ... 0) at start,
 *     after every reconnect and every 2 s: a notice of money survives a
 *     restart of either node and of Redis (run with appendonly).
 *   - Every message carries an id the sender gave it once (sender index,
 *     boot time, counter): a message seen again (re-read from the pending
 *     list, or XADDed twice because a reply was lost) is recognised,
 *     counted as a duplicate and only acknowledged.  Opens are idempotent
 *     anyway (OPEN_ALREADY repeats the share): nothing is paid twice.
 *   - A message is forwarded between nodes at most SV_XMSG_HOPS times (two
 *     nodes with different member lists cannot bounce it forever).
 *
 * Why Streams: an entry outlives both ends (unlike PUB/SUB), a consumer
 * group keeps what was read but not acknowledged, and the stream per node
 * means a node reads only its own traffic. */
#ifndef SV_XMSG_H
#define SV_XMSG_H

#include <stdbool.h>
#include <stdint.h>
#include "inbox.h"

#define SV_XMSG_HOPS 3

struct sv_server;
typedef struct sv_xmsg sv_xmsg;

/* After sv_cluster_new: set up the queue and hook onto the cluster thread. */
sv_xmsg *sv_xmsg_new(struct sv_server *s, char *err, size_t errlen);
void sv_xmsg_free(sv_xmsg *x); /* after the cluster thread stopped */

/* Any thread: queue m for node `node` (its index).  False if the queue is
 * full (counted). */
bool sv_xmsg_send(sv_xmsg *x, int node, const sv_msg *m);

/* Hot upgrade: stop (on) or resume reading this node's stream.  Pausing
 * waits (up to timeout_ms) until no read is in flight, so nothing read
 * afterwards appends to the journal the old process is handing over.
 * True once paused (or resumed). */
bool sv_xmsg_pause(sv_xmsg *x, bool on, int timeout_ms);

typedef struct sv_xmsg_stats {
    uint64_t xadd, xadd_failed, xread, xread_entries, xack, acked, duplicates, opens_forwarded, opens_served,
        open_replies, queue_full, commands, dropped;
    uint64_t opens_ok, share_amount; /* opens this node paid for other nodes' users */
} sv_xmsg_stats;
void sv_xmsg_get_stats(sv_xmsg *x, sv_xmsg_stats *st);

#endif
