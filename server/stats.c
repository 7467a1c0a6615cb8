/* stats.c -- reading the SETs' counters once a second: the stats file, the
 * monitor report, the --progress line and the final summary. */
#include "stats.h"

#include <stdio.h>
#include <string.h>
#include "server.h"
#include "set.h"

static const char *err_names[HB_ERR_N] = {
    "none",           "frame_too_large", "frame_empty",    "bad_message", "unknown_type",   "not_logged_in",
    "already_logged", "bad_uid",         "bad_token",      "replaced",    "login_timeout",  "frame_timeout",
    "server_full",    "addr_limit",      "not_allowed",    "chat_invalid", "shutting_down", "output_overflow",
};

const char *hb_err_name(int code)
{
    return code >= 0 && code < HB_ERR_N ? err_names[code] : "?";
}

void hb_stats_sum(hb_server *s, hb_totals *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < s->nsets; i++) {
        hb_set_stats *st = &s->sets[i]->st;
#define X(name, help) t->name += HB_GET(st->name);
        HB_SET_COUNTERS(X)
#undef X
        for (int e = 0; e < HB_ERR_N; e++)
            t->err[e] += HB_GET(st->err[e]);
        t->conns += HB_GET(st->conns);
        t->active += HB_GET(st->active);
        t->deferred += HB_GET(st->deferred);
        t->queued += HB_GET(st->queued);
    }
}

static uint64_t err_total(const hb_totals *t)
{
    uint64_t n = 0;
    for (int e = 1; e < HB_ERR_N; e++)
        n += t->err[e];
    return n;
}

void hb_stats_write(hb_server *s, const hb_totals *t, const char *path, bool final)
{
    if (!path || !*path)
        return;
    static char buf[1 << 16];
    size_t n = 0;
#define P(...) n += (size_t)snprintf(buf + n, n < sizeof buf ? sizeof buf - n : 0, __VA_ARGS__)
    P("# hb-server counters: 'name value', rewritten every second%s\n", final ? " (final)" : "");
    P("final %d\n", final ? 1 : 0);
    P("time_us %lld\n", (long long)hb_now_us());
    P("uptime_s %.3f\n", (double)(hb_now_us() - s->start_us) / 1e6);
    P("sets %d\n", s->nsets);
    P("max_conns_per_set %lld\n", (long long)s->cfg.max_conns);
#define X(name, help) P("%s %llu\n", #name, (unsigned long long)t->name);
    HB_SET_COUNTERS(X)
#undef X
    P("conns %llu\nactive %llu\ndeferred %llu\nqueued %llu\n", (unsigned long long)t->conns,
      (unsigned long long)t->active, (unsigned long long)t->deferred, (unsigned long long)t->queued);
    for (int e = 1; e < HB_ERR_N; e++)
        P("err_%s %llu\n", err_names[e], (unsigned long long)t->err[e]);
    P("errors %llu\n", (unsigned long long)err_total(t));
    P("made_shake %llu\nmade_send %llu\nproducer_stalls %llu\n", (unsigned long long)HB_GET(s->prod.made_shake),
      (unsigned long long)HB_GET(s->prod.made_send), (unsigned long long)HB_GET(s->prod.stalls));
    P("event_started %d\ncycle %d\n", atomic_load(&s->event_started) ? 1 : 0, atomic_load(&s->cycles_started));
    P("journal_appends %llu\njournal_batches %llu\njournal_bytes %llu\njournal_max_batch %llu\njournal_sync_us %llu\n",
      (unsigned long long)atomic_load(&s->journal.appends), (unsigned long long)atomic_load(&s->journal.batches),
      (unsigned long long)atomic_load(&s->journal.bytes), (unsigned long long)atomic_load(&s->journal.max_batch),
      (unsigned long long)atomic_load(&s->journal.sync_us));
    P("replayed_wins %llu\nreplayed_win_amount %llu\nreplayed_shares %llu\nreplayed_share_amount %llu\n",
      (unsigned long long)s->replayed_wins, (unsigned long long)s->replayed_win_amount,
      (unsigned long long)s->replayed_shares, (unsigned long long)s->replayed_share_amount);
    P("online %llu\nparked_now %llu\nparked %llu\nparked_delivered %llu\nparked_dropped %llu\nroute_drops %llu\n",
      (unsigned long long)atomic_load(&s->dir.online), (unsigned long long)atomic_load(&s->dir.pending),
      (unsigned long long)atomic_load(&s->dir.parked), (unsigned long long)atomic_load(&s->dir.delivered),
      (unsigned long long)atomic_load(&s->dir.dropped), (unsigned long long)hb_server_route_drops());
    P("reports_sent %llu\nreports_dropped %llu\n", (unsigned long long)HB_GET(s->reporter.sent),
      (unsigned long long)HB_GET(s->reporter.dropped));
    for (int i = 0; i < s->nsets; i++) {
        hb_set_stats *st = &s->sets[i]->st;
        P("set.%d.conns %llu\nset.%d.shakes %llu\nset.%d.replies %llu\nset.%d.wins %llu\nset.%d.losses %llu\n"
          "set.%d.dealt %llu\n",
          i, (unsigned long long)HB_GET(st->conns), i, (unsigned long long)HB_GET(st->shakes), i,
          (unsigned long long)HB_GET(st->replies), i, (unsigned long long)HB_GET(st->wins), i,
          (unsigned long long)HB_GET(st->losses), i, (unsigned long long)HB_GET(s->prod.dealt[i]));
    }
#undef P
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    if (hb_write_file_atomic(path, buf, n) < 0)
        hb_log("warning: cannot write stats file %s", path);
}

static hb_totals prev;
static int64_t prev_second;

void hb_stats_tick(hb_server *s, int64_t second)
{
    hb_totals t;
    hb_stats_sum(s, &t);
    hb_stats_write(s, &t, s->cfg.stats_file, false);

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

void hb_stats_final_report(hb_server *s)
{
    /* The counts since the last tick, in one last report for the current
     * second (the monitor takes it as a later snapshot of that second). */
    hb_stats_tick(s, hb_now_us() / 1000000);
}

void hb_stats_summary(hb_server *s)
{
    hb_totals t;
    hb_stats_sum(s, &t);
    hb_stats_write(s, &t, s->cfg.stats_file, true);
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
