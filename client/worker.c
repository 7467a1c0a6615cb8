/* worker.c -- a client worker: connect (paced, with back-off), log in, shake
 * on schedule, open notices, chat, and record what comes back.
 *
 * Per connection: IDLE (queued to connect or backing off) -> CONNECTING ->
 * LOGIN (Login sent) -> ACTIVE.  Any loss goes back to IDLE with a
 * reconnect after a random delay in [0, min(cap, base * 2^attempt)) ("full
 * jitter"), so a server restart with a million clients does not come back as
 * one synchronized storm.  A shake or open still unanswered when the
 * connection drops is resent after the next login, flagged as a retry: the
 * server answers it from its grant record, so no win is lost or doubled. */
#include "worker.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void wake_cb(struct ev_loop *loop, ev_async *a, int revents);

/* ---- sending ----------------------------------------------------------------- */

static void conn_lost(cl_worker *w, cl_conn *c);

static void conn_write(cl_worker *w, cl_conn *c, const uint8_t *p, size_t n)
{
    if (c->outlen) { /* behind already: queue (bounded; a server that reads nothing is dropped) */
        if (c->outlen + n > 65536) {
            conn_lost(w, c);
            return;
        }
        uint8_t *o = realloc(c->out, c->outlen + n);
        if (!o) {
            conn_lost(w, c);
            return;
        }
        memcpy(o + c->outlen, p, n);
        c->out = o;
        c->outlen += (uint32_t)n;
        return;
    }
    ssize_t r = send(c->io.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r == (ssize_t)n) {
        HB_ADD(w->st.bytes_out, n);
        return;
    }
    if (r < 0 && errno != EAGAIN && errno != EINTR) {
        conn_lost(w, c);
        return;
    }
    if (r < 0)
        r = 0;
    HB_ADD(w->st.bytes_out, (uint64_t)r);
    c->out = malloc(n - (size_t)r);
    if (!c->out) {
        conn_lost(w, c);
        return;
    }
    memcpy(c->out, p + r, n - (size_t)r);
    c->outlen = (uint32_t)(n - (size_t)r);
    ev_io_stop(w->loop, &c->io);
    ev_io_set(&c->io, c->io.fd, EV_READ | EV_WRITE);
    ev_io_start(w->loop, &c->io);
}

static void send_frame(cl_worker *w, cl_conn *c, const Hb__Frame *f)
{
    uint8_t buf[HB_FRAME_WIRE_MAX];
    size_t n = hb_frame_pack(f, buf, sizeof buf);
    if (n)
        conn_write(w, c, buf, n);
}

static void send_shake(cl_worker *w, cl_conn *c, bool retry)
{
    Hb__Shake sh = HB__SHAKE__INIT;
    sh.seq = c->seq;
    sh.retry = retry;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_SHAKE;
    f.shake = &sh;
    c->sent_us = cl_now(w->cl);
    send_frame(w, c, &f);
}

static void send_open(cl_worker *w, cl_conn *c, uint64_t packet_id)
{
    Hb__Open o = HB__OPEN__INIT;
    o.packet_id = packet_id;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_OPEN;
    f.open = &o;
    send_frame(w, c, &f);
    HB_INC(w->st.opens);
}

static void send_login(cl_worker *w, cl_conn *c)
{
    cl_client *cl = w->cl;
    uint8_t tok[HB_TOKEN_LEN];
    Hb__Login l = HB__LOGIN__INIT;
    l.uid = c->uid;
    if (cl->secret_len) {
        hb_token_make(cl->secret, cl->secret_len, c->uid, tok);
        l.token.data = tok;
        l.token.len = sizeof tok;
    }
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_LOGIN;
    f.login = &l;
    c->sent_us = cl_now(cl);
    send_frame(w, c, &f);
}

/* ---- connection life ------------------------------------------------------------ */

static void heap_push(cl_worker *w, int64_t due, uint32_t conn)
{
    size_t i = w->hlen++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (w->heap[p].due <= due)
            break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = (struct cl_due){due, conn};
}

