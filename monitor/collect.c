/* collect.c -- merging per-instance cumulative reports into per-second rows
 * (the rules are in collect.h). */
#include "collect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One report of one source, as stored in its ring.  second == 0: empty. */
typedef struct sample {
    int64_t second;
    uint64_t boot;
    uint64_t c[MON_NCTR];
    uint64_t conns, target;
} sample;

typedef struct source {
    int role;
    char instance[MON_INSTANCE_MAX];
    int slot; /* server: its node slot, -1 past MON_NODES_MAX; client: -1 */
    uint64_t boot;       /* boot_id of the latest second reported */
    int64_t last_second; /* latest second reported */
    uint64_t last_conns;
    int64_t last_seen; /* monitor clock at the latest report, for eviction */
    uint64_t restarts;
    bool has_base;
    sample base; /* the values already attributed to emitted rows */
    sample ring[MON_WINDOW];
} source;

struct mon_collect {
    mon_config cfg;
    mon_emit_fn emit;
    void *ctx;
    source **src;
    size_t nsrc;
    int64_t next;       /* next second to emit; 0 until the first report */
    int64_t max_second; /* latest second stored */
    hb_hist *lat;       /* MON_WINDOW per-second merged client histograms */
    hb_hist total;      /* every emitted second's latencies */
    uint64_t totals[MON_NROLES][MON_NCTR];
    mon_row last;
    bool have_last;
    char node_names[MON_NODES_MAX][MON_INSTANCE_MAX];
    size_t nnodes;
    mon_events ev;
};

static const char *ctr_names[MON_NCTR] = {
#define X(name, field, help) #name,
    MON_COUNTERS(X)
#undef X
};
static const char *ctr_helps[MON_NCTR] = {
#define X(name, field, help) help,
    MON_COUNTERS(X)
#undef X
};

const char *mon_ctr_name(int i) { return i >= 0 && i < MON_NCTR ? ctr_names[i] : "?"; }
const char *mon_ctr_help(int i) { return i >= 0 && i < MON_NCTR ? ctr_helps[i] : "?"; }
const char *mon_role_name(int role) { return role == MON_SERVER ? "server" : role == MON_CLIENT ? "client" : "?"; }

mon_collect *mon_collect_new(const mon_config *cfg, mon_emit_fn emit, void *ctx, char *err, size_t errlen)
{
    if (cfg->settle < 0 || cfg->max_future < 0 || cfg->settle + cfg->max_future + 2 > MON_WINDOW) {
        snprintf(err, errlen, "settle (%d) + max_future (%d) must stay below %d seconds", cfg->settle,
                 cfg->max_future, MON_WINDOW - 1);
        return NULL;
    }
    if (cfg->max_gap < 1 || cfg->max_sources < 1) {
        snprintf(err, errlen, "max_gap and max_sources must be at least 1");
        return NULL;
    }
    mon_collect *c = calloc(1, sizeof *c);
    if (c)
        c->lat = calloc(MON_WINDOW, sizeof *c->lat);
    if (c)
        c->src = calloc((size_t)cfg->max_sources, sizeof *c->src);
    if (!c || !c->lat || !c->src) {
        if (c) {
            free(c->lat);
            free(c->src);
        }
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    c->emit = emit;
    c->ctx = ctx;
    return c;
}

void mon_collect_free(mon_collect *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nsrc; i++)
        free(c->src[i]);
    free(c->src);
    free(c->lat);
    free(c);
}

