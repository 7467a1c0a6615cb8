/* worker.c -- a client worker thread: its loop, and the tick that drives it.
 * The tick runs in phases, each its own function (as Redis' serverCron calls
 * clientsCron): back-off expiries, paced connects, connect timeouts, due
 * shakes, chat, and the once-a-second hand-over to main.  A connection's I/O
 * and frames are conn.c.
 *
 * The tick is not periodic: before every sleep of the loop (an ev_prepare)
 * the worker arms one timer for the first thing that will need it -- its next
 * due shake, a back-off or connect deadline, the second's hand-over when it
 * holds latencies -- but never sooner than --tick ms after the last tick, so
 * at high rates a tick still sends every shake due in that time.  Nothing to
 * do, no wake-up: an idle worker sleeps (it used to wake 1,000 times a
 * second).  Other threads that change what is due (a new rate, pause,
 * resume, the clock offset found) wake it with cl_client_nudge.
 *
 * Shakes are due from the clock alone (schedule.h): the worker keeps its own
 * copy of the rate plan and of the changes waiting for their second, and
 * applies each change exactly at its second; it copies main's plan and queue
 * again only when their version moves. */
#include "worker.h"

#include <stdint.h>

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "conn.h"

/* The connect queue and the back-off heap hold up to 2 x nc entries: one
 * per connection, and the stale ones a promotion leaves behind (a parked
 * user whose standby was promoted; cl_conn_connect skips a busy one). */
static void queue_connect(cl_worker *w, uint32_t i)
{
    if (w->cq_len == 2 * (size_t)w->nc)
        return; /* not reached: see above */
    w->cq[(w->cq_head + w->cq_len) % (2 * w->nc)] = i;
    w->cq_len++;
}

/* ---- shakes and chats ----------------------------------------------------------------------- */

/* A position of this worker fell due: its user shakes, unless offline or
 * still waiting for the previous reply (skipped, not queued: the schedule
 * is the rate). */
static void fire(void *ctx, uint32_t ref, uint64_t abs)
{
    cl_worker *w = ctx;
    cl_conn *c = &w->conns[ref];
    if (c->state != CL_ACTIVE || (c->flags & CL_F_BROKEN)) {
        HB_INC(w->st.skipped_offline);
        return;
    }
    if (c->seq) {
        HB_INC(w->st.skipped_busy);
        return;
    }
    if (++w->next_seq == 0)
        w->next_seq = 1;
    c->seq = w->next_seq;
    /* The due time on the local clock: the schedule's clock minus the offset. */
    int64_t off = w->cl->server_clock ? atomic_load(&w->cl->offset_us) : 0;
    c->due_us = cl_plan_when(&w->plan, abs) - off;
    HB_INC(w->st.shakes);
    HB_INC(w->st.outstanding);
    cl_conn_send_shake(w, c, false);
}

/* One chat message from a random user of this worker to a random user. */
static void chat(cl_worker *w)
{
    cl_client *cl = w->cl;
    cl_conn *c = &w->conns[hb_rand_below(&w->rng, w->n)];
    if (c->state != CL_ACTIVE)
        return;
    char text[64];
    snprintf(text, sizeof text, "hello from %u", c->uid);
    Hb__Chat ch = HB__CHAT__INIT;
    ch.from_uid = c->uid;
    ch.to_uid = hb_rand_below(&w->rng, (uint32_t)cl->cfg.users);
    ch.text = text;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_CHAT;
    f.chat = &ch;
    cl_conn_send(w, c, &f);
    HB_INC(w->st.chats_sent);
}

/* Copy main's plan and waiting changes when their version has moved.  Main
 * may not have applied a change that is already due here: it is then still
 * in the queue, and shakes_due applies it at its second all the same. */
static void refresh_plan(cl_worker *w)
{
    if (atomic_load(&w->cl->plan_version) == w->plan_version)
        return;
    w->plan_version = cl_rate_copy(w->cl, &w->plan, &w->changes);
}

/* ---- the tick's phases ------------------------------------------------------------------- */

/* Connections whose back-off has ended go to the connect queue. */
static void backoff_expired(cl_worker *w, int64_t mono)
{
    uint32_t i;
    while (cl_backoff_due(w, mono, &i))
        queue_connect(w, i);
}

/* Cluster: until the first node answers, a worker sends only CL_PROBES
 * connects, so that once a member list comes with that answer its other
 * users connect straight to their owners (without a list every one of them
 * would go through the entry node and a Redirect); an answer without a list
 * (no cluster) or CL_PROBE_WAIT_US without any answer ends the wait. */