static struct cl_due heap_pop(cl_worker *w)
{
    struct cl_due top = w->heap[0], last = w->heap[--w->hlen];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, s = l;
        if (l >= w->hlen)
            break;
        if (l + 1 < w->hlen && w->heap[l + 1].due < w->heap[l].due)
            s = l + 1;
        if (w->heap[s].due >= last.due)
            break;
        w->heap[i] = w->heap[s];
        i = s;
    }
    if (w->hlen)
        w->heap[i] = last;
    return top;
}

static void queue_connect(cl_worker *w, uint32_t i)
{
    w->cq[(w->cq_head + w->cq_len) % w->n] = i;
    w->cq_len++;
}

/* Reconnect connection i after a random delay in [0, min(cap, base * 2^attempt)). */
static void schedule_retry(cl_worker *w, uint32_t i)
{
    cl_client *cl = w->cl;
    cl_conn *c = &w->conns[i];
    if (atomic_load(&cl->stopping))
        return;
    int64_t cap = cl->cfg.backoff_base_ms << (c->attempt < 20 ? c->attempt : 20);
    if (cap > cl->cfg.backoff_cap_ms)
        cap = cl->cfg.backoff_cap_ms;
    if (c->attempt < 255)
        c->attempt++;
    /* Full jitter: uniform in [0, cap].  "none" (for comparison only) waits
     * exactly the cap: every client that lost the server at the same moment
     * comes back at the same moments, the storm jitter prevents. */
    int64_t delay_us = cl->cfg.backoff_jitter ? (int64_t)(hb_rand64(&w->rng) % (uint64_t)(cap * 1000 + 1)) : cap * 1000;
    heap_push(w, hb_mono_us() + delay_us, i);
}

/* Close and schedule a reconnect with exponential back-off and full jitter. */
static void conn_lost(cl_worker *w, cl_conn *c)
{
    if (c->state == CL_IDLE)
        return;
    if (c->state == CL_ACTIVE)
        HB_DEC(w->st.active);
    if (c->state != CL_CONNECTING)
        HB_DEC(w->st.connected);
    ev_io_stop(w->loop, &c->io);
    close(c->io.fd);
    c->io.fd = -1;
    free(c->spill);
    free(c->out);
    c->spill = c->out = NULL;
    c->inlen = c->outlen = 0;
    c->state = CL_IDLE;
    HB_INC(w->st.closes);
    for (size_t i = 0; i < w->nopens; i++)
        if (w->opens[i].conn == (uint32_t)(c - w->conns))
            w->opens[i].sent = 0;
    schedule_retry(w, (uint32_t)(c - w->conns));
}

static void start_connect(cl_worker *w, uint32_t i)
{
    cl_client *cl = w->cl;
    cl_conn *c = &w->conns[i];
    /* Spread users evenly over (destination port, source address) pairs:
     * connect() slows down badly once one 4-tuple space is half used. */
    const struct sockaddr_in *dst = &cl->dst[c->uid % (uint32_t)cl->ndst];
    const struct in_addr *src = cl->nsrc ? &cl->src[(c->uid / (uint32_t)cl->ndst) % (uint32_t)cl->nsrc] : NULL;
    HB_INC(w->st.connects);
    int fd = hb_connect_nb(dst, src);
    if (fd < 0) {
        HB_INC(w->st.connect_fail);
        schedule_retry(w, i);
        return;
    }
    hb_tcp_nodelay(fd);
    c->state = CL_CONNECTING;
    c->sent_us = cl_now(cl);
    ev_io_init(&c->io, io_cb, fd, EV_WRITE);
    ev_io_start(w->loop, &c->io);
    c->try_id++;
    /* Connect timeouts are tracked in start order.  The ring holds one entry
     * per connection; if it is full (entries of finished attempts waiting
     * behind a stuck one), this attempt goes untimed and the kernel's own
     * SYN retries end it. */
    if (w->pend_len < w->n) {
        w->pend[(w->pend_head + w->pend_len) % w->n] = (struct cl_pend){hb_mono_us(), i, c->try_id};
        w->pend_len++;
    }
}

static void connected(cl_worker *w, cl_conn *c)
{
    int e = 0;
    socklen_t el = sizeof e;
    getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &e, &el);
    if (e) {
        HB_INC(w->st.connect_fail);
        conn_lost(w, c);
        return;
    }
    HB_INC(w->st.connected);
    ev_io_stop(w->loop, &c->io);
    ev_io_set(&c->io, c->io.fd, EV_READ);
    ev_io_start(w->loop, &c->io);
    if (w->cl->cfg.echo) { /* the echo server has no login */
        c->state = CL_ACTIVE;
        HB_INC(w->st.active);
        c->attempt = 0;
        return;
    }
    c->state = CL_LOGIN;
    send_login(w, c);
}

