/* stats.c -- reading the SETs' counters once a second: the stats file, the
 * monitor report, the --progress line and the final summary. */
#include "stats.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "lockstat.h"
#include "statsfile.h"
#include "server.h"
#include "set.h"
#include "xmsg.h"

void sv_stats_sum(sv_server *s, sv_totals *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < s->nsets; i++) {
        sv_set_stats *st = &s->sets[i]->st;
#define X(name, help) t->name += HB_GET(st->name);
        SV_SET_COUNTERS(X)
#undef X
        for (int e = 0; e < HB_ERR_N; e++)
            t->err[e] += HB_GET(st->err[e]);
        t->conns += HB_GET(st->conns);
        t->active += HB_GET(st->active);
        t->standby += HB_GET(st->standby);
        t->deferred += HB_GET(st->deferred);
        t->queued += HB_GET(st->queued);
        t->pool_chunks += HB_GET(st->pool_chunks);
        if (HB_GET(st->login_last_us) > t->login_last_us)
            t->login_last_us = HB_GET(st->login_last_us);
    }
    if (s->xmsg) { /* opens this node paid for users of other nodes (its journal has them) */
        sv_xmsg_stats xs;
        sv_xmsg_get_stats(s->xmsg, &xs);
        t->opens_ok += xs.opens_ok;
        t->share_amount += xs.share_amount;
    }
}

static uint64_t err_total(const sv_totals *t)
{
    uint64_t n = 0;
    for (int e = 1; e < HB_ERR_N; e++)
        n += t->err[e];
    return n;
}

