/* producer.c -- fixed-rate packet schedules and round-robin dealing. */
#include "producer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int sv_producer_init(sv_producer *p, const sv_producer_ops *ops, int nsets, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->ops = *ops;
    p->nsets = nsets;
    p->rng = seed;
    p->split = 3;
    p->dealt = calloc((size_t)nsets, sizeof *p->dealt);
    p->held_cap = 1; /* the one packet a step can make and fail to place */
    p->held = calloc(p->held_cap, sizeof *p->held);
    return p->dealt && p->held ? 0 : -1;
}

void sv_producer_free(sv_producer *p)
{
    free(p->dealt);
    free(p->held);
    p->dealt = NULL;
    p->held = NULL;
}

int sv_producer_hold(sv_producer *p, const sv_packet *pk, size_t n)
{
    if (p->held_len + n > p->held_cap) {
        size_t cap = p->held_len + n + 1;
        sv_packet *h = malloc(cap * sizeof *h);
        if (!h)
            return -1;
        for (size_t i = 0; i < p->held_len; i++) /* unwrap the ring */
            h[i] = p->held[(p->held_head + i) % p->held_cap];
        free(p->held);
        p->held = h;
        p->held_cap = cap;
        p->held_head = 0;
    }
    for (size_t i = 0; i < n; i++)
        p->held[(p->held_head + p->held_len++) % p->held_cap] = pk[i];
    return 0;
}

/* Deal the held packets in order; true when none is left. */
static bool deal_held(sv_producer *p);

void sv_flow_set(sv_flow *f, double rate, uint64_t total, uint64_t made, uint32_t amin, uint32_t amax)
{
    f->rate = rate;
    f->total = total;
    f->made = made;
    f->base = made;
    f->amin = amin;
    f->amax = amax < amin ? amin : amax;
    f->running = false;
}

void sv_producer_sync_counters(sv_producer *p)
{
    HB_STORE(p->made_shake, p->shake.made);
    HB_STORE(p->made_send, p->send.made);
}

static bool flow_done(const sv_flow *f)
{
    return f->made >= f->total || f->rate <= 0;
}

static void flow_begin(sv_flow *f, int64_t t0)
{
    f->base = f->made;
    f->t0 = t0;
    f->running = true;
}

/* When packet number `k` (0-based, k >= base) of the flow is due. */
static int64_t flow_due(const sv_flow *f, uint64_t k)
{
    return f->t0 + (int64_t)ceil((double)(k - f->base) * 1e6 / f->rate);
}

void sv_producer_add_cycle(sv_producer *p, uint64_t add_shake, uint64_t add_send, int64_t now)
{
    p->shake.total += add_shake;
    p->send.total += add_send;
    if (!p->shake.running && !flow_done(&p->shake))
        flow_begin(&p->shake, now);
    if ((p->send_concurrent || flow_done(&p->shake)) && !p->send.running && !flow_done(&p->send))
        flow_begin(&p->send, now);
}

void sv_producer_start(sv_producer *p, int64_t now)
{
    sv_producer_add_cycle(p, 0, 0, now); /* the first cycle's totals are set already */
}

static uint32_t amount(sv_producer *p, const sv_flow *f)
{
    return f->amin + hb_rand_below(&p->rng, f->amax - f->amin + 1);
}

/* Count a packet made `late` us after it was due. */
static void note_lateness(sv_producer *p, int64_t late)
{
    if (late <= 0)
        return;
    HB_ADD(p->late_us, (uint64_t)late);
    if (late > 5000)
        HB_INC(p->late_5ms);
    if ((uint64_t)late > HB_GET(p->late_max_us))
        HB_STORE(p->late_max_us, (uint64_t)late);
}

/* Round-robin, skipping SETs whose queue is full; false if all are. */
static bool deal(sv_producer *p, const sv_packet *pk)
{
    for (int tries = 0; tries < p->nsets; tries++) {
        int s = p->next_set;
        p->next_set = (p->next_set + 1) % p->nsets;
        if (p->ops.deal(p->ops.ctx, s, pk)) {
            HB_INC(p->dealt[s]);
            return true;
        }
    }
    return false;
}

static void make_shake(sv_producer *p)
{
    sv_flow *f = &p->shake;
    sv_packet pk = {.id = hb_shake_id_in(p->band, f->made + 1), .amount = amount(p, f)};
    Hb__Record rec = HB__RECORD__INIT;
    rec.type = HB__RECORD_TYPE__REC_CREATE;
    rec.kind = HB__PACKET_KIND__KIND_SHAKE;
    rec.packet_id = pk.id;
    rec.amount = pk.amount;
    rec.time_us = hb_now_us();
    p->ops.created(p->ops.ctx, &rec);
    f->made++;
    HB_STORE(p->made_shake, f->made);
    atomic_store(&p->started, true);
    if (!deal(p, &pk))
        sv_producer_hold(p, &pk, 1); /* none held (see step): fits the ring */
}