/* ---- clock samples ------------------------------------------------------------------ */

/* NTP-style: the server stamped ts somewhere between our send (t0) and our
 * receive (t3); offset = ts - (t0 + t3) / 2, good to within half the round
 * trip.  The sample with the smallest round trip is the most trustworthy. */
static void clock_sample(cl_worker *w, int64_t t0, int64_t t3, int64_t ts)
{
    if (!ts || t3 < t0)
        return;
    int64_t delay = t3 - t0;
    if (w->best_delay < 0 || delay < w->best_delay) {
        w->best_delay = delay;
        w->best_offset = ts - (t0 + t3) / 2;
    }
}

/* ---- receiving ---------------------------------------------------------------------- */

static void on_shake_reply(cl_worker *w, cl_conn *c, const Hb__ShakeReply *r, int64_t now)
{
    if (!c->seq || r->seq != c->seq) {
        HB_INC(w->st.stale);
        return;
    }
    /* Latency from when the shake was due, not when it left: a stalled
     * server shows up in full (no coordinated omission). */
    hb_hist_record(&w->hist, (uint64_t)(now > c->due_us ? now - c->due_us : 0));
    clock_sample(w, c->sent_us, now, r->server_time_us);
    c->seq = 0;
    HB_DEC(w->st.outstanding);
    HB_INC(w->st.replies);
    switch (r->result) {
    case HB__RESULT__RESULT_WIN:
        HB_INC(w->st.wins);
        if (cl_keyset_add(&w->won, r->packet_id, c->uid)) {
            HB_ADD(w->st.amount_won, r->amount);
            cl_ledger_win(&w->cl->ledger, r->packet_id, c->uid, r->amount, r->seq);
        }
        break;
    case HB__RESULT__RESULT_NOT_YET: HB_INC(w->st.not_yet); break;
    case HB__RESULT__RESULT_RATE_LIMITED: HB_INC(w->st.rate_limited); break;
    default: HB_INC(w->st.losses); break;
    }
}

static void add_open(cl_worker *w, uint64_t packet_id, uint32_t conn)
{
    for (size_t i = 0; i < w->nopens; i++)
        if (w->opens[i].packet_id == packet_id && w->opens[i].conn == conn)
            return; /* a repeated notice: already opening */
    if (w->nopens == w->capopens) {
        size_t ncap = w->capopens ? w->capopens * 2 : 64;
        cl_open *n = realloc(w->opens, ncap * sizeof *n);
        if (!n)
            return;
        w->opens = n;
        w->capopens = ncap;
    }
    w->opens[w->nopens++] = (cl_open){packet_id, conn, 0};
    HB_INC(w->st.outstanding);
}

static void on_open_reply(cl_worker *w, cl_conn *c, const Hb__OpenReply *r)
{
    uint32_t ci = (uint32_t)(c - w->conns);
    size_t i = 0;
    while (i < w->nopens && !(w->opens[i].packet_id == r->packet_id && w->opens[i].conn == ci))
        i++;
    if (i == w->nopens) {
        HB_INC(w->st.stale);
        return;
    }
    w->opens[i] = w->opens[--w->nopens];
    HB_DEC(w->st.outstanding);
    if (r->status == HB__OPEN_STATUS__OPEN_OK || (r->status == HB__OPEN_STATUS__OPEN_ALREADY && r->share)) {
        /* ALREADY with a share: we opened before but the reply was lost with
         * the connection; the server repeats what we got. */
        if (r->status == HB__OPEN_STATUS__OPEN_OK)
            HB_INC(w->st.opens_ok);
        else
            HB_INC(w->st.opens_again);
        if (cl_keyset_add(&w->shared, r->packet_id, c->uid)) {
            HB_ADD(w->st.share_amount, r->share);
            cl_ledger_share(&w->cl->ledger, r->packet_id, c->uid, r->share);
        }
    } else {
        HB_INC(w->st.opens_rejected);
    }
}

