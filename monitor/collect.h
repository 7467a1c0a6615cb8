/* collect.h -- the monitor's merge logic: per-instance cumulative reports in,
 * one merged row per second out.  Pure: no sockets, no clock, no I/O; the
 * caller passes "now" and receives rows through a callback, so every rule
 * below is unit-tested (tests/monitor/test_collect.c).
 *
 * The rules, and why:
 *  - A source is (role, instance).  Its counters are cumulative since the
 *    process started (boot_id), so a rate is a difference between two of its
 *    samples.  Each source keeps a small ring of samples by second and a
 *    `base`: the values already accounted for in emitted rows.
 *  - A second is emitted only once `settle` seconds have passed, so reports
 *    that arrive late or out of order still count.  A report for a second
 *    already emitted is dropped (`late`): its counts are not lost, the next
 *    report of that source carries them (cumulative counters), only its
 *    latency histogram is.
 *  - The same (source, boot, second) twice is a duplicate and ignored,
 *    unless the second copy has larger counters: then it is a later
 *    snapshot of that second (a sender's last report at exit) and replaces
 *    the first.
 *  - A report missing for second t while a later one (same boot) is already
 *    there is filled by linear interpolation between base and that later
 *    sample, so one lost datagram makes neither a dip nor a spike and the
 *    totals still add up exactly.
 *  - A new boot_id (or any counter going down) is a restart: the new process
 *    counted from zero, so its first sample is its delta.  A source the
 *    monitor has never seen (the monitor itself just started) only sets its
 *    base: its totals cover an unknown time and would be a huge fake spike.
 *  - Counts that span more than `max_gap` seconds (a source silent for long,
 *    a restart long after the old process went quiet) re-base without being
 *    counted, for the same reason: no single second may absorb a minute.
 *  - Rates never go negative: only ever an unsigned difference of values
 *    known to be ordered.
 */
#ifndef MON_COLLECT_H
#define MON_COLLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hist.h"
#include "hongbao.pb-c.h"

/* Cumulative counters of a Report: name, Report field, meaning. */
#define MON_COUNTERS(X)                                                            \
    X(requests, requests, "client: shakes sent; server: shakes received")         \
    X(replies, replies, "client: shake replies received; server: replies sent")   \
    X(wins, wins, "shakes that won a packet")                                     \
    X(losses, losses, "shakes that did not win (lose, not yet, rate limited)")    \
    X(created, packets_created, "packets produced (server, both flows)")          \
    X(won, packets_won, "packets granted by shakes (server)")                     \
    X(amount, amount_won, "cents granted (shake wins + opened shares)")           \
    X(notices, notices, "send-flow notices (server: delivered; client: received)") \
    X(opens, opens, "successful opens of send-flow packets")                      \
    X(errors, errors, "errors (server: connections closed with an error)")        \
    X(chats, chats, "chat messages")                                              \
    X(drops, reports_dropped, "reports the sender could not send")

enum mon_ctr {
#define X(name, field, help) MON_##name,
    MON_COUNTERS(X)
#undef X
    MON_NCTR
};

enum mon_role { MON_SERVER = 0, MON_CLIENT = 1, MON_NROLES = 2 };

/* Seconds of samples each source keeps, and of merged histograms: must exceed
 * settle + max_future + 1 (checked by mon_collect_new). */
#define MON_WINDOW 64
#define MON_INSTANCE_MAX 64
/* Server instances with a series of their own (cluster nodes), in the order
 * first seen; a node keeps its slot through restarts and evictions. */
#define MON_NODES_MAX 16

/* One node's part of a merged second. */
typedef struct mon_node_row {
    uint64_t requests, replies; /* counts attributed to this second */
    uint64_t conns;             /* gauge: logged-in connections */
} mon_node_row;

/* One merged second. */
typedef struct mon_row {
    int64_t second;
    uint32_t reported[MON_NROLES]; /* instances whose own report for this second was merged */
    uint32_t filled[MON_NROLES];   /* instances interpolated because their report was missing */
    uint32_t rebased[MON_NROLES];  /* instances that only set their base: first seen, or back
                                      after more than max_gap seconds (no rates from them) */
    uint64_t conns[MON_NROLES];    /* gauge: logged-in connections */
    uint64_t d[MON_NROLES][MON_NCTR]; /* counts attributed to this second */
    uint64_t target_qps;           /* sum of the clients' target rates (each reports its share) */
    uint64_t lat_count, lat_p50, lat_p90, lat_p99, lat_max; /* client reply latency, us */
    uint32_t nnodes;                  /* server instances with a slot so far (node[] below) */
    mon_node_row node[MON_NODES_MAX]; /* per server instance, by slot (mon_collect_node_name) */
} mon_row;

