/* stats.h -- the client's counters and what is made of them: the stats file,
 * the monitor report, the --progress line, GET /stats and the summary.
 *
 * Each worker owns one cl_stats and is its only writer (HB_INC: no lock, no
 * atomic read-modify-write); the main thread and the control thread only read
 * them.  Latencies and clock samples come to main once a second through
 * cl_worker_collect; stats.c keeps the merged histograms and the clock-offset
 * estimate, under one mutex because the control thread reads them too. */
#ifndef CL_STATS_H
#define CL_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "frame.h"
#include "util.h"

/* name, meaning */
#define CL_COUNTERS(X)                                                   \
    X(connects, "connect() calls")                                       \
    X(connect_fail, "connects that failed or timed out")                 \
    X(fastopen_connects, "TCP Fast Open connects: the Login left in the SYN (--fastopen, with the server's cookie)") \
    X(connected_at_once, "connects already complete when connect() returned (loopback): no wait for writable") \
    X(logins, "LoginOk received")                                        \
    X(closes, "connections lost (closed by the server or reset)")        \
    X(shakes, "shakes sent (first tries)")                               \
    X(retries, "shakes resent after a reconnect")                        \
    X(notices_left, "notices that came while the run was ending: not opened (the server tells again at the next login)") \
    X(retries_held, "unanswered shakes not resent: the session is on another node than the one they went to") \
    X(replies, "shake replies received")                                 \
    X(wins, "shakes won")                                                \
    X(losses, "shakes lost")                                             \
    X(not_yet, "shakes answered not-yet")                                \
    X(rate_limited, "shakes answered rate-limited")                      \
    X(stale, "replies that matched no outstanding shake")                \
    X(skipped_busy, "due shakes skipped: the previous one still waits")  \
    X(skipped_offline, "due shakes skipped: the user was not connected") \
    X(amount_won, "cents won by shakes")                                 \
    X(notices, "send-flow notices received")                             \
    X(opens, "opens sent")                                               \
    X(opens_ok, "opens that paid")                                       \
    X(opens_again, "opens answered already-opened")                      \
    X(opens_rejected, "opens refused (not recipient / unknown)")         \
    X(share_amount, "cents received from opens")                         \
    X(chats_sent, "chat messages sent")                                  \
    X(chats_recv, "chat messages received")                              \
    X(error_frames, "Error frames received from the server")             \
    X(redirects, "cluster: Redirect frames followed to another node")    \
    X(redirect_loops, "cluster: redirects past 3 in a row: backed off")   \
    X(members_lists, "cluster: member lists received and taken (LoginOk/Redirect)") \
    X(members_bad, "cluster: member lists ignored as malformed") \
    X(members_lagging, "cluster: member lists not taken: they still name a suspect ours has dropped") \
    X(direct_connects, "cluster: connects straight to a uid's owner by the member list") \
    X(suspects, "cluster: members suspected dead (a connection closed or refused without Redirect or Error)") \
    X(redirects_deferred, "cluster: Redirects to a suspected member not followed (backed off)") \
    X(moved, "cluster: sessions moved because a member list dropped their node") \
    X(standby_logins, "cluster: standby logins held (--standby)") \
    X(promoted, "cluster: standby connections promoted to the user's session (its owner left)") \
    X(standby_waits, "cluster: reconnects put off for 1 s: the new owner holds the user's standby and will promote it") \
    X(protocol_errors, "frames the client could not accept")             \
    X(bytes_in, "bytes read")                                            \
    X(bytes_out, "bytes written")                                        \
    X(wakeups, "worker loop wake-ups (returns from epoll_wait)")         \
    X(ticks, "worker scheduler ticks")

typedef struct cl_stats {
#define X(name, help) hb_counter name;
    CL_COUNTERS(X)
#undef X
    hb_counter err[HB_ERR_N]; /* Error frames by ErrorCode; [0]: a code this build does not know */
    hb_counter connected;     /* gauge: TCP connected */
    hb_counter active;        /* gauge: logged in */
    hb_counter standby;       /* gauge: standby connections logged in (--standby) */
    hb_counter outstanding;   /* gauge: shakes and opens waiting for a reply */
} cl_stats;

/* The sum over all workers, as the main or control thread sees it. */
typedef struct cl_totals {
#define X(name, help) uint64_t name;
    CL_COUNTERS(X)
#undef X
    uint64_t err[HB_ERR_N];
    uint64_t connected, active, standby, outstanding;
} cl_totals;

/* The slot of an ErrorCode in cl_stats.err. */
static inline int cl_err_slot(unsigned code)
{
    return code > 0 && code < HB_ERR_N ? (int)code : 0;
}

struct cl_client;
void cl_stats_sum(struct cl_client *cl, cl_totals *t);
/* Main, once a second: merge the workers' latencies and take the best clock
 * sample of the last seconds as the offset estimate. */
void cl_stats_collect(struct cl_client *cl);
/* Main, once a second after collect: stats file, monitor report, --progress. */
void cl_stats_tick(struct cl_client *cl, int64_t second);
/* JSON of the current figures (GET /stats; control thread). */
size_t cl_stats_json(struct cl_client *cl, char *buf, size_t cap);
/* At the end: the final stats file and the summary line on stderr. */
void cl_stats_summary(struct cl_client *cl);

/* At the end, after the summary: the run's latency histogram, raw buckets
 * in hb_hist_encode's text form (the fleet agent ships it to Redis). */
int cl_stats_write_hist(struct cl_client *cl, const char *path, char *err, size_t errlen);

#endif