int mon_report_from_pb(const Hb__Report *rep, mon_report *out)
{
    memset(out, 0, sizeof *out);
    if (rep->role == HB__ROLE__ROLE_SERVER)
        out->role = MON_SERVER;
    else if (rep->role == HB__ROLE__ROLE_CLIENT)
        out->role = MON_CLIENT;
    else
        return -1;
    out->instance = rep->instance ? rep->instance : "";
    out->boot_id = rep->boot_id;
    out->second = rep->second;
#define X(name, field, help) out->c[MON_##name] = rep->field;
    MON_COUNTERS(X)
#undef X
    out->conns = rep->connections;
    out->target_qps = rep->target_qps;
    out->lat_index = rep->lat_index;
    out->lat_count = rep->lat_count;
    out->lat_n = rep->n_lat_index < rep->n_lat_count ? rep->n_lat_index : rep->n_lat_count;
    return 0;
}

/* Instance names end up in JSON, Prometheus labels and logs: keep printable
 * ASCII only, so no output format can be broken by a sender. */
static void copy_instance(char *dst, const char *src)
{
    size_t n = 0;
    for (; src[n] && n < MON_INSTANCE_MAX - 1; n++)
        dst[n] = (src[n] >= 0x20 && src[n] < 0x7f) ? src[n] : '?';
    dst[n] = 0;
    if (n == 0)
        strcpy(dst, "-");
}

static source *find_source(mon_collect *c, int role, const char *instance)
{
    char name[MON_INSTANCE_MAX];
    copy_instance(name, instance);
    /* Linear: tens to a few hundred processes, one lookup per datagram. */
    for (size_t i = 0; i < c->nsrc; i++)
        if (c->src[i]->role == role && !strcmp(c->src[i]->instance, name))
            return c->src[i];
    if (c->nsrc == (size_t)c->cfg.max_sources)
        return NULL;
    source *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->role = role;
    memcpy(s->instance, name, sizeof name);
    s->slot = -1;
    if (role == MON_SERVER) { /* a node back after an eviction finds its slot again */
        for (size_t k = 0; k < c->nnodes && s->slot < 0; k++)
            if (!strcmp(c->node_names[k], name))
                s->slot = (int)k;
        if (s->slot < 0 && c->nnodes < MON_NODES_MAX) {
            memcpy(c->node_names[c->nnodes], name, sizeof name);
            s->slot = (int)c->nnodes++;
        }
    }
    c->src[c->nsrc++] = s;
    return s;
}

void mon_collect_bad(mon_collect *c)
{
    c->ev.received++;
    c->ev.bad++;
}

void mon_collect_add(mon_collect *c, const mon_report *r, int64_t now)
{
    c->ev.received++;
    if ((r->role != MON_SERVER && r->role != MON_CLIENT) || r->second <= 0) {
        c->ev.bad++;
        return;
    }
    if (r->second > now + c->cfg.max_future) {
        c->ev.future++;
        return;
    }
    if (c->next == 0) /* the first report opens the log; older seconds would be settled already */
        c->next = r->second < now - c->cfg.settle ? r->second : now - c->cfg.settle;
    if (r->second < c->next) {
        c->ev.late++;
        return;
    }
    if (r->second >= c->next + MON_WINDOW) { /* its ring slot is still in use */
        c->ev.future++;
        return;
    }
    source *s = find_source(c, r->role, r->instance);
    if (!s) {
        c->ev.full++;
        return;
    }
    sample *e = &s->ring[r->second % MON_WINDOW];
    bool update = false;
    if (e->second == r->second) {
        if (e->boot != r->boot_id) {
            c->ev.conflict++;
            return;
        }
        /* The same second again from the same process: an identical
         * datagram is a duplicate; one with larger counters is a later
         * snapshot of that second (a sender's last report at exit) and
         * replaces the earlier one, its histogram (the delta since the
         * earlier report) added to the second's. */
        bool newer = false, older = false;
        for (int i = 0; i < MON_NCTR; i++) {
            newer |= r->c[i] > e->c[i];
            older |= r->c[i] < e->c[i];
        }
        if (!newer || older) {
            c->ev.duplicate++;
            return;
        }
        update = true;
    }
    e->second = r->second;
    e->boot = r->boot_id;
    memcpy(e->c, r->c, sizeof e->c);
    e->conns = r->conns;
    e->target = r->target_qps;
    if (r->second >= s->last_second) {
        s->last_second = r->second;
        s->boot = r->boot_id;
        s->last_conns = r->conns;
    }
    s->last_seen = now;
    if (r->second > c->max_second)
        c->max_second = r->second;
    if (update)
        c->ev.updated++;
    else
        c->ev.accepted++;

    if (r->role == MON_CLIENT && r->lat_n) {
        /* Each bucket's observations are recorded at the bucket's top value,
         * as hb_report_get_hist does: percentiles err high, never low. */
        hb_hist *h = &c->lat[r->second % MON_WINDOW];
        for (size_t i = 0; i < r->lat_n; i++)
            if (r->lat_index[i] < HB_HIST_BUCKETS)
                hb_hist_record_n(h, hb_hist_high(r->lat_index[i]), r->lat_count[i]);
    }
}