/* Returns false if the connection was dropped. */
static bool on_frame(cl_worker *w, cl_conn *c, const uint8_t *body, size_t len, int64_t now)
{
    Hb__Frame *f = hb_frame_unpack(&w->arena, body, len);
    if (!f) {
        HB_INC(w->st.protocol_errors);
        conn_lost(w, c);
        return false;
    }
    switch (f->body_case) {
    case HB__FRAME__BODY_LOGIN_OK:
        if (c->state != CL_LOGIN)
            break;
        c->state = CL_ACTIVE;
        c->attempt = 0;
        HB_INC(w->st.active);
        HB_INC(w->st.logins);
        clock_sample(w, c->sent_us, now, f->login_ok->server_time_us);
        if (c->seq) { /* unanswered before the drop: ask again, as a retry */
            HB_INC(w->st.retries);
            send_shake(w, c, true);
        }
        for (size_t i = 0; i < w->nopens; i++)
            if (w->opens[i].conn == (uint32_t)(c - w->conns) && !w->opens[i].sent) {
                w->opens[i].sent = 1;
                send_open(w, c, w->opens[i].packet_id);
            }
        break;
    case HB__FRAME__BODY_SHAKE_REPLY:
        on_shake_reply(w, c, f->shake_reply, now);
        break;
    case HB__FRAME__BODY_SHAKE: /* echo mode: our own frame back */
        if (w->cl->cfg.echo) {
            Hb__ShakeReply r = HB__SHAKE_REPLY__INIT;
            r.seq = f->shake->seq;
            on_shake_reply(w, c, &r, now);
        } else {
            HB_INC(w->st.protocol_errors);
        }
        break;
    case HB__FRAME__BODY_NOTICE: {
        HB_INC(w->st.notices);
        uint32_t ci = (uint32_t)(c - w->conns);
        size_t before = w->nopens;
        add_open(w, f->notice->packet_id, ci);
        if (w->nopens > before) {
            w->opens[w->nopens - 1].sent = 1;
            send_open(w, c, f->notice->packet_id);
        }
        break;
    }
    case HB__FRAME__BODY_OPEN_REPLY:
        on_open_reply(w, c, f->open_reply);
        break;
    case HB__FRAME__BODY_CHAT:
        HB_INC(w->st.chats_recv);
        break;
    case HB__FRAME__BODY_ERROR: {
        HB_INC(w->st.error_frames);
        unsigned code = (unsigned)f->error->code;
        HB_INC(w->st.err[code < 32 ? code : 31]);
        break; /* the server closes next; we reconnect then */
    }
    default:
        HB_INC(w->st.protocol_errors);
        break;
    }
    return c->state != CL_IDLE;
}

static void conn_read(cl_worker *w, cl_conn *c)
{
    uint8_t *rb = w->rbuf;
    size_t have = c->inlen;
    if (have)
        memcpy(rb, c->inlen > CL_INLINE ? c->spill : c->in, have);
    ssize_t n = read(c->io.fd, rb + have, sizeof w->rbuf - have);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        conn_lost(w, c);
        return;
    }
    HB_ADD(w->st.bytes_in, (uint64_t)n);
    have += (size_t)n;
    int64_t now = cl_now(w->cl);
    size_t off = 0, prefix, body;
    int r;
    while ((r = hb_frame_scan(rb + off, have - off, HB_FRAME_MAX, &prefix, &body)) == HB_SCAN_FRAME) {
        if (!on_frame(w, c, rb + off + prefix, body, now))
            return;
        off += prefix + body;
    }
    if (r < 0) {
        HB_INC(w->st.protocol_errors);
        conn_lost(w, c);
        return;
    }
    size_t rest = have - off;
    if (rest > CL_INLINE) {
        uint8_t *s = realloc(c->spill, HB_FRAME_WIRE_MAX);
        if (!s) {
            conn_lost(w, c);
            return;
        }
        c->spill = s;
        memmove(s, rb + off, rest);
    } else {
        memcpy(c->in, rb + off, rest);
    }
    c->inlen = (uint16_t)rest;
}