#define CL_PROBES 4
#define CL_PROBE_WAIT_US 1000000

static bool probing(cl_worker *w, int64_t mono)
{
    if (w->mem.known)
        return false;
    if (mono - w->start_mono >= CL_PROBE_WAIT_US) {
        w->mem.known = true;
        return false;
    }
    return HB_GET(w->st.connects) >= CL_PROBES;
}

/* Start queued connects at --connect-rate (shared by the workers), at most
 * --inflight at once. */
static void paced_connects(cl_worker *w, double dt, int64_t mono)
{
    cl_client *cl = w->cl;
    double rate = (double)cl->cfg.connect_rate / cl->nworkers;
    w->tokens += dt * rate;
    if (w->tokens > rate / 10 + 1)
        w->tokens = rate / 10 + 1; /* at most 100 ms worth in one burst */
    while (w->cq_len && w->tokens >= 1 && w->pend_len < (size_t)cl->cfg.inflight && !probing(w, mono)) {
        uint32_t i = w->cq[w->cq_head];
        w->cq_head = (w->cq_head + 1) % (2 * w->nc);
        w->cq_len--;
        w->tokens -= 1;
        cl_conn_connect(w, i);
    }
}

/* Sessions on a node that the last member list dropped go to their new
 * owners now, without waiting for the kernel to close them (a frozen node
 * never does): at most CL_MOVES_PER_TICK a tick, looking at at most
 * CL_SWEEP_SLOTS connections, so a worker never reconnects thousands in one
 * loop turn; the reconnects then follow --connect-rate. */
#define CL_MOVES_PER_TICK 64
#define CL_SWEEP_SLOTS 65536

static void members_tick(cl_worker *w, int64_t mono)
{
    cl_members *ms = &w->mem;
    cl_members_expire(ms, mono);
    cl_members_probe(w, mono);
    if (!ms->sweeping)
        return;
    uint32_t moves = 0, end = ms->sweep + CL_SWEEP_SLOTS;
    for (; ms->sweep < w->n && ms->sweep < end && moves < CL_MOVES_PER_TICK; ms->sweep++) {
        cl_conn *c = &w->conns[ms->sweep];
        if (c->state == CL_IDLE || c->member == CL_MEMBER_NONE || ms->m[c->member].listed)
            continue;
        HB_INC(w->st.moved);
        moves++;
        c->redir_port = 0;
        cl_conn_reconnect_now(w, c);
    }
    if (ms->sweep >= w->n)
        ms->sweeping = false;
}

/* --standby: once the worker's users are logged in and a member list names
 * a second node, their standbys queue to connect (at --connect-rate, behind
 * any session's reconnect). */
static bool standby_ready(const cl_worker *w)
{
    return w->cl->cfg.standby && !w->standby_queued && w->ramped && w->mem.nalive >= 2;
}

static void standby_tick(cl_worker *w)
{
    if (!standby_ready(w))
        return;
    w->standby_queued = true;
    for (uint32_t i = w->n; i < w->nc; i++)
        if (w->conns[i].state == CL_IDLE)
            queue_connect(w, i);
}

/* Close the buried sockets whose time has come (conn.c promote). */
static void graveyard_tick(cl_worker *w, int64_t mono)
{
    while (w->grave_len && w->grave[w->grave_head].due <= mono) {
        close(w->grave[w->grave_head].fd);
        w->grave_head = (w->grave_head + 1) % w->n;
        w->grave_len--;
    }
}

/* Connects that never completed within --connect-timeout fail and back off.
 * The ring is in start order, so the first live, young entry ends the scan. */
static void connect_timeouts(cl_worker *w, int64_t mono)
{
    int64_t limit = (int64_t)(w->cl->cfg.connect_timeout * 1e6);
    while (w->pend_len) {
        struct cl_pend *p = &w->pend[w->pend_head];
        cl_conn *c = &w->conns[p->conn];
        bool live = c->state == CL_CONNECTING && c->try_id == p->try_id;
        if (live && mono - p->since < limit)
            break;
        if (live) {
            HB_INC(w->st.connect_fail);
            cl_conn_lost(w, c);
        }
        w->pend_head = (w->pend_head + 1) % w->nc;
        w->pend_len--;
    }
}

/* Like the seed's stage 1: all users connected first, then shaking (a
 * bounded wait, so a few refused users cannot hold the run). */