static bool went_down(const sample *from, const sample *to)
{
    for (int i = 0; i < MON_NCTR; i++)
        if (to->c[i] < from->c[i])
            return true;
    return false;
}

/* base + (to - base) * (t - base.second) / (to.second - base.second), exact. */
static uint64_t interp(uint64_t a, uint64_t b, int64_t num, int64_t den)
{
    if (b >= a)
        return a + (uint64_t)((unsigned __int128)(b - a) * (uint64_t)num / (uint64_t)den);
    return a - (uint64_t)((unsigned __int128)(a - b) * (uint64_t)num / (uint64_t)den); /* gauges may fall */
}

/* This source's part of second t.  Returns true when it attributed counts
 * (reported or filled), false when it only set its base or had nothing. */
static bool contribute(mon_collect *c, source *s, int64_t t, mon_row *row)
{
    sample *e = &s->ring[t % MON_WINDOW];
    int role = s->role;
    if (e->second == t) {
        sample got = *e;
        e->second = 0; /* consumed */
        row->conns[role] += got.conns;
        if (s->slot >= 0)
            row->node[s->slot].conns += got.conns;
        if (role == MON_CLIENT)
            row->target_qps += got.target;
        bool attributed = false;
        if (!s->has_base) {
            c->ev.baselines++;
            row->rebased[role]++;
        } else {
            bool restart = got.boot != s->base.boot || went_down(&s->base, &got);
            if (restart) {
                c->ev.restarts++;
                s->restarts++;
            }
            if (t - s->base.second > c->cfg.max_gap) {
                c->ev.rebased++;
                row->rebased[role]++;
            } else {
                for (int i = 0; i < MON_NCTR; i++)
                    row->d[role][i] += restart ? got.c[i] : got.c[i] - s->base.c[i];
                if (s->slot >= 0) {
                    mon_node_row *nr = &row->node[s->slot];
                    nr->requests += restart ? got.c[MON_requests] : got.c[MON_requests] - s->base.c[MON_requests];
                    nr->replies += restart ? got.c[MON_replies] : got.c[MON_replies] - s->base.c[MON_replies];
                }
                row->reported[role]++;
                attributed = true;
            }
        }
        s->base = got;
        s->has_base = true;
        return attributed;
    }
    if (!s->has_base)
        return false;
    /* Missing: fill from the earliest later sample, if it belongs to the
     * same boot and does not leave max_gap. */
    for (int64_t u = t + 1; u <= c->max_second && u < t + MON_WINDOW; u++) {
        const sample *f = &s->ring[u % MON_WINDOW];
        if (f->second != u)
            continue;
        if (f->boot != s->base.boot || went_down(&s->base, f) || u - s->base.second > c->cfg.max_gap)
            return false;
        int64_t num = t - s->base.second, den = u - s->base.second;
        sample mid = s->base;
        mid.second = t;
        for (int i = 0; i < MON_NCTR; i++) {
            mid.c[i] = interp(s->base.c[i], f->c[i], num, den);
            row->d[role][i] += mid.c[i] - s->base.c[i];
        }
        mid.conns = interp(s->base.conns, f->conns, num, den);
        row->conns[role] += mid.conns;
        if (s->slot >= 0) {
            mon_node_row *nr = &row->node[s->slot];
            nr->conns += mid.conns;
            nr->requests += mid.c[MON_requests] - s->base.c[MON_requests];
            nr->replies += mid.c[MON_replies] - s->base.c[MON_replies];
        }
        if (role == MON_CLIENT)
            row->target_qps += mid.target;
        row->filled[role]++;
        c->ev.filled++;
        s->base = mid;
        return true;
    }
    return false;
}