static void io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    cl_worker *w = ev_userdata(loop);
    cl_conn *c = HB_CONTAINER_OF(io, cl_conn, io);
    if (c->state == CL_CONNECTING) {
        if (revents & (EV_WRITE | EV_READ))
            connected(w, c);
        return;
    }
    if (revents & EV_WRITE) {
        ssize_t r = send(c->io.fd, c->out, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0 && errno != EAGAIN && errno != EINTR) {
            conn_lost(w, c);
            return;
        }
        if (r > 0) {
            HB_ADD(w->st.bytes_out, (uint64_t)r);
            memmove(c->out, c->out + r, c->outlen - (size_t)r);
            c->outlen -= (uint32_t)r;
        }
        if (!c->outlen) {
            free(c->out);
            c->out = NULL;
            ev_io_stop(loop, &c->io);
            ev_io_set(&c->io, c->io.fd, EV_READ);
            ev_io_start(loop, &c->io);
        }
    }
    if (revents & EV_READ)
        conn_read(w, c);
}

/* ---- the schedule ----------------------------------------------------------------------- */

static void fire(void *ctx, uint32_t ref, uint64_t abs)
{
    cl_worker *w = ctx;
    cl_conn *c = &w->conns[ref];
    if (c->state != CL_ACTIVE) {
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
    send_shake(w, c, false);
}

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
    send_frame(w, c, &f);
    HB_INC(w->st.chats_sent);
}

static void refresh_plan(cl_worker *w)
{
    cl_client *cl = w->cl;
    uint64_t v = atomic_load(&cl->plan_version);
    if (v == w->plan_version)
        return;
    pthread_mutex_lock(&cl->plan_mu);
    w->plan = cl->plan;
    w->pend_at = cl->pending_at;
    w->pend_qps = cl->pending_qps;
    w->plan_version = atomic_load(&cl->plan_version);
    pthread_mutex_unlock(&cl->plan_mu);
}