#define RAMP_WAIT_US (30 * 1000000LL)

static bool ramp_done(cl_worker *w, int64_t mono)
{
    if (!w->ramped && (!w->cl->cfg.wait_connected || HB_GET(w->st.active) >= w->n ||
                       mono - w->start_mono > RAMP_WAIT_US))
        w->ramped = true;
    return w->ramped;
}

/* On the server's clock we shake only once its offset is known: shaking on
 * the local clock first and then jumping would fire a burst. */
static bool clock_ready(cl_client *cl)
{
    return !cl->server_clock || atomic_load(&cl->offset_delay_us) >= 0;
}

/* Whether this worker shakes now. */
static bool may_send(cl_worker *w, int64_t mono)
{
    cl_client *cl = w->cl;
    ramp_done(w, mono);
    /* A fleet task's window: every agent starts at the same second and none
     * shakes from the stop second on, whenever its main thread notices. */
    int64_t snow = cl_sched_now(cl);
    bool in_window = snow >= cl->cfg.start_at * 1000000 && (!cl->cfg.stop_at || snow < cl->cfg.stop_at * 1000000);
    return cl->cfg.shake && clock_ready(cl) && w->ramped && in_window && !atomic_load(&cl->paused) &&
           !atomic_load(&cl->stop_sending);
}

/* Shakes due by now on the schedule's clock. */
static void shakes_due(cl_worker *w, int64_t mono)
{
    refresh_plan(w);
    int64_t snow = cl_sched_now(w->cl);
    /* each new rate starts exactly at its second, in every worker of every
     * client, whenever main gets round to it */
    cl_changes_apply(&w->changes, &w->plan, snow);
    uint64_t due = cl_plan_due(&w->plan, snow);
    bool sending = may_send(w, mono);
    /* Not sending (paused, clock unknown): what falls due meanwhile is
     * skipped, not made up; on (re)starting, only what falls due from now. */
    if (!sending || !w->sending)
        cl_mine_seek(&w->mine, due);
    else
        cl_mine_advance(&w->mine, due, fire, w);
    w->sending = sending;
}

/* Chat messages at this worker's share of --chat-rate. */
static void chats(cl_worker *w, double dt)
{
    cl_client *cl = w->cl;
    if (cl->cfg.chat_rate <= 0 || atomic_load(&cl->stop_sending))
        return;
    w->chat_tokens += dt * cl->cfg.chat_rate * w->n / (double)cl->cfg.users;
    while (w->chat_tokens >= 1) {
        w->chat_tokens -= 1;
        chat(w);
    }
}

/* Once a second: hand this second's histogram and best clock sample to main
 * (cl_worker_collect). */
static void hand_over(cl_worker *w)
{
    int64_t sec = cl_now(w->cl) / 1000000;
    if (sec == w->last_second)
        return;
    pthread_mutex_lock(&w->out_mu);
    hb_hist_merge(&w->hist_out, &w->hist);
    if (w->best_delay >= 0 && (w->out_delay < 0 || w->best_delay < w->out_delay)) {
        w->out_delay = w->best_delay;
        w->out_offset = w->best_offset;
    }
    pthread_mutex_unlock(&w->out_mu);
    w->best_delay = -1;
    hb_hist_reset(&w->hist);
    w->last_second = sec;
}

static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    cl_worker *w = ev_userdata(loop);
    int64_t mono = hb_mono_us();
    HB_INC(w->st.ticks);
    w->tick_planned = w->tick_at < mono ? w->tick_at : mono;
    double dt = (double)(mono - w->last_tick) / 1e6;
    w->last_tick = mono;
    members_tick(w, mono); /* suspicions ended before the back-offs they held */
    standby_tick(w);
    graveyard_tick(w, mono);
    backoff_expired(w, mono);
    paced_connects(w, dt, mono);
    connect_timeouts(w, mono);
    shakes_due(w, mono);
    chats(w, dt);
    hand_over(w);
}

/* ---- when to tick next ---------------------------------------------------------------- */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* When (schedule clock, unix us) this worker must tick for its shakes:
 * the next of its positions on the plan, the next rate change, or the moment
 * shaking can start; INT64_MAX when nothing will fall due unless another
 * thread changes something (and nudges). */
