/* dealer.c -- the producer thread and its effects. */
#include "dealer.h"

#include <stdio.h>

#include "lockstat.h"
#include "renotify.h"
#include "route.h"
#include "set.h"

static void op_created(void *ctx, const Hb__Record *rec)
{
    sv_server *s = ctx;
    sv_journal_append(&s->journal, rec, -1);
}

static bool op_deal(void *ctx, int set, const sv_packet *p)
{
    sv_server *s = ctx;
    /* No wake-up: the queue is read by the next shake in that SET, so waking
     * the loop would cost a syscall and a loop turn for nothing. */
    return sv_pqueue_push(&s->sets[set]->q, p);
}

void sv_dealer_notify(sv_server *s, uint64_t id, const sv_sendpkt *p, uint8_t skip)
{
    /* Where a notice was written is recorded by the SET that wrote it
     * (sv_registry_told); here, in the producer's own field of the packet
     * (no lock), only which recipients could not be routed. */
    uint8_t failed = 0, routed = 0;
    for (unsigned i = 0; i < p->n && i < HB_SPLIT_MAX; i++) {
        if (skip & (1u << i))
            continue;
        sv_msg m = {.type = SV_MSG_NOTICE, .uid = p->uid[i], .amount = p->amount, .split = p->n, .packet_id = id};
        if (sv_route(s, &m))
            routed |= (uint8_t)(1u << i);
        else
            failed |= (uint8_t)(1u << i);
    }
    if (failed || (routed & p->unrouted))
        sv_registry_set_unrouted(&s->reg, id, failed, routed);
}

static void op_sent(void *ctx, uint64_t id, const sv_sendpkt *p)
{
    sv_server *s = ctx;
    sv_registry_put_send(&s->reg, id, p);
    sv_dealer_notify(s, id, p, 0);
}

static uint32_t op_pick(void *ctx, uint64_t *rng)
{
    sv_server *s = ctx;
    uint32_t u = 0;
    /* In a cluster, recipients are drawn among all the cluster's users: a
     * notice for a uid another node owns goes there (route.c, xmsg.h).
     * Prefer users who are online, as the seed does (for another node's
     * users that cannot be known here: they count as online); after a few
     * misses take anyone: the notice waits for their login. */
    const sv_members *ms = s->cluster ? sv_cluster_members(s->cluster) : NULL;
    for (int i = 0; i < 16; i++) {
        u = hb_rand_below(rng, s->dir.users);
        if (sv_dir_get(&s->dir, u) || sv_members_other_owner(ms, u))
            return u;
    }
    return u;
}

void sv_cycle_from_config(const sv_config *c, uint32_t number, Hb__Cycle *out)
{
    hb__cycle__init(out);
    out->number = number;
    out->users = (uint32_t)c->users;
    out->total = (uint64_t)c->total;
    out->amount_min = (uint32_t)c->amount_min;
    out->amount_max = (uint32_t)c->amount_max;
    out->rate = c->rate;
    out->send_total = (uint64_t)c->send_total;
    out->send_amount_min = (uint32_t)c->send_amount_min;
    out->send_amount_max = (uint32_t)c->send_amount_max;
    out->send_rate = c->send_rate;
    out->send_split = (uint32_t)c->send_split;
    if (c->cluster) { /* this node's share (server.c cluster_settings) */
        out->node = (uint32_t)c->node_index;
        out->nodes = (uint32_t)c->nodes;
        out->cluster_total = (uint64_t)c->cluster_total;
        out->cluster_send_total = (uint64_t)c->cluster_send_total;
    }
}

const char *sv_cycle_money_differs(const Hb__Cycle *j, const Hb__Cycle *f, char *buf, size_t n)
{
    const struct {
        const char *flag;
        uint64_t journal, flags;
    } m[] = {
        {"--users", j->users, f->users},
        {"--total", j->total, f->total},
        {"--amount-min", j->amount_min, f->amount_min},
        {"--amount-max", j->amount_max, f->amount_max},
        {"--send-total", j->send_total, f->send_total},
        {"--send-amount-min", j->send_amount_min, f->send_amount_min},
        {"--send-amount-max", j->send_amount_max, f->send_amount_max},
        {"--send-split", j->send_split, f->send_split},
        {"--node-index", j->node, f->node},
        {"--nodes", j->nodes, f->nodes},
    };
    for (size_t i = 0; i < HB_ARRAY_LEN(m); i++)
        if (m[i].journal != m[i].flags) {
            snprintf(buf, n, "%s %llu, the journal's cycle %u has %llu", m[i].flag, (unsigned long long)m[i].flags,
                     j->number, (unsigned long long)m[i].journal);
            return buf;
        }
    return NULL;
}

