/* stats.h -- counters.  Each SET owns one sv_set_stats and is its only
 * writer (HB_INC: no lock, no atomic read-modify-write); the main thread reads
 * them once a second for the stats file, the monitor report and --progress. */
#ifndef SV_STATS_H
#define SV_STATS_H

#include <stdio.h>
#include "frame.h"
#include "util.h"

/* name, meaning (shown in the stats file header comments and README) */
#define SV_SET_COUNTERS(X)                                                        \
    X(accepted, "connections accepted")                                           \
    X(read_at_accept, "connections whose first frame was read at accept, before any poll") \
    X(closed, "connections closed")                                               \
    X(logins, "successful logins")                                                \
    X(replaced, "sessions taken over by a newer login of the same uid")           \
    X(frames, "frames received")                                                  \
    X(shakes, "shake requests")                                                   \
    X(replies, "shake replies sent")                                              \
    X(wins, "shakes that won a packet")                                           \
    X(losses, "shakes answered lose")                                             \
    X(not_yet, "shakes answered not-yet (before the event starts)")              \
    X(rate_limited, "shakes answered rate-limited")                               \
    X(retries, "shakes resent after a reconnect (retry flag)")                    \
    X(retry_replayed, "retried shakes answered from the grant record")            \
    X(amount_won, "cents granted by shakes")                                      \
    X(opens, "open requests")                                                     \
    X(opens_ok, "opens that paid a share")                                        \
    X(opens_rejected, "opens refused (not recipient, again, unknown packet)")     \
    X(share_amount, "cents paid by opens")                                        \
    X(notices, "send-flow notices delivered to a connection")                     \
    X(chats_in, "chat messages received from users")                              \
    X(chat_limited, "chat messages dropped: over --chat-limit per uid per second")\
    X(chats_out, "chat messages delivered to users")                              \
    X(rerouted, "inbox messages whose user had moved, routed again")              \
    X(route_dropped, "routed messages dropped (inbox full, parking full, loops)") \
    X(refused_full, "connections refused: --max-conns reached")                   \
    X(refused_addr, "connections refused: --addr-limit reached")                  \
    X(emfile, "connections accepted and closed at once: descriptor table full")                                \
    X(pool_exhausted, "connections closed: buffer pool exhausted")                \
    X(redirected, "cluster: logins redirected to the uid's owner node")           \
    X(rehomed, "cluster: sessions redirected after a membership change")          \
    X(standby_logins, "cluster: standby logins held (hb-client --standby)")      \
    X(promoted, "cluster: standby connections promoted to their uid's session (the owner left)") \
    X(opens_remote, "cluster: opens forwarded to the node that made the packet")  \
    X(open_replies_lost, "cluster: open replies whose connection had gone")       \
    X(bytes_in, "bytes read")                                                     \
    X(bytes_out, "bytes written")

typedef struct sv_set_stats {
#define X(name, help) hb_counter name;
    SV_SET_COUNTERS(X)
#undef X
    hb_counter err[HB_ERR_N]; /* connections closed with each ErrorCode */
    hb_counter conns;         /* gauge: open connections */
    hb_counter active;        /* gauge: logged-in connections */
    hb_counter standby;       /* gauge: standby connections held (standby.c) */
    hb_counter deferred;      /* gauge: replies waiting for a journal commit */
    hb_counter queued;        /* gauge: packets in this SET's queue */
    hb_counter pool_chunks;   /* gauge: pool chunks held (partial input, stuck output) */
    hb_counter login_last_us; /* wall-clock µs (loop time) of the latest login or promotion: when the
                               * last of a dead node's users was back, to the loop turn, whatever the
                               * stats file's once-a-second lag (the 1M kill runs' watch) */
} sv_set_stats;

/* Sum of all SETs plus server-wide figures, as the main thread sees them. */
typedef struct sv_totals {
#define X(name, help) uint64_t name;
    SV_SET_COUNTERS(X)
#undef X
    uint64_t err[HB_ERR_N];
    uint64_t conns, active, standby, deferred, queued, pool_chunks;
    uint64_t login_last_us; /* the latest over the SETs */
} sv_totals;

struct sv_server;
void sv_stats_sum(struct sv_server *s, sv_totals *t);
/* The stats file: `name value` lines, rewritten atomically. */
void sv_stats_write(struct sv_server *s, const sv_totals *t, const char *path, bool final);
/* Monitor report + one --progress line; called once a second by main. */
void sv_stats_tick(struct sv_server *s, int64_t second);
/* One last monitor report at exit (counts since the last tick). */
void sv_stats_final_report(struct sv_server *s);
/* The final summary line on stderr. */
void sv_stats_summary(struct sv_server *s);

#endif