static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    cl_worker *w = ev_userdata(loop);
    cl_client *cl = w->cl;
    int64_t mono = hb_mono_us();

    /* back-off expiries go to the connect queue */
    while (w->hlen && w->heap[0].due <= mono)
        queue_connect(w, heap_pop(w).conn);

    /* paced connects */
    double dt = (double)(mono - w->last_tick) / 1e6;
    w->last_tick = mono;
    double rate = (double)cl->cfg.connect_rate / cl->nworkers;
    w->tokens += dt * rate;
    if (w->tokens > rate / 10 + 1)
        w->tokens = rate / 10 + 1; /* at most 100 ms worth in one burst */
    while (w->cq_len && w->tokens >= 1 && w->pend_len < (size_t)cl->cfg.inflight) {
        uint32_t i = w->cq[w->cq_head];
        w->cq_head = (w->cq_head + 1) % w->n;
        w->cq_len--;
        w->tokens -= 1;
        start_connect(w, i);
    }

    /* connects that never completed */
    int64_t limit = (int64_t)(cl->cfg.connect_timeout * 1e6);
    while (w->pend_len) {
        struct cl_pend *p = &w->pend[w->pend_head];
        cl_conn *c = &w->conns[p->conn];
        bool live = c->state == CL_CONNECTING && c->try_id == p->try_id;
        if (live && mono - p->since < limit)
            break;
        if (live) {
            HB_INC(w->st.connect_fail);
            conn_lost(w, c);
        }
        w->pend_head = (w->pend_head + 1) % w->n;
        w->pend_len--;
    }

    /* shakes due by now on the schedule's clock */
    refresh_plan(w);
    int64_t snow = cl_sched_now(cl);
    if (w->pend_at && snow >= w->pend_at * 1000000) {
        /* the new rate starts exactly at its second, in every worker of
         * every client, whenever main gets round to it */
        cl_plan_change(&w->plan, w->pend_at, w->pend_qps);
        w->pend_at = 0;
    }
    uint64_t due = cl_plan_due(&w->plan, snow);
    /* On the server's clock we shake only once its offset is known: shaking
     * on the local clock first and then jumping would fire a burst. */
    bool clock_ready = !cl->server_clock || atomic_load(&cl->offset_delay_us) >= 0;
    /* Like the seed's stage 1: all users connected first, then shaking (a
     * bounded wait, so a few refused users cannot hold the run). */
    if (!w->ramped && (!cl->cfg.wait_connected || HB_GET(w->st.active) >= w->n ||
                       mono - w->start_mono > 30 * 1000000LL))
        w->ramped = true;
    bool sending = cl->cfg.shake && clock_ready && w->ramped && !atomic_load(&cl->paused) &&
                   !atomic_load(&cl->stop_sending);
    /* Not sending (paused, clock unknown): what falls due meanwhile is
     * skipped, not made up; on (re)starting, only what falls due from now. */
    if (!sending || !w->sending)
        cl_mine_seek(&w->mine, due);
    else
        cl_mine_advance(&w->mine, due, fire, w);
    w->sending = sending;

    /* chat */
    if (cl->cfg.chat_rate > 0 && !atomic_load(&cl->stop_sending)) {
        w->chat_tokens += dt * cl->cfg.chat_rate * w->n / (double)cl->cfg.users;
        while (w->chat_tokens >= 1) {
            w->chat_tokens -= 1;
            chat(w);
        }
    }

    /* once a second: hand the histogram and the clock sample to main */
    int64_t sec = cl_now(cl) / 1000000;
    if (sec != w->last_second) {
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
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    cl_worker *w = ev_userdata(loop);
    if (atomic_load(&w->cl->stopping))
        ev_break(loop, EVBREAK_ALL);
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
    w->rng = cl->seed ^ ((uint64_t)(id + 1) * 0x9e3779b97f4a7c15ULL);
    w->next_seq = (uint32_t)hb_rand64(&w->rng); /* differs per run: a retry never matches an old run's seq */
    w->best_delay = -1;
    w->out_delay = -1;
    w->plan_version = UINT64_MAX; /* copy the plan on the first tick */
    pthread_mutex_init(&w->out_mu, NULL);
    hb_arena_init(&w->arena, w->arena_mem, sizeof w->arena_mem);
    w->conns = calloc(n ? n : 1, sizeof *w->conns);
    w->cq = malloc((n ? n : 1) * sizeof *w->cq);
    w->pend = malloc((n ? n : 1) * sizeof *w->pend);
    w->heap = malloc((n ? n : 1) * sizeof *w->heap);
    uint32_t *pos = malloc((n ? n : 1) * sizeof *pos), *ref = malloc((n ? n : 1) * sizeof *ref);
    if (!w->conns || !w->cq || !w->pend || !w->heap || !pos || !ref) {
        snprintf(err, errlen, "out of memory for %u connections", n);
        free(pos);
        free(ref);
        cl_worker_free(w);
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        w->conns[i].uid = uid0 + i;
        w->conns[i].io.fd = -1;
        pos[i] = (uint32_t)cl_layout_pos(&cl->layout, uid0 + i);
        ref[i] = i;
        queue_connect(w, i);
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
    double tick = (double)cl->cfg.tick_ms / 1000.0;
    ev_timer_init(&w->tick, tick_cb, tick, tick);
    ev_timer_start(w->loop, &w->tick);
    return w;
}

static void *worker_main(void *arg)
{
    cl_worker *w = arg;
    char name[16];
    snprintf(name, sizeof name, "hb-worker-%d", w->id);
    pthread_setname_np(pthread_self(), name);
    /* Our own descriptor table: up to RLIMIT_NOFILE connections per worker. */
    if (unshare(CLONE_FILES) == 0)
        w->unshared = true;
    atomic_store(&w->ready, true);
    w->last_tick = w->start_mono = hb_mono_us();
    w->last_second = cl_now(w->cl) / 1000000;
    refresh_plan(w);
    cl_mine_seek(&w->mine, cl_plan_due(&w->plan, cl_sched_now(w->cl)));
    ev_run(w->loop, 0);
    for (uint32_t i = 0; i < w->n; i++)
        if (w->conns[i].state != CL_IDLE) {
            ev_io_stop(w->loop, &w->conns[i].io);
            close(w->conns[i].io.fd);
        }
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

void cl_worker_record_unanswered(cl_worker *w)
{
    for (uint32_t i = 0; i < w->n; i++)
        if (w->conns[i].seq)
            cl_ledger_unanswered_shake(&w->cl->ledger, w->conns[i].uid, w->conns[i].seq);
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
        for (uint32_t i = 0; i < w->n; i++) {
            free(w->conns[i].spill);
            free(w->conns[i].out);
        }
    free(w->conns);
    free(w->cq);
    free(w->pend);
    free(w->heap);
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
