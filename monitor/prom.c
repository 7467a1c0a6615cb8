/* prom.c -- Prometheus text format.
 *
 * Counters are the monitor's merged totals (collect.c), not the senders' raw
 * values: they start at zero with the monitor and only ever grow, even when
 * a server or client restarts and its own counters fall back to zero, which
 * is exactly what Prometheus' rate() expects.  They move once a second, when
 * a second is settled, so /metrics agrees with the TSV log. */
#include "prom.h"

#include <stdio.h>
#include "hist.h"

/* Prometheus name of each collect.h counter (without _total). */
static const char *const prom_names[MON_NCTR] = {
    [MON_requests] = "hongbao_requests",
    [MON_replies] = "hongbao_replies",
    [MON_wins] = "hongbao_wins",
    [MON_losses] = "hongbao_losses",
    [MON_created] = "hongbao_packets_created",
    [MON_won] = "hongbao_packets_won",
    [MON_amount] = "hongbao_amount_cents",
    [MON_notices] = "hongbao_notices",
    [MON_opens] = "hongbao_opens",
    [MON_errors] = "hongbao_errors",
    [MON_chats] = "hongbao_chats",
    [MON_drops] = "hongbao_reports_dropped",
};

/* Decades of 1-2.5-5, 100 us .. 10 s.  hb_hist_count_le is exact at bucket
 * tops and otherwise leaves out the one bucket straddling the bound, i.e.
 * values within 0.8% above it: well inside what these bounds resolve. */
const uint64_t mon_prom_le_us[] = {100,    250,    500,     1000,    2500,    5000,    10000,   25000,  50000,
                                   100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
const int mon_prom_nle = (int)(sizeof mon_prom_le_us / sizeof mon_prom_le_us[0]);

static void head(mon_buf *b, const char *name, const char *type, const char *help)
{
    mon_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void mon_prom_render(mon_buf *b, const mon_collect *c, int64_t start_time)
{
    const mon_events *ev = mon_collect_events(c);
    const mon_row *last = mon_collect_last(c);

    head(b, "hongbao_monitor_datagrams_total", "counter", "Report datagrams received by the monitor, by outcome.");
#define OUTCOME(name) mon_buf_printf(b, "hongbao_monitor_datagrams_total{outcome=\"" #name "\"} %llu\n", \
                                     (unsigned long long)ev->name);
    OUTCOME(accepted) OUTCOME(duplicate) OUTCOME(late) OUTCOME(future) OUTCOME(bad) OUTCOME(conflict) OUTCOME(full)
#undef OUTCOME
    head(b, "hongbao_monitor_events_total", "counter",
         "Merge events: first seen, restarts, reports filled by interpolation, gaps re-based, instances evicted.");
#define EVENT(name) mon_buf_printf(b, "hongbao_monitor_events_total{event=\"" #name "\"} %llu\n", \
                                   (unsigned long long)ev->name);
    EVENT(baselines) EVENT(restarts) EVENT(filled) EVENT(rebased) EVENT(evicted)
#undef EVENT
    head(b, "hongbao_monitor_start_time_seconds", "gauge", "Unix time the monitor started.");
    mon_buf_printf(b, "hongbao_monitor_start_time_seconds %lld\n", (long long)start_time);
    head(b, "hongbao_monitor_last_second", "gauge", "Latest merged second (unix time), 0 before the first.");
    mon_buf_printf(b, "hongbao_monitor_last_second %lld\n", (long long)(last ? last->second : 0));

    head(b, "hongbao_instances", "gauge", "Processes with figures in the latest merged second.");
    for (int r = 0; r < MON_NROLES; r++)
        mon_buf_printf(b, "hongbao_instances{role=\"%s\"} %u\n", mon_role_name(r),
                       last ? last->reported[r] + last->filled[r] + last->rebased[r] : 0);
    head(b, "hongbao_connections", "gauge", "Logged-in connections in the latest merged second.");
    for (int r = 0; r < MON_NROLES; r++)
        mon_buf_printf(b, "hongbao_connections{role=\"%s\"} %llu\n", mon_role_name(r),
                       (unsigned long long)(last ? last->conns[r] : 0));
    head(b, "hongbao_target_qps", "gauge", "Shake rate the clients apply, all together (sum of their shares).");
    mon_buf_printf(b, "hongbao_target_qps %llu\n", (unsigned long long)(last ? last->target_qps : 0));

    for (int i = 0; i < MON_NCTR; i++) {
        char name[96], help[160];
        snprintf(name, sizeof name, "%s_total", prom_names[i]);
        snprintf(help, sizeof help, "Merged since the monitor started: %s.", mon_ctr_help(i));
        head(b, name, "counter", help);
        for (int r = 0; r < MON_NROLES; r++)
            mon_buf_printf(b, "%s{role=\"%s\"} %llu\n", name, mon_role_name(r),
                           (unsigned long long)mon_collect_totals(c, r)[i]);
    }

    size_t n = mon_collect_nsources(c);
    head(b, "hongbao_instance_last_second", "gauge", "Latest second each known process reported (unix time).");
    for (size_t i = 0; i < n; i++) {
        mon_source_info s;
        mon_collect_source(c, i, &s);
        mon_buf_printf(b, "hongbao_instance_last_second{role=\"%s\",instance=\"", mon_role_name(s.role));
        mon_buf_prom_label(b, s.instance);
        mon_buf_printf(b, "\"} %lld\n", (long long)s.last_second);
    }
    head(b, "hongbao_instance_connections", "gauge", "Logged-in connections in each process's latest report.");
    for (size_t i = 0; i < n; i++) {
        mon_source_info s;
        mon_collect_source(c, i, &s);
        mon_buf_printf(b, "hongbao_instance_connections{role=\"%s\",instance=\"", mon_role_name(s.role));
        mon_buf_prom_label(b, s.instance);
        mon_buf_printf(b, "\"} %llu\n", (unsigned long long)s.conns);
    }

    const hb_hist *h = mon_collect_hist(c);
    head(b, "hongbao_reply_latency_seconds", "histogram",
         "Shake reply latency seen by the clients (all merged seconds).");
    for (int i = 0; i < mon_prom_nle; i++)
        mon_buf_printf(b, "hongbao_reply_latency_seconds_bucket{le=\"%g\"} %llu\n", (double)mon_prom_le_us[i] / 1e6,
                       (unsigned long long)hb_hist_count_le(h, mon_prom_le_us[i]));
    mon_buf_printf(b, "hongbao_reply_latency_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)h->count);
    mon_buf_printf(b, "hongbao_reply_latency_seconds_sum %.6f\n", (double)h->sum / 1e6);
    mon_buf_printf(b, "hongbao_reply_latency_seconds_count %llu\n", (unsigned long long)h->count);
}
