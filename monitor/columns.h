/* columns.h -- the columns of a merged second, in one place: the TSV log's
 * header and lines, the dashboard's JSON and the README all come from this
 * table, so they cannot disagree.  Rates ("_qps", "_ps") are counts
 * attributed to that one second (see collect.h for how). */
#ifndef MON_COLUMNS_H
#define MON_COLUMNS_H

#include <stdint.h>
#include "collect.h"

#define S_ MON_SERVER
#define C_ MON_CLIENT
/* name, value (from const mon_row *r), meaning */
#define MON_COLUMNS(X)                                                                                  \
    X(second, (uint64_t)r->second, "unix second stamped on the merged reports (senders' clock); the counts are those of the second ending there")            \
    X(servers, r->reported[S_] + r->filled[S_] + r->rebased[S_], "server processes with figures for this second") \
    X(clients, r->reported[C_] + r->filled[C_] + r->rebased[C_], "client processes with figures for this second") \
    X(filled, r->filled[S_] + r->filled[C_], "processes whose report for this second was lost and was interpolated") \
    X(server_conns, r->conns[S_], "logged-in connections at the server(s)")                              \
    X(client_conns, r->conns[C_], "logged-in connections the clients hold")                             \
    X(target_qps, r->target_qps, "shake rate the clients are told to apply, all together (sum of their shares)")                 \
    X(client_send_qps, r->d[C_][MON_requests], "shakes sent by all clients, per second")               \
    X(client_reply_qps, r->d[C_][MON_replies], "shake replies received by all clients, per second")    \
    X(server_recv_qps, r->d[S_][MON_requests], "shakes received by the server(s), per second")         \
    X(server_reply_qps, r->d[S_][MON_replies], "shake replies sent by the server(s), per second")      \
    X(wins_ps, r->d[C_][MON_wins], "winning replies received by the clients, per second")              \
    X(created_ps, r->d[S_][MON_created], "packets created by the server (both flows), per second")     \
    X(won_ps, r->d[S_][MON_won], "packets granted to shakes by the server, per second")                \
    X(amount_ps, r->d[S_][MON_amount], "cents granted by the server (wins + opened shares), per second") \
    X(notices_ps, r->d[S_][MON_notices], "send-flow notices delivered by the server, per second")      \
    X(opens_ps, r->d[S_][MON_opens], "send-flow shares opened (paid) by the server, per second")       \
    X(server_errors_ps, r->d[S_][MON_errors], "server: connections closed with an error, per second")  \
    X(client_errors_ps, r->d[C_][MON_errors], "client: error frames, protocol errors, failed connects, per second") \
    X(lat_count, r->lat_count, "replies in this second's merged client latency histogram")             \
    X(lat_p50_us, r->lat_p50, "reply latency, 50th percentile (microseconds)")                         \
    X(lat_p90_us, r->lat_p90, "reply latency, 90th percentile (microseconds)")                         \
    X(lat_p99_us, r->lat_p99, "reply latency, 99th percentile (microseconds)")                         \
    X(lat_max_us, r->lat_max, "reply latency, largest (microseconds)")                                 \
    X(reports_dropped_ps, r->d[S_][MON_drops] + r->d[C_][MON_drops], "reports the senders could not send, per second")

enum {
#define X(name, expr, help) MON_COL_##name,
    MON_COLUMNS(X)
#undef X
    MON_NCOLS
};

extern const char *const mon_col_name[MON_NCOLS];
extern const char *const mon_col_help[MON_NCOLS];

/* All columns of a row, in table order. */
void mon_row_values(const mon_row *r, uint64_t out[MON_NCOLS]);

#endif