void sv_stats_write(sv_server *s, const sv_totals *t, const char *path, bool final)
{
    if (!path || !*path)
        return;
    static char mem[1 << 16];
    hb_statsbuf b;
    char name[64];
    hb_sb_init(&b, mem, sizeof mem);
    hb_sb_comment(&b, "hb-server counters: 'name value', rewritten every second%s", final ? " (final)" : "");
    hb_sb_u64(&b, "final", final);
    hb_sb_i64(&b, "time_us", hb_now_us());
    hb_sb_f(&b, "uptime_s", (double)(hb_now_us() - s->start_us) / 1e6);
    hb_sb_u64(&b, "sets", (uint64_t)s->nsets);
    hb_sb_u64(&b, "max_conns_per_set", (uint64_t)s->cfg.max_conns);
#define X(n, help) hb_sb_u64(&b, #n, t->n);
    SV_SET_COUNTERS(X)
#undef X
    hb_sb_u64(&b, "conns", t->conns);
    hb_sb_u64(&b, "active", t->active);
    hb_sb_u64(&b, "standby", t->standby);
    hb_sb_u64(&b, "deferred", t->deferred);
    hb_sb_u64(&b, "queued", t->queued);
    hb_sb_u64(&b, "pool_chunks", t->pool_chunks);
    hb_sb_u64(&b, "login_last_us", t->login_last_us);
    for (int e = 1; e < HB_ERR_N; e++) {
        snprintf(name, sizeof name, "err_%s", hb_error_name(e));
        hb_sb_u64(&b, name, t->err[e]);
    }
    hb_sb_u64(&b, "errors", err_total(t));
    hb_sb_u64(&b, "made_shake", HB_GET(s->prod.made_shake));
    hb_sb_u64(&b, "made_send", HB_GET(s->prod.made_send));
    hb_sb_u64(&b, "producer_stalls", HB_GET(s->prod.stalls));
    hb_sb_u64(&b, "producer_late_us", HB_GET(s->prod.late_us));
    hb_sb_u64(&b, "producer_late_5ms", HB_GET(s->prod.late_5ms));
    hb_sb_u64(&b, "producer_late_max_us", HB_GET(s->prod.late_max_us));
    hb_sb_u64(&b, "event_started", atomic_load(&s->event_started));
    hb_sb_u64(&b, "cycle", (uint64_t)atomic_load(&s->cycles_started));
    hb_sb_u64(&b, "journal_appends", atomic_load(&s->journal.appends));
    hb_sb_u64(&b, "journal_batches", atomic_load(&s->journal.batches));
    hb_sb_u64(&b, "journal_bytes", atomic_load(&s->journal.bytes));
    hb_sb_u64(&b, "journal_max_batch", atomic_load(&s->journal.max_batch));
    hb_sb_u64(&b, "journal_sync_us", atomic_load(&s->journal.sync_us));
    hb_sb_u64(&b, "journal_sync_max_us", atomic_load(&s->journal.sync_max_us));
    /* Time threads spent blocked on one another (lockstat.h): all threads,
     * by kind, and the producer's own share. */
    hb_sb_u64(&b, "lock_waits", sv_lock_total_waits());
    hb_sb_u64(&b, "lock_wait_us", sv_lock_total_wait_us());
    for (int k = 0; k < SV_LK_N; k++) {
        snprintf(name, sizeof name, "lock_wait_%s_us", sv_lock_kind_name[k]);
        hb_sb_u64(&b, name, atomic_load(&sv_lock_kinds[k].wait_ns) / 1000);
    }
    hb_sb_u64(&b, "producer_waits", atomic_load(&sv_lock_roles[SV_ROLE_PRODUCER].waits));
    hb_sb_u64(&b, "producer_wait_us", sv_lock_role_wait_us(SV_ROLE_PRODUCER));
    hb_sb_u64(&b, "replayed_wins", s->replayed_wins);
    hb_sb_u64(&b, "replayed_win_amount", s->replayed_win_amount);
    hb_sb_u64(&b, "replayed_shares", s->replayed_shares);
    hb_sb_u64(&b, "replayed_share_amount", s->replayed_share_amount);
    hb_sb_u64(&b, "online", atomic_load(&s->dir.online));
    hb_sb_u64(&b, "parked_now", atomic_load(&s->dir.pending));
    hb_sb_u64(&b, "parked", atomic_load(&s->dir.parked));
    hb_sb_u64(&b, "parked_delivered", atomic_load(&s->dir.delivered));
    hb_sb_u64(&b, "renotified", HB_GET(s->renotices));
    hb_sb_u64(&b, "parked_dropped", atomic_load(&s->dir.dropped));
    hb_sb_u64(&b, "route_drops", sv_route_drops(s));
    if (s->cluster) {
        sv_cluster_stats cs;
        sv_cluster_get_stats(s->cluster, &cs);
        hb_sb_u64(&b, "cluster_gen", cs.gen);
        hb_sb_u64(&b, "cluster_members", cs.members);
        hb_sb_u64(&b, "cluster_refreshes", cs.refreshes);
        hb_sb_u64(&b, "cluster_reconnects", cs.reconnects);
        hb_sb_u64(&b, "cluster_redis_errors", cs.redis_errors);
        hb_sb_u64(&b, "cluster_flaps", cs.flaps);
        hb_sb_u64(&b, "cluster_gone", cs.gone);
        hb_sb_u64(&b, "cluster_live_closed", cs.live_closed);
        hb_sb_u64(&b, "cluster_live_dials", cs.live_dials);
        hb_sb_u64(&b, "cluster_live_closed_us", (uint64_t)cs.live_closed_us);
        hb_sb_u64(&b, "cluster_gone_us", (uint64_t)cs.gone_us);
        hb_sb_u64(&b, "cluster_redis_up", cs.redis_up);
    }
    if (s->xmsg) {
        sv_xmsg_stats xs;
        sv_xmsg_get_stats(s->xmsg, &xs);
        const struct {
            const char *name;
            uint64_t v;
        } x[] = {{"xmsg_xadd", xs.xadd},
                 {"xmsg_xadd_failed", xs.xadd_failed},
                 {"xmsg_xread", xs.xread},
                 {"xmsg_xread_entries", xs.xread_entries},
                 {"xmsg_xack", xs.xack},
                 {"xmsg_acked", xs.acked},
                 {"xmsg_duplicates", xs.duplicates},
                 {"xmsg_opens_forwarded", xs.opens_forwarded},
                 {"xmsg_opens_served", xs.opens_served},
                 {"xmsg_opens_ok", xs.opens_ok},
                 {"xmsg_share_amount", xs.share_amount},
                 {"xmsg_open_replies", xs.open_replies},
                 {"xmsg_queue_full", xs.queue_full},
                 {"xmsg_dropped", xs.dropped},
                 {"xmsg_redis_commands", xs.commands}};
        for (size_t i = 0; i < HB_ARRAY_LEN(x); i++)
            hb_sb_u64(&b, x[i].name, x[i].v);
    }
    hb_sb_u64(&b, "reports_sent", HB_GET(s->reporter.sent));
    hb_sb_u64(&b, "reports_dropped", HB_GET(s->reporter.dropped));
    for (int i = 0; i < s->nsets; i++) {
        sv_set_stats *st = &s->sets[i]->st;
        const struct {
            const char *what;
            uint64_t v;
        } per[] = {{"conns", HB_GET(st->conns)},     {"shakes", HB_GET(st->shakes)}, {"replies", HB_GET(st->replies)},
                   {"wins", HB_GET(st->wins)},       {"losses", HB_GET(st->losses)},
                   {"dealt", HB_GET(s->prod.dealt[i])}};
        for (size_t k = 0; k < HB_ARRAY_LEN(per); k++) {
            snprintf(name, sizeof name, "set.%d.%s", i, per[k].what);
            hb_sb_u64(&b, name, per[k].v);
        }
    }
    if (hb_sb_write(&b, path) < 0)
        hb_log("warning: cannot write stats file %s: %s", path, strerror(errno));
}