/* What happened to reports (the monitor's own counters). */
#define MON_EVENTS(X)                                                                   \
    X(received, "datagrams received")                                                   \
    X(accepted, "reports stored")                                                       \
    X(duplicate, "the same (instance, boot, second) again: ignored")                    \
    X(updated, "a later snapshot of a second already held (last report at exit)")     \
    X(late, "reports for a second already emitted: ignored (counts carried by the next)") \
    X(future, "reports too far ahead of the monitor's clock: ignored")                  \
    X(bad, "datagrams that are not a valid report")                                     \
    X(conflict, "two boots of one instance for the same second: the second ignored")    \
    X(full, "reports from new instances refused: instance table full")                  \
    X(baselines, "instances first seen (their totals only set a base)")                 \
    X(restarts, "restarts detected (new boot_id or counters going down)")               \
    X(filled, "missing reports filled by interpolation")                                \
    X(rebased, "gaps longer than max_gap: counts over the gap not attributed")          \
    X(evicted, "instances forgotten after a long silence")

typedef struct mon_events {
#define X(name, help) uint64_t name;
    MON_EVENTS(X)
#undef X
} mon_events;

/* A source as seen from outside (for /metrics, the JSON and the summary). */
typedef struct mon_source_info {
    int role;
    const char *instance;
    uint64_t boot_id;
    int64_t last_second; /* latest second reported */
    uint64_t conns;      /* from the latest report */
    uint64_t restarts;
} mon_source_info;

/* A report, decoded: what mon_collect_add needs from an hb.Report. */
typedef struct mon_report {
    int role; /* MON_SERVER or MON_CLIENT */
    const char *instance;
    uint64_t boot_id;
    int64_t second;
    uint64_t c[MON_NCTR];
    uint64_t conns, target_qps;
    const uint32_t *lat_index; /* sparse histogram delta, buckets of proto/hist.h */
    const uint64_t *lat_count;
    size_t lat_n;
} mon_report;

typedef struct mon_collect mon_collect;

typedef struct mon_config {
    int settle;     /* seconds a second stays open for late reports */
    int max_gap;    /* longest span of counts attributed to one second */
    int max_future; /* reports this far ahead of now are accepted */
    int evict;      /* forget a source silent this long (seconds) */
    int max_sources;
} mon_config;

/* Called once per emitted row, in increasing second order.  `lat` is the
 * merged client histogram of that second. */
typedef void (*mon_emit_fn)(void *ctx, const mon_row *row, const hb_hist *lat);

/* NULL with a message in err when the configuration cannot work. */
mon_collect *mon_collect_new(const mon_config *cfg, mon_emit_fn emit, void *ctx, char *err, size_t errlen);
void mon_collect_free(mon_collect *c);

/* Convert a decoded hb.Report; -1 if it is not one the monitor can use
 * (unknown role).  The result points into rep. */
int mon_report_from_pb(const Hb__Report *rep, mon_report *out);

/* Take one report that arrived at unix second `now`. */
void mon_collect_add(mon_collect *c, const mon_report *r, int64_t now);
/* Count a datagram that could not be decoded. */
void mon_collect_bad(mon_collect *c);

/* Emit every second that is settled at `now` (second <= now - settle). */
void mon_collect_advance(mon_collect *c, int64_t now);
/* Emit everything still pending, settled or not (at exit). */
void mon_collect_flush(mon_collect *c);

/* Read-only views. */
const mon_events *mon_collect_events(const mon_collect *c);
/* Counts attributed so far, per role (the sum of all emitted rows). */
const uint64_t *mon_collect_totals(const mon_collect *c, int role);
/* Every client latency observation of every emitted second. */
const hb_hist *mon_collect_hist(const mon_collect *c);
/* The latest emitted row, or NULL before the first. */
const mon_row *mon_collect_last(const mon_collect *c);
size_t mon_collect_nsources(const mon_collect *c);
/* Server instances with a slot (at most MON_NODES_MAX), and slot i's name. */
size_t mon_collect_nnodes(const mon_collect *c);
const char *mon_collect_node_name(const mon_collect *c, size_t i);
void mon_collect_source(const mon_collect *c, size_t i, mon_source_info *out);

const char *mon_role_name(int role);
const char *mon_ctr_name(int ctr);
const char *mon_ctr_help(int ctr);

#endif