static void make_send(sv_producer *p)
{
    sv_flow *f = &p->send;
    sv_sendpkt sp = {.n = (uint8_t)p->split};
    uint64_t id = hb_send_id_in(p->band, f->made);
    sp.amount = amount(p, f);
    if (sp.amount < sp.n)
        sp.amount = sp.n;
    for (unsigned i = 0; i < sp.n; i++) {
        uint32_t u;
        bool dup;
        int tries = 0;
        do { /* distinct recipients (the caller made sure users >= split) */
            u = p->ops.pick(p->ops.ctx, &p->rng);
            dup = false;
            for (unsigned m = 0; m < i; m++)
                dup |= sp.uid[m] == u;
        } while (dup && ++tries < 1000);
        sp.uid[i] = u;
    }
    sv_split(&p->rng, sp.amount, sp.n, sp.share);
    Hb__Record rec = HB__RECORD__INIT;
    rec.type = HB__RECORD_TYPE__REC_CREATE;
    rec.kind = HB__PACKET_KIND__KIND_SEND;
    rec.packet_id = id;
    rec.amount = sp.amount;
    rec.n_recipients = sp.n;
    rec.recipients = sp.uid;
    rec.n_shares = sp.n;
    rec.shares = sp.share;
    rec.time_us = hb_now_us();
    p->ops.created(p->ops.ctx, &rec);
    f->made++;
    HB_STORE(p->made_send, f->made);
    p->ops.sent(p->ops.ctx, id, &sp);
}

static bool deal_held(sv_producer *p)
{
    while (p->held_len) {
        if (!deal(p, &p->held[p->held_head]))
            return false;
        p->held_head = (p->held_head + 1) % p->held_cap;
        p->held_len--;
    }
    return true;
}

/* Every packet due by now + ahead (made up to `ahead` us early); lateness
 * is still measured against `now`. */
static uint64_t step_ahead(sv_producer *p, int64_t now, int64_t ahead)
{
    uint64_t n = 0;
    int64_t until = now + ahead;
    if (!deal_held(p)) {
        HB_INC(p->stalls);
        return 0; /* keep order: nothing new until the held packets are placed */
    }
    sv_flow *s = &p->shake;
    int64_t due;
    while (s->running && !flow_done(s) && (due = flow_due(s, s->made)) <= until) {
        note_lateness(p, now - due);
        make_shake(p);
        n++;
        if (p->held_len) {
            HB_INC(p->stalls);
            return n;
        }
    }
    if (s->running && flow_done(s)) {
        s->running = false;
        /* The send flow keeps the cadence: it starts when the next shake
         * packet would have been due. */
        if (!p->send_concurrent && !flow_done(&p->send) && !p->send.running)
            flow_begin(&p->send, s->total > s->base ? flow_due(s, s->total) : now);
    }
    sv_flow *d = &p->send;
    while (d->running && !flow_done(d) && (due = flow_due(d, d->made)) <= until) {
        note_lateness(p, now - due);
        make_send(p);
        n++;
    }
    if (d->running && flow_done(d))
        d->running = false;
    return n;
}

uint64_t sv_producer_step(sv_producer *p, int64_t now)
{
    return step_ahead(p, now, 0);
}

int64_t sv_producer_next_due(const sv_producer *p)
{
    int64_t t = INT64_MAX;
    if (p->held_len)
        return 0;
    if (p->shake.running && !flow_done(&p->shake))
        t = flow_due(&p->shake, p->shake.made);
    if (p->send.running && !flow_done(&p->send)) {
        int64_t u = flow_due(&p->send, p->send.made);
        t = u < t ? u : t;
    }
    if (t == INT64_MAX && !p->send_concurrent && !p->send.running && !flow_done(&p->send) && p->shake.running)
        t = flow_due(&p->shake, p->shake.total);
    return t;
}

/* The start of the slot holding t: the greatest phase + k * tick <= t. */
static int64_t slot_start(int64_t t, int64_t tick, int64_t phase)
{
    int64_t r = (t - phase) % tick;
    return t - (r < 0 ? r + tick : r);
}

int64_t sv_producer_tick(sv_producer *p, int64_t now, int64_t tick, int64_t phase)
{
    int64_t end = tick > 0 ? slot_start(now, tick, phase) + tick : now + 1;
    step_ahead(p, now, end - 1 - now);
    int64_t due = sv_producer_next_due(p), next;
    if (due == 0)
        return now + 1000; /* holding a packet: retry soon */
    if (due == INT64_MAX)
        next = INT64_MAX;
    else
        next = tick > 0 ? slot_start(due, tick, phase) : due; /* >= end: all due before it are made */
    if (next < now + 1000)
        next = now + 1000;
    return next > now + 100000 ? now + 100000 : next;
}

bool sv_producer_done(const sv_producer *p)
{
    return !p->held_len && flow_done(&p->shake) && flow_done(&p->send);
}