static sv_totals prev;
static int64_t prev_second;

void sv_stats_tick(sv_server *s, int64_t second)
{
    sv_totals t;
    sv_stats_sum(s, &t);
    sv_stats_write(s, &t, s->cfg.stats_file, false);

    Hb__Report rep = HB__REPORT__INIT;
    rep.connections = t.active;
    rep.requests = t.shakes;
    rep.replies = t.replies;
    rep.wins = t.wins;
    rep.losses = t.losses + t.not_yet + t.rate_limited;
    rep.packets_created = HB_GET(s->prod.made_shake) + HB_GET(s->prod.made_send);
    rep.packets_won = t.wins;
    rep.amount_won = t.amount_won + t.share_amount;
    rep.notices = t.notices;
    rep.opens = t.opens_ok;
    rep.errors = err_total(&t);
    rep.chats = t.chats_out;
    hb_reporter_send(&s->reporter, &rep, second, NULL);

    if (s->cfg.progress && prev_second) {
        double dt = (double)(second - prev_second);
        if (dt <= 0)
            dt = 1;
        hb_log("%5llds conns %llu  shakes/s %.0f  wins/s %.0f  made %llu+%llu  queued %llu  opens/s %.0f  errors %llu",
               (long long)((hb_now_us() - s->start_us) / 1000000), (unsigned long long)t.active,
               (double)(t.shakes - prev.shakes) / dt, (double)(t.wins - prev.wins) / dt,
               (unsigned long long)HB_GET(s->prod.made_shake), (unsigned long long)HB_GET(s->prod.made_send),
               (unsigned long long)t.queued, (double)(t.opens_ok - prev.opens_ok) / dt,
               (unsigned long long)err_total(&t));
    }
    prev = t;
    prev_second = second;
}

void sv_stats_final_report(sv_server *s)
{
    /* The counts since the last tick, in one last report for the current
     * second (the monitor takes it as a later snapshot of that second). */
    sv_stats_tick(s, hb_now_us() / 1000000);
}

void sv_stats_summary(sv_server *s)
{
    sv_totals t;
    sv_stats_sum(s, &t);
    if (!s->handed_over) /* after a hot upgrade the stats file is the new process's */
        sv_stats_write(s, &t, s->cfg.stats_file, true);
    hb_log("summary: %llu connections accepted, %llu logins, %llu shakes, %llu wins (%llu cents), %llu losses, "
           "%llu not-yet, %llu rate-limited; packets made %llu shake + %llu send; %llu opens paid (%llu cents); "
           "%llu notices; %llu chats; %llu errors; journal %llu records in %llu batches",
           (unsigned long long)t.accepted, (unsigned long long)t.logins, (unsigned long long)t.shakes,
           (unsigned long long)t.wins, (unsigned long long)t.amount_won, (unsigned long long)t.losses,
           (unsigned long long)t.not_yet, (unsigned long long)t.rate_limited,
           (unsigned long long)HB_GET(s->prod.made_shake), (unsigned long long)HB_GET(s->prod.made_send),
           (unsigned long long)t.opens_ok, (unsigned long long)t.share_amount, (unsigned long long)t.notices,
           (unsigned long long)t.chats_out, (unsigned long long)err_total(&t),
           (unsigned long long)atomic_load(&s->journal.appends), (unsigned long long)atomic_load(&s->journal.batches));
}