static int64_t shake_wake(cl_worker *w, int64_t mono, int64_t snow)
{
    cl_client *cl = w->cl;
    bool on = cl->cfg.shake && !atomic_load(&cl->stop_sending) && !atomic_load(&cl->paused) && clock_ready(cl);
    bool ramped = ramp_done(w, mono);
    if (on && ramped && snow >= cl->cfg.start_at * 1000000 && (!cl->cfg.stop_at || snow < cl->cfg.stop_at * 1000000)) {
        if (!w->sending)
            return snow; /* the next tick starts (and skips what fell due meanwhile) */
        int64_t at = w->changes.n ? w->changes.c[0].at * 1000000 : INT64_MAX;
        uint64_t x = cl_mine_next(&w->mine);
        if (w->plan.qps && x != UINT64_MAX)
            at = min64(at, cl_plan_when(&w->plan, x));
        return at;
    }
    /* Not shaking now.  A tick must see the stop before anything else: what
     * falls due while stopped is skipped, not sent when shaking resumes. */
    if (w->sending)
        return snow;
    if (!on)
        return INT64_MAX; /* resume and the first clock offset nudge */
    if (!ramped)
        return snow + (w->start_mono + RAMP_WAIT_US - mono) + 1; /* or the last login, an I/O event */
    if (snow < cl->cfg.start_at * 1000000)
        return cl->cfg.start_at * 1000000;
    return INT64_MAX; /* past --stop-at */
}

/* When (monotonic us) the next tick is needed; INT64_MAX: none. */
static int64_t next_tick(cl_worker *w, int64_t mono)
{
    cl_client *cl = w->cl;
    /* Ticks stay --tick apart, counted from when the last one was due (as a
     * periodic timer does): counted from when it ran, every late wake-up
     * would push all later ticks back. */
    int64_t soon = w->tick_planned + cl->cfg.tick_ms * 1000;
    int64_t at = INT64_MAX;
    if (w->cq_len)
        at = soon; /* paced connects */
    if (w->mem.sweeping)
        at = soon; /* moving sessions off a dropped node */
    if (w->mem.parked)
        at = min64(at, w->mem.next_probe);
    at = min64(at, w->mem.next_expiry);
    if (!w->mem.known && w->cq_len)
        at = min64(at, w->start_mono + CL_PROBE_WAIT_US);
    if (cl->cfg.chat_rate > 0 && !atomic_load(&cl->stop_sending))
        at = soon;
    if (w->hlen)
        at = min64(at, w->heap[0].due);
    if (w->pend_len) /* the oldest is the first to time out */
        at = min64(at, w->pend[w->pend_head].since + (int64_t)(cl->cfg.connect_timeout * 1e6));
    if (w->hist.count || w->best_delay >= 0) { /* hand over at the next second */
        int64_t now = cl_now(cl);
        at = min64(at, mono + (1000000 - now % 1000000));
    }
    /* The plan as it will be at the next tick: main's latest copy, and the
     * changes whose second has begun (each applies at its own second, so
     * applying here is the same as at the tick). */
    refresh_plan(w);
    int64_t snow = cl_sched_now(cl);
    cl_changes_apply(&w->changes, &w->plan, snow);
    int64_t s = shake_wake(w, mono, snow);
    if (s != INT64_MAX)
        at = min64(at, mono + (s > snow ? s - snow : 0));
    if (standby_ready(w)) /* shake_wake has just judged the ramp */
        at = soon;
    if (w->grave_len)
        at = min64(at, w->grave[w->grave_head].due);
    return at == INT64_MAX ? at : at > soon ? at : soon;
}

/* Before the loop sleeps: arm the tick timer for the next tick needed. */
static void arm_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)p;
    (void)revents;
    cl_worker *w = ev_userdata(loop);
    HB_INC(w->st.wakeups);
    int64_t mono = hb_mono_us();
    int64_t at = next_tick(w, mono);
    if (at == w->tick_at && (at == INT64_MAX || ev_is_active(&w->tick)))
        return;
    w->tick_at = at;
    ev_timer_stop(loop, &w->tick);
    if (at == INT64_MAX)
        return;
    /* The timer counts from the loop's cached time: bring it to now, or the
     * tick would come early by the time the callbacks took. */
    ev_now_update(loop);
    ev_timer_set(&w->tick, (double)(at - hb_mono_us()) / 1e6, 0.);
    ev_timer_start(loop, &w->tick);
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    cl_worker *w = ev_userdata(loop);
    if (atomic_load(&w->cl->stopping))
        ev_break(loop, EVBREAK_ALL);
    /* otherwise a nudge: arm_cb looks at the plan again before sleeping */
}

