/* server.c -- bringing the server up and down: replay, SETs, journal,
 * producer thread, and the routing function every thread uses. */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <arpa/inet.h>
#include "addrlimit.h"
#include "replay.h"
#include "set.h"

static _Atomic uint64_t route_drops_nowhere; /* see hb_server_route_drops */

/* ---- routing ---------------------------------------------------------------- */

bool hb_route(hb_server *s, hb_msg *m)
{
    if (m->uid >= s->dir.users) {
        atomic_fetch_add(&route_drops_nowhere, 1);
        return false;
    }
    for (int tries = 0; tries < 4; tries++) {
        uint64_t loc = hb_dir_get(&s->dir, m->uid);
        if (!loc) {
            int r = hb_dir_park(&s->dir, m, &loc);
            if (r == HB_PARK_STORED)
                return true;
            if (r == HB_PARK_DROPPED)
                return false; /* counted by the directory */
            /* the user logged in meanwhile: route to where it is now */
        }
        hb_set *t = s->sets[HB_LOC_SET(loc)];
        /* Chat may fill three quarters of an inbox: notices and kicks
         * always find room. */
        if (m->type == HB_MSG_CHAT && hb_inbox_size(&t->inbox) >= (t->inbox.mask + 1) / 4 * 3) {
            atomic_fetch_add(&route_drops_nowhere, 1);
            return false;
        }
        if (!hb_inbox_push(&t->inbox, m)) {
            atomic_fetch_add(&route_drops_nowhere, 1);
            return false;
        }
        ev_async_send(t->loop, &t->wake);
        return true;
    }
    atomic_fetch_add(&route_drops_nowhere, 1);
    return false;
}

uint64_t hb_server_route_drops(void)
{
    return atomic_load(&route_drops_nowhere);
}

/* ---- producer wiring ---------------------------------------------------------- */

/* Cycles of `per` packets it takes to have made `made` (0 if per is 0). */
static int cycles_for(uint64_t made, int64_t per)
{
    return per > 0 ? (int)((made + (uint64_t)per - 1) / (uint64_t)per) : 0;
}

static void op_created(void *ctx, const Hb__Record *rec)
{
    hb_server *s = ctx;
    hb_journal_append(&s->journal, rec, -1);
}

static bool op_deal(void *ctx, int set, const hb_packet *p)
{
    hb_server *s = ctx;
    /* No wake-up: the queue is read by the next shake in that SET, so waking
     * the loop would cost a syscall and a loop turn for nothing. */
    return hb_pqueue_push(&s->sets[set]->q, p);
}

static void notify_recipients(hb_server *s, uint64_t id, const hb_sendpkt *p, uint8_t skip_mask)
{
    for (unsigned i = 0; i < p->n; i++) {
        if (skip_mask & (1u << i))
            continue;
        hb_msg m = {.type = HB_MSG_NOTICE, .uid = p->uid[i], .amount = p->amount, .split = p->n, .packet_id = id};
        hb_route(s, &m);
    }
}

static void op_sent(void *ctx, uint64_t id, const hb_sendpkt *p)
{
    hb_server *s = ctx;
    hb_registry_put_send(&s->reg, id, p);
    notify_recipients(s, id, p, 0);
}

static uint32_t op_pick(void *ctx, uint64_t *rng)
{
    hb_server *s = ctx;
    uint32_t u = 0;
    /* Prefer users who are online, as the seed does; after a few misses
     * take anyone: the notice waits for their login. */
    for (int i = 0; i < 16; i++) {
        u = hb_rand_below(rng, s->dir.users);
        if (hb_dir_get(&s->dir, u))
            break;
    }
    return u;
}

static pthread_t producer_th;
static bool producer_running;

static void *producer_main(void *arg)
{
    hb_server *s = arg;
    hb_producer *p = &s->prod;
    pthread_setname_np(pthread_self(), "hb-producer");
    int64_t start = hb_mono_us() + (int64_t)(s->cfg.start_delay * 1e6);
    hb_sleep_until_mono(start);
    hb_producer_start(p, start);
    atomic_store(&s->event_started, true);
    while (!atomic_load(&s->stopping)) {
        int64_t now = hb_mono_us();
        int want = atomic_load(&s->cycles_requested);
        while (atomic_load(&s->cycles_started) < want) { /* SIGUSR1: one more cycle */
            hb_producer_add_cycle(p, (uint64_t)s->cfg.total, (uint64_t)s->cfg.send_total, now);
            hb_log("producer cycle %d: %lld more shake-flow packets, then %lld send-flow packets",
                   atomic_fetch_add(&s->cycles_started, 1) + 1, (long long)s->cfg.total, (long long)s->cfg.send_total);
        }
        hb_producer_step(p, now);
        int64_t next = hb_producer_next_due(p);
        if (next < now + 1000)
            next = now + 1000; /* holding a packet: every queue is full, retry in 1 ms */
        if (next > now + 100000)
            next = now + 100000; /* notice `stopping` and new cycles within 100 ms */
        hb_sleep_until_mono(next);
    }
    return NULL;
}