/* Journal the settings of cycle `number` before its first packet. */
static void journal_cycle(sv_server *s, int number)
{
    Hb__Cycle cy;
    sv_cycle_from_config(&s->cfg, (uint32_t)number, &cy);
    Hb__Record rec = HB__RECORD__INIT;
    rec.type = HB__RECORD_TYPE__REC_CYCLE;
    rec.time_us = hb_now_us();
    rec.cycle = &cy;
    sv_journal_append(&s->journal, &rec, -1);
}

int sv_dealer_init(sv_server *s, int cycles, uint64_t shake_made, uint64_t send_made, bool first_record)
{
    s->journal_first_cycle = first_record;
    const sv_config *c = &s->cfg;
    sv_producer_ops ops = {.ctx = s, .created = op_created, .deal = op_deal, .sent = op_sent, .pick = op_pick};
    if (sv_producer_init(&s->prod, &ops, s->nsets, s->rng_seed ^ 0x5eed) < 0)
        return -1;
    s->prod.split = (unsigned)c->send_split;
    s->prod.band = s->band;
    s->prod.send_concurrent = c->send_concurrent;
    atomic_store(&s->cycles_requested, cycles);
    atomic_store(&s->cycles_started, cycles);
    sv_flow_set(&s->prod.shake, c->rate, (uint64_t)cycles * (uint64_t)c->total, shake_made, (uint32_t)c->amount_min,
                (uint32_t)c->amount_max);
    sv_flow_set(&s->prod.send, c->send_rate, (uint64_t)cycles * (uint64_t)c->send_total, send_made,
                (uint32_t)c->send_amount_min, (uint32_t)c->send_amount_max);
    sv_producer_sync_counters(&s->prod);
    s->producer_start_mono = hb_mono_us() + (int64_t)(s->cfg.start_delay * 1e6);
    s->producer_started = false;
    return 0;
}

/* SIGUSR1 asked for more cycles than were started: start them. */
static void start_cycles(sv_server *s, int64_t now)
{
    int want = atomic_load(&s->cycles_requested);
    while (atomic_load(&s->cycles_started) < want) {
        int number = atomic_load(&s->cycles_started) + 1;
        journal_cycle(s, number);
        sv_producer_add_cycle(&s->prod, (uint64_t)s->cfg.total, (uint64_t)s->cfg.send_total, now);
        atomic_store(&s->cycles_started, number);
        hb_log("producer cycle %d: %lld more shake-flow packets, then %lld send-flow packets", number,
               (long long)s->cfg.total, (long long)s->cfg.send_total);
    }
}

static bool dealer_go_on(sv_server *s)
{
    return !atomic_load(&s->stopping) && !atomic_load(&s->dealer_pause);
}

static void *dealer_main(void *arg)
{
    sv_server *s = arg;
    sv_producer *p = &s->prod;
    pthread_setname_np(pthread_self(), "hb-producer");
    hb_thread_urgent((int)s->cfg.urgent_rt, (int)s->cfg.urgent_nice, "hb-producer");
    sv_lock_role(SV_ROLE_PRODUCER); /* its waits are producer_wait_us */
    if (s->journal_first_cycle) {
        journal_cycle(s, 1);
        s->journal_first_cycle = false;
    }
    if (!s->producer_started) {
        while (dealer_go_on(s) && hb_mono_us() < s->producer_start_mono) {
            int64_t next = hb_mono_us() + 100000;
            hb_sleep_until_mono(next < s->producer_start_mono ? next : s->producer_start_mono);
        }
        if (!dealer_go_on(s))
            return NULL;
        sv_producer_start(p, s->producer_start_mono); /* the absolute schedule starts there */
        s->producer_started = true;
        atomic_store(&s->event_started, true);
    }
    /* A tick's packets at once (sv_producer_tick): at 200/s, 10 in one
     * journal batch every 50 ms instead of a batch and a wake-up every 5 ms,
     * which cost the box ~230 us each (journal writer ~180, producer ~50;
     * README, "The producer's tick").  Every second still gets its 200. */
    const int64_t tick = s->cfg.deal_ms * 1000;
    while (dealer_go_on(s)) {
        int64_t now = hb_mono_us();
        start_cycles(s, now);
        /* slots on whole fractions of the wall clock's second (tick divides
         * 1 s): wall-clock time 0 on the monotonic clock is a slot start */
        int64_t next = sv_producer_tick(p, now, tick, now - hb_now_us());
        sv_renotify_sweep(s, now);
        hb_sleep_until_mono(next);
    }
    return NULL;
}

int sv_dealer_start(sv_server *s)
{
    if (pthread_create(&s->dealer_th, NULL, dealer_main, s) != 0)
        return -1;
    s->dealer_running = true;
    return 0;
}

void sv_dealer_stop(sv_server *s)
{
    if (!s->dealer_running)
        return;
    pthread_join(s->dealer_th, NULL);
    s->dealer_running = false;
}

void sv_dealer_pause(sv_server *s)
{
    atomic_store(&s->dealer_pause, true);
    sv_dealer_stop(s); /* wakes within 100 ms */
    atomic_store(&s->dealer_pause, false);
}