void cl_client_nudge(cl_client *cl)
{
    if (!cl->workers)
        return;
    for (int i = 0; i < cl->nworkers; i++)
        if (cl->workers[i] && cl->workers[i]->loop)
            ev_async_send(cl->workers[i]->loop, &cl->workers[i]->wake);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

cl_worker *cl_worker_new(cl_client *cl, int id, uint32_t uid0, uint32_t n, char *err, size_t errlen)
{
    cl_worker *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->id = id;
    w->cl = cl;
    w->uid0 = uid0;
    w->n = n;
    w->nc = cl->cfg.standby ? 2 * n : n;
    uint32_t nc = w->nc ? w->nc : 1;
    w->rng = cl->seed ^ ((uint64_t)(id + 1) * 0x9e3779b97f4a7c15ULL);
    /* Seqs from the run id, not from --seed: they differ per run, so a retry
     * never matches an old run's seq (the server would answer it with that
     * run's grant); per worker, so workers start far apart. */
    uint64_t s = cl->run_id ^ ((uint64_t)(id + 1) * 0x9e3779b97f4a7c15ULL);
    w->next_seq = (uint32_t)hb_rand64(&s);
    w->best_delay = -1;
    w->out_delay = -1;
    w->plan_version = UINT64_MAX; /* copy the plan on the first tick */
    pthread_mutex_init(&w->out_mu, NULL);
    hb_arena_init(&w->arena, w->arena_mem, sizeof w->arena_mem);
    w->conns = calloc(nc, sizeof *w->conns);
    w->cq = malloc(2 * (size_t)nc * sizeof *w->cq);
    w->pend = malloc(nc * sizeof *w->pend);
    w->heap = malloc(2 * (size_t)nc * sizeof *w->heap);
    w->grave = cl->cfg.standby ? malloc((n ? n : 1) * sizeof *w->grave) : NULL;
    uint32_t *pos = malloc((n ? n : 1) * sizeof *pos), *ref = malloc((n ? n : 1) * sizeof *ref);
    if (!w->conns || !w->cq || !w->pend || !w->heap || !pos || !ref || (cl->cfg.standby && !w->grave)) {
        snprintf(err, errlen, "out of memory for %u connections", n);
        free(pos);
        free(ref);
        cl_worker_free(w);
        return NULL;
    }
    cl_members_init(&w->mem);
    w->mem.known = cl->cfg.echo; /* the echo server has no login, so no list */
    for (uint32_t i = 0; i < n; i++) {
        w->conns[i].uid = uid0 + i;
        w->conns[i].io.fd = -1;
        w->conns[i].member = CL_MEMBER_NONE;
        pos[i] = (uint32_t)cl_layout_pos(&cl->layout, uid0 + i);
        ref[i] = i;
        queue_connect(w, i);
    }
    for (uint32_t i = n; i < w->nc; i++) { /* standbys: connected after the ramp (standby_tick) */
        w->conns[i].uid = uid0 + (i - n);
        w->conns[i].io.fd = -1;
        w->conns[i].member = CL_MEMBER_NONE;
        w->conns[i].flags = CL_F_STANDBY;
    }
    cl_mine_init(&w->mine, cl->layout.users, pos, ref, n);
    /* Everything another thread writes to exists before the unshare. */
    w->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV | EVFLAG_NOSIGMASK);
    if (!w->loop) {
        snprintf(err, errlen, "cannot create an epoll loop");
        cl_worker_free(w);
        return NULL;
    }
    ev_set_userdata(w->loop, w);
    ev_async_init(&w->wake, wake_cb);
    ev_async_start(w->loop, &w->wake);
    ev_init(&w->tick, tick_cb); /* armed by arm_cb before each sleep */
    w->tick_at = INT64_MAX;
    ev_prepare_init(&w->arm, arm_cb);
    ev_prepare_start(w->loop, &w->arm);
    return w;
}