/* ---- journal commit -> SET wake-up -------------------------------------------- */

static void journal_notify(void *ctx, int set)
{
    hb_server *s = ctx;
    ev_async_send(s->sets[set]->loop, &s->sets[set]->wake);
}

/* ---- lifecycle ---------------------------------------------------------------- */

static int limits(hb_server *s, char *err, size_t errlen)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) { /* raising the soft limit needs no privilege */
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    /* What one descriptor table can give to connections: the limit minus
     * what every table inherits (two descriptors per SET loop, stdio,
     * journal, listeners) and a margin. */
    uint64_t reserve = 3 * (uint64_t)s->nsets + (uint64_t)s->nports + 64;
    uint64_t per_table = rl.rlim_cur > reserve + 16 ? rl.rlim_cur - reserve : 16;
    uint64_t per_set = s->cfg.private_fds ? per_table : per_table / (uint64_t)s->nsets;
    if (per_set < 1)
        per_set = 1;
    if (s->cfg.max_conns == 0)
        s->cfg.max_conns = (int64_t)per_set;
    else if ((uint64_t)s->cfg.max_conns > per_set)
        hb_log("warning: --max-conns %lld is above what a descriptor table allows here (%llu); accept() will hit EMFILE "
               "first",
               (long long)s->cfg.max_conns, (unsigned long long)per_set);
    (void)err;
    (void)errlen;
    return 0;
}