static void emit_second(mon_collect *c, int64_t t)
{
    mon_row row;
    memset(&row, 0, sizeof row);
    row.second = t;
    row.nnodes = (uint32_t)c->nnodes;
    bool any = false;
    for (size_t i = 0; i < c->nsrc; i++)
        any |= contribute(c, c->src[i], t, &row);
    hb_hist *h = &c->lat[t % MON_WINDOW];
    /* A second where every instance only set its base (the monitor just
     * started) has no rates: emitting it would draw a fake drop to zero. */
    if (any) {
        row.lat_count = h->count;
        row.lat_p50 = hb_hist_percentile(h, 50);
        row.lat_p90 = hb_hist_percentile(h, 90);
        row.lat_p99 = hb_hist_percentile(h, 99);
        row.lat_max = h->max;
        for (int r = 0; r < MON_NROLES; r++)
            for (int i = 0; i < MON_NCTR; i++)
                c->totals[r][i] += row.d[r][i];
        hb_hist_merge(&c->total, h);
        c->last = row;
        c->have_last = true;
        if (c->emit)
            c->emit(c->ctx, &row, h);
    }
    hb_hist_reset(h);
}

static void emit_until(mon_collect *c, int64_t limit)
{
    if (c->next == 0)
        return;
    for (int n = 0; c->next <= limit; n++) {
        if (n == MON_WINDOW) {
            /* Every stored sample lies below next + MON_WINDOW as it was when
             * this call began, so all are consumed: skip the empty rest (a
             * clock jump) instead of walking it second by second. */
            c->next = limit + 1;
            break;
        }
        emit_second(c, c->next++);
    }
}

static void evict(mon_collect *c, int64_t now)
{
    for (size_t i = 0; i < c->nsrc;) {
        source *s = c->src[i];
        if (now - s->last_seen > c->cfg.evict && s->last_second < c->next) {
            free(s);
            c->src[i] = c->src[--c->nsrc];
            c->ev.evicted++;
        } else {
            i++;
        }
    }
}

void mon_collect_advance(mon_collect *c, int64_t now)
{
    emit_until(c, now - c->cfg.settle);
    evict(c, now);
}

void mon_collect_flush(mon_collect *c)
{
    emit_until(c, c->max_second);
}

const mon_events *mon_collect_events(const mon_collect *c) { return &c->ev; }
const uint64_t *mon_collect_totals(const mon_collect *c, int role) { return c->totals[role]; }
const hb_hist *mon_collect_hist(const mon_collect *c) { return &c->total; }
const mon_row *mon_collect_last(const mon_collect *c) { return c->have_last ? &c->last : NULL; }
size_t mon_collect_nsources(const mon_collect *c) { return c->nsrc; }
size_t mon_collect_nnodes(const mon_collect *c) { return c->nnodes; }
const char *mon_collect_node_name(const mon_collect *c, size_t i) { return i < c->nnodes ? c->node_names[i] : ""; }

void mon_collect_source(const mon_collect *c, size_t i, mon_source_info *out)
{
    const source *s = c->src[i];
    out->role = s->role;
    out->instance = s->instance;
    out->boot_id = s->boot;
    out->last_second = s->last_second;
    out->conns = s->last_conns;
    out->restarts = s->restarts;
}