static void *worker_main(void *arg)
{
    cl_worker *w = arg;
    char name[16];
    snprintf(name, sizeof name, "hb-worker-%d", w->id);
    pthread_setname_np(pthread_self(), name);
    if (w->cl->cfg.pin_workers >= 0)
        hb_thread_pin((int)(w->cl->cfg.pin_workers + w->id), name);
    /* Our own descriptor table: up to RLIMIT_NOFILE connections per worker. */
    if (unshare(CLONE_FILES) == 0)
        w->unshared = true;
    atomic_store(&w->ready, true);
    w->last_tick = w->tick_planned = w->start_mono = hb_mono_us();
    w->last_second = cl_now(w->cl) / 1000000;
    refresh_plan(w);
    int64_t snow = cl_sched_now(w->cl);
    cl_changes_apply(&w->changes, &w->plan, snow);
    cl_mine_seek(&w->mine, cl_plan_due(&w->plan, snow));
    ev_run(w->loop, 0);
    /* The last (partial) second's latencies too: the summary and the fleet's
     * merged histogram must hold every reply. */
    w->last_second = INT64_MIN;
    hand_over(w);
    for (uint32_t i = 0; i < w->nc; i++)
        if (w->conns[i].state != CL_IDLE) {
            ev_io_stop(w->loop, &w->conns[i].io);
            close(w->conns[i].io.fd);
        }
    for (; w->grave_len; w->grave_len--, w->grave_head = (w->grave_head + 1) % w->n)
        close(w->grave[w->grave_head].fd);
    return NULL;
}

int cl_worker_start(cl_worker *w, char *err, size_t errlen)
{
    int e = pthread_create(&w->th, NULL, worker_main, w);
    if (e) {
        snprintf(err, errlen, "pthread_create: %s", strerror(e));
        return -1;
    }
    while (!atomic_load(&w->ready)) /* it has its descriptor table before we go on */
        sched_yield();
    return 0;
}

void cl_worker_stop(cl_worker *w)
{
    if (!w->th)
        return;
    ev_async_send(w->loop, &w->wake);
    pthread_join(w->th, NULL);
    w->th = 0;
}

/* Why shake i is still unanswered, for the log: where it went, where the
 * session is, what our list says (a held shake waits for a login on the
 * node it was sent to, conn.c on_login_ok). */
static void say_unanswered(cl_worker *w, const cl_conn *c)
{
    static const char *const states[] = {"idle", "connecting", "logging in", "active", "standby"};
    int owner = cl_members_owner(&w->mem, c->uid);
    const cl_member *o = owner == CL_MEMBER_NONE ? NULL : &w->mem.m[owner];
    hb_log("unanswered: uid %u seq %u sent to node %u (%s); session %s on node %u, last request or connect %.1f s "
           "ago, attempt %u, flags 0x%x; our list's owner: node %u%s",
           c->uid, c->seq, c->seq_node, (c->flags & CL_F_RETRIED) ? "a retry, maybe taken before" : "not taken before",
           c->state < 5 ? states[c->state] : "?", c->node, (double)(cl_now(w->cl) - c->sent_us) / 1e6, c->attempt,
           c->flags, o ? o->band : 0, o && cl_members_suspected(&w->mem, (uint8_t)owner) ? " (suspected)" : "");
}

void cl_worker_record_unanswered(cl_worker *w)
{
    unsigned said = 0;
    for (uint32_t i = 0; i < w->n; i++)
        if (w->conns[i].seq) {
            cl_ledger_unanswered_shake(&w->cl->ledger, w->conns[i].uid, w->conns[i].seq);
            if (said++ < 20)
                say_unanswered(w, &w->conns[i]);
        }
    for (size_t i = 0; i < w->nopens; i++)
        cl_ledger_unanswered_open(&w->cl->ledger, w->opens[i].packet_id, w->conns[w->opens[i].conn].uid);
}

void cl_worker_free(cl_worker *w)
{
    if (!w)
        return;
    if (w->loop)
        ev_loop_destroy(w->loop);
    if (w->conns)
        for (uint32_t i = 0; i < w->nc; i++) {
            free(w->conns[i].spill);
            free(w->conns[i].out);
        }
    free(w->conns);
    free(w->cq);
    free(w->pend);
    free(w->heap);
    free(w->grave);
    free(w->mine.pos);
    free(w->mine.ref);
    free(w->opens);
    cl_keyset_free(&w->won);
    cl_keyset_free(&w->shared);
    free(w);
}

void cl_worker_collect(cl_worker *w, hb_hist *into, int64_t *best_delay, int64_t *best_offset)
{
    pthread_mutex_lock(&w->out_mu);
    hb_hist_merge(into, &w->hist_out);
    hb_hist_reset(&w->hist_out);
    if (w->out_delay >= 0 && (*best_delay < 0 || w->out_delay < *best_delay)) {
        *best_delay = w->out_delay;
        *best_offset = w->out_offset;
    }
    w->out_delay = -1;
    pthread_mutex_unlock(&w->out_mu);
}