int hb_server_init(hb_server *s, char *err, size_t errlen)
{
    hb_config *c = &s->cfg;
    s->nsets = (int)c->sets;
    s->rng_seed = c->seed ? (uint64_t)c->seed : hb_seed();
    s->start_us = hb_now_us();
    if ((s->nports = hb_parse_ports(c->ports, s->ports, HB_MAX_PORTS, err, errlen)) < 0)
        return -1;
    if (inet_pton(AF_INET, c->listen, &s->listen_addr) != 1) {
        snprintf(err, errlen, "--listen: '%s' is not an IPv4 address", c->listen);
        return -1;
    }
    if (c->amount_min > c->amount_max || c->send_amount_min > c->send_amount_max) {
        snprintf(err, errlen, "amount range: min is above max");
        return -1;
    }
    if (c->send_total > 0 && (uint64_t)c->send_split > (uint64_t)c->users) {
        snprintf(err, errlen, "--send-split %lld needs at least that many --users", (long long)c->send_split);
        return -1;
    }
    if (c->send_total > 0 && c->send_amount_min < c->send_split) {
        snprintf(err, errlen, "--send-amount-min must be at least --send-split (every share is >= 1 cent)");
        return -1;
    }
    if (c->secret_file && *c->secret_file &&
        hb_secret_load(c->secret_file, s->secret, &s->secret_len, err, errlen) < 0)
        return -1;
    if (limits(s, err, errlen) < 0)
        return -1;
    if (hb_dir_init(&s->dir, (uint32_t)c->users, (uint64_t)c->pending_max, (uint64_t)c->pending_per_uid) < 0 ||
        hb_registry_init(&s->reg) < 0) {
        snprintf(err, errlen, "out of memory for %lld users", (long long)c->users);
        return -1;
    }
    if (c->addr_limit > 0 && !(s->addrs = hb_addr_new())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (hb_reporter_init(&s->reporter, c->monitor, HB__ROLE__ROLE_SERVER, c->instance, err, errlen) < 0)
        return -1;
    s->sets = calloc((size_t)s->nsets, sizeof *s->sets);
    if (!s->sets) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int hb_server_start(hb_server *s, char *err, size_t errlen)
{
    hb_config *c = &s->cfg;
    hb_replay_t rp;
    if (hb_replay(s, c->journal, &rp, err, errlen) < 0)
        return -1;
    if (rp.records)
        hb_log("journal %s: %llu records replayed: %llu+%llu packets made, %llu wins (%llu cents), %llu shares (%llu "
               "cents), %zu unwon packets dealt again%s%s",
               c->journal, (unsigned long long)rp.records, (unsigned long long)rp.shake_made,
               (unsigned long long)rp.send_made, (unsigned long long)rp.wins, (unsigned long long)rp.win_amount,
               (unsigned long long)rp.shares, (unsigned long long)rp.share_amount, rp.n_unwon,
               rp.stop_reason ? "; cut a " : "", rp.stop_reason ? rp.stop_reason : "");
    if (rp.anomalies)
        hb_log("journal %s: %llu inconsistent records ignored (see above)", c->journal,
               (unsigned long long)rp.anomalies);
    if (rp.intact_after) {
        /* Cutting here would drop durable grants written after the damage,
         * and their packets could be paid again: not without being told. */
        if (!c->journal_cut) {
            snprintf(err, errlen,
                     "journal %s: the entry at byte %zu is damaged (%s) but intact entries follow (from byte %zu): "
                     "this is not a torn tail from a crash. Refusing to start; inspect it (hb-reconcile --journal "
                     "reads it), or start with --journal-cut to cut it at byte %zu and lose what follows",
                     c->journal, rp.valid, rp.stop_reason, rp.intact_after, rp.valid);
            hb_replay_free(&rp);
            return -1;
        }
        hb_log("warning: --journal-cut: cutting %s at byte %zu; %zu bytes after the damage are dropped", c->journal,
               rp.valid, rp.size - rp.valid);
    }
    s->replayed_wins = rp.wins;
    s->replayed_win_amount = rp.win_amount;
    s->replayed_shares = rp.shares;
    s->replayed_share_amount = rp.share_amount;
    if (hb_journal_open(&s->journal, c->journal, c->fsync, rp.valid, err, errlen) < 0) {
        hb_replay_free(&rp);
        return -1;
    }

    /* Every SET's loop and eventfd exist before any SET thread unshares its
     * descriptor table (see hb_set_create). */
    for (int i = 0; i < s->nsets; i++)
        if (hb_set_create(s, i, err, errlen) < 0) {
            hb_replay_free(&rp);
            return -1;
        }

    hb_producer_ops ops = {.ctx = s, .created = op_created, .deal = op_deal, .sent = op_sent, .pick = op_pick};
    if (hb_producer_init(&s->prod, &ops, s->nsets, s->rng_seed ^ 0x5eed) < 0) {
        snprintf(err, errlen, "out of memory");
        hb_replay_free(&rp);
        return -1;
    }
    s->prod.split = (unsigned)c->send_split;
    s->prod.send_concurrent = c->send_concurrent;
    /* Cycles already begun before a restart: as many as what was made needs
     * (a cycle begun but with nothing made yet is lost with the crash: ask
     * for it again). */
    int cycles = 1, a = cycles_for(rp.shake_made, c->total), b = cycles_for(rp.send_made, c->send_total);
    cycles = a > cycles ? a : cycles;
    cycles = b > cycles ? b : cycles;
    atomic_store(&s->cycles_requested, cycles);
    atomic_store(&s->cycles_started, cycles);
    hb_flow_set(&s->prod.shake, c->rate, (uint64_t)cycles * (uint64_t)c->total, rp.shake_made, (uint32_t)c->amount_min,
                (uint32_t)c->amount_max);
    hb_flow_set(&s->prod.send, c->send_rate, (uint64_t)cycles * (uint64_t)c->send_total, rp.send_made,
                (uint32_t)c->send_amount_min, (uint32_t)c->send_amount_max);

    /* Packets created before a crash and never won go back into the queues. */
    for (size_t i = 0; i < rp.n_unwon; i++)
        for (int tries = 0; tries < s->nsets; tries++) {
            int k = (int)((i + (size_t)tries) % (size_t)s->nsets);
            if (hb_pqueue_push(&s->sets[k]->q, &rp.unwon[i]))
                break;
            if (tries == s->nsets - 1)
                hb_log("warning: packet %llu from the journal does not fit any queue (raise --queue)",
                       (unsigned long long)rp.unwon[i].id);
        }
    if (rp.n_unwon)
        atomic_store(&s->event_started, true);
    hb_replay_free(&rp);

    /* Blocked in every thread but main, which takes them through libev. */
    sigset_t all;
    sigfillset(&all);
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &all, &old);

    if (hb_journal_start(&s->journal, s->nsets, journal_notify, s) < 0) {
        snprintf(err, errlen, "cannot start the journal thread");
        return -1;
    }
    for (int i = 0; i < s->nsets; i++)
        if (hb_set_start(s->sets[i], err, errlen) < 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            return -1;
        }

    /* Send-flow packets whose recipients had not all opened: tell them
     * again; they are offline now, so the notices wait for their login. */
    uint64_t renotified = 0;
    for (uint64_t k = 0; k < atomic_load(&s->reg.send_count); k++) {
        hb_sendpkt p;
        if (hb_registry_get_send(&s->reg, hb_send_id(k), &p) && p.opened != (uint8_t)((1u << p.n) - 1)) {
            notify_recipients(s, hb_send_id(k), &p, p.opened);
            renotified++;
        }
    }
    if (renotified)
        hb_log("%llu send packets not fully opened: recipients notified again", (unsigned long long)renotified);

    if (pthread_create(&producer_th, NULL, producer_main, s) != 0) {
        snprintf(err, errlen, "cannot start the producer thread");
        return -1;
    }
    producer_running = true;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}

void hb_server_stop(hb_server *s)
{
    atomic_store(&s->stopping, true);
    if (producer_running) {
        pthread_join(producer_th, NULL);
        producer_running = false;
    }
    for (int i = 0; i < s->nsets; i++)
        if (s->sets[i])
            hb_set_stop(s->sets[i]);
    hb_journal_close(&s->journal);
}

void hb_server_free(hb_server *s)
{
    for (int i = 0; i < s->nsets; i++)
        hb_set_destroy(s->sets[i]);
    free(s->sets);
    s->sets = NULL;
    hb_producer_free(&s->prod);
    hb_dir_free(&s->dir);
    hb_registry_free(&s->reg);
    hb_addr_free(s->addrs);
    hb_reporter_close(&s->reporter);
}
