/* conn.c -- one client connection's I/O: connect (with back-off), log in,
 * write frames, read and dispatch what comes back.
 *
 * Per connection: IDLE (queued to connect or backing off) -> CONNECTING ->
 * LOGIN (Login sent) -> ACTIVE.  Any loss goes back to IDLE with a
 * reconnect after a random delay in [0, min(cap, base * 2^attempt)) ("full
 * jitter"), so a server restart with a million clients does not come back as
 * one synchronized storm.  A shake or open still unanswered when the
 * connection drops is resent after the next login, flagged as a retry: the
 * server answers it from its grant record, so no win is lost or doubled.
 *
 * Everything here runs on the connection's worker thread; the only state
 * shared with other threads is the worker's counters (single writer) and the
 * ledger (its own mutex). */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void peer_gone(cl_worker *w, cl_conn *c);
static void established(cl_worker *w, cl_conn *c);

/* ---- sending ----------------------------------------------------------------- */

/* A send failed (reset, broken pipe).  The node may have said why first:
 * a Redirect or an Error is followed by its half-close and, --linger (2 s)
 * later, its full close, after which what we send is answered with a
 * reset.  A client the box left behind by seconds (the 1M runs' stage 3)
 * sent its next shake into that reset before it read the Redirect, took
 * the node for dead and held the shake for it for ever.  So no peer_gone
 * here: stop writing and read; the read delivers what the node sent, then
 * the reset or EOF, and peer_gone. */
static void write_failed(cl_worker *w, cl_conn *c)
{
    c->flags |= CL_F_BROKEN;
    free(c->out);
    c->out = NULL;
    c->outlen = 0;
    ev_io_stop(w->loop, &c->io);
    ev_io_set(&c->io, c->io.fd, EV_READ);
    ev_io_start(w->loop, &c->io);
}

/* False: the bytes did not leave and never will (the connection broke or
 * was dropped); true: sent, or queued behind earlier output. */
static bool conn_write(cl_worker *w, cl_conn *c, const uint8_t *p, size_t n)
{
    if (c->flags & CL_F_BROKEN)
        return false; /* nothing goes out any more: see write_failed */
    if (c->outlen) { /* behind already: queue (bounded; a server that reads nothing is dropped) */
        if (c->outlen + n > 65536) {
            cl_conn_lost(w, c);
            return false;
        }
        uint8_t *o = realloc(c->out, c->outlen + n);
        if (!o) {
            cl_conn_lost(w, c);
            return false;
        }
        memcpy(o + c->outlen, p, n);
        c->out = o;
        c->outlen += (uint32_t)n;
        return true;
    }
    ssize_t r = send(c->io.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r == (ssize_t)n) {
        HB_ADD(w->st.bytes_out, n);
        return true;
    }
    if (r < 0 && errno != EAGAIN && errno != EINTR) {
        write_failed(w, c);
        return false;
    }
    if (r < 0)
        r = 0;
    HB_ADD(w->st.bytes_out, (uint64_t)r);
    c->out = malloc(n - (size_t)r);
    if (!c->out) {
        cl_conn_lost(w, c);
        return false;
    }
    memcpy(c->out, p + r, n - (size_t)r);
    c->outlen = (uint32_t)(n - (size_t)r);
    ev_io_stop(w->loop, &c->io);
    ev_io_set(&c->io, c->io.fd, EV_READ | EV_WRITE);
    ev_io_start(w->loop, &c->io);
    return true;
}

bool cl_conn_send(cl_worker *w, cl_conn *c, const Hb__Frame *f)
{
    uint8_t buf[HB_FRAME_WIRE_MAX];
    size_t n = hb_frame_pack(f, buf, sizeof buf);
    return n && conn_write(w, c, buf, n);
}

void cl_conn_send_shake(cl_worker *w, cl_conn *c, bool retry)
{
    Hb__Shake sh = HB__SHAKE__INIT;
    sh.seq = c->seq;
    sh.retry = retry;
    /* May a node have taken it before?  Not if it was never sent, nor if
     * the one node it went to redirected it unread (CL_NODE_ANY): resent
     * then, it is still a first ask here, and this node's Redirect frees it
     * again.  (Held for this node instead, such a shake waited for ever
     * for a login on a survivor its user had left: the user logged in
     * there as its node came back, and was redirected home at once.) */
    bool maybe_taken = retry && c->seq_node != CL_NODE_ANY;
    c->seq_node = c->node;
    c->flags = (uint8_t)(maybe_taken ? c->flags | CL_F_RETRIED : c->flags & ~CL_F_RETRIED);
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_SHAKE;
    f.shake = &sh;
    c->sent_us = cl_now(w->cl);
    if (!cl_conn_send(w, c, &f) && !maybe_taken)
        c->seq_node = CL_NODE_ANY; /* it never left: no node has it */
}

static void send_open(cl_worker *w, cl_conn *c, uint64_t packet_id)
{
    Hb__Open o = HB__OPEN__INIT;
    o.packet_id = packet_id;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_OPEN;
    f.open = &o;
    cl_conn_send(w, c, &f);
    HB_INC(w->st.opens);
}

static void send_login(cl_worker *w, cl_conn *c)
{
    cl_client *cl = w->cl;
    uint8_t tok[HB_TOKEN_LEN];
    Hb__Login l = HB__LOGIN__INIT;
    l.uid = c->uid;
    l.members_tag = w->mem.tag; /* the node sends its list only if ours is stale */
    l.standby = (c->flags & CL_F_STANDBY) != 0;
    if (cl->secret_len) {
        /* A fresh expiry at every login, so a reconnect after the TTL is
         * not refused; the server checks tokens at login only, so a
         * session outliving its token is not cut. */
        l.expires = (uint64_t)time(NULL) + (uint64_t)cl->cfg.token_ttl;
        hb_token_make(cl->secret, cl->secret_len, c->uid, l.expires, tok);
        l.token.data = tok;
        l.token.len = sizeof tok;
    }
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_LOGIN;
    f.login = &l;
    c->sent_us = cl_now(cl);
    cl_conn_send(w, c, &f);
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

/* The reconnect whose back-off ended first (heap not empty). */
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

bool cl_backoff_due(cl_worker *w, int64_t mono, uint32_t *conn)
{
    if (!w->hlen || w->heap[0].due > mono)
        return false;
    *conn = heap_pop(w).conn;
    return true;
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

/* Hand fd to the worker's graveyard: closed CL_GRAVE_US from now
 * (worker.c), at once if the graveyard is full. */
static void bury(cl_worker *w, int fd)
{
    if (w->grave_len == w->n) {
        close(fd);
        return;
    }
    w->grave[(w->grave_head + w->grave_len) % w->n] = (struct cl_grave){hb_mono_us() + CL_GRAVE_US, fd};
    w->grave_len++;
}

/* Close (or with `later`, stop watching and bury: see promote); the caller
 * says when to reconnect.  False if it was idle. */
static bool conn_release(cl_worker *w, cl_conn *c, bool later)
{
    if (c->state == CL_IDLE)
        return false;
    if (c->member != CL_MEMBER_NONE) {
        w->mem.m[c->member].conns--;
        c->member = CL_MEMBER_NONE;
    }
    if (c->state == CL_ACTIVE)
        HB_DEC(w->st.active);
    if (c->state == CL_STANDBY)
        HB_DEC(w->st.standby);
    if (c->state != CL_CONNECTING)
        HB_DEC(w->st.connected);
    ev_io_stop(w->loop, &c->io);
    if (later)
        bury(w, c->io.fd);
    else
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
    return true;
}

static bool conn_close(cl_worker *w, cl_conn *c)
{
    return conn_release(w, c, false);
}

/* Standby slot c (closed) connects again at a random moment within
 * CL_STANDBY_REFILL_US, once CL_STANDBY_QUIET_US have passed: after a
 * node's death a quarter of the standbys went with it and a quarter were
 * promoted; they must not come back in the seconds the dead node's users
 * need the box. */
static void standby_later(cl_worker *w, cl_conn *c)
{
    if (!atomic_load(&w->cl->stopping))
        heap_push(w, hb_mono_us() + CL_STANDBY_QUIET_US + (int64_t)(hb_rand64(&w->rng) % CL_STANDBY_REFILL_US),
                  (uint32_t)(c - w->conns));
}

/* Close and schedule a reconnect with exponential back-off and full jitter. */
void cl_conn_lost(cl_worker *w, cl_conn *c)
{
    if (conn_close(w, c))
        schedule_retry(w, (uint32_t)(c - w->conns));
}

/* Close (if open) and connect again as soon as the connect pacing allows. */
void cl_conn_reconnect_now(cl_worker *w, cl_conn *c)
{
    if (conn_close(w, c) && !atomic_load(&w->cl->stopping))
        heap_push(w, 0, (uint32_t)(c - w->conns));
}

/* ---- cluster: leaving a dead node at once (members.h) ----------------------------------- */

/* Park c (closed) until its suspected owner's suspicion ends, with jitter;
 * a new list (wake_parked) or a probe (cl_members_probe) ends it sooner. */
static void park(cl_worker *w, cl_conn *c, int slot)
{
    if (atomic_load(&w->cl->stopping))
        return;
    int64_t until = w->mem.m[slot].suspect_until;
    int64_t jitter = (int64_t)(hb_rand64(&w->rng) % 500000);
    if (!(c->flags & CL_F_PARKED)) {
        c->flags |= CL_F_PARKED;
        w->mem.parked++;
    }
    heap_push(w, until + jitter, (uint32_t)(c - w->conns));
}

/* The parked users whose owner has shown us our own list connect now (a
 * list without their suspected owner came, or their owner caught up with
 * it); those whose owner may still lag wait for it.  One pass over the
 * back-off heap, then a heapify. */
static void wake_parked(cl_worker *w)
{
    cl_members *ms = &w->mem;
    if (!ms->parked || cl_members_suspect_listed(ms))
        return;
    for (size_t k = 0; k < w->hlen; k++) {
        cl_conn *c = &w->conns[w->heap[k].conn];
        if (!(c->flags & CL_F_PARKED))
            continue;
        int o = cl_members_owner(ms, c->uid);
        if (o == CL_MEMBER_NONE || ms->m[o].seen_tag != ms->tag)
            continue;
        c->flags &= (uint8_t)~CL_F_PARKED;
        ms->parked--;
        w->heap[k].due = 0;
    }
    for (size_t k = w->hlen / 2; k-- > 0;) { /* Floyd's heapify: sift every inner node down */
        size_t i = k;
        for (;;) {
            size_t l = 2 * i + 1, m = i;
            if (l < w->hlen && w->heap[l].due < w->heap[m].due)
                m = l;
            if (l + 1 < w->hlen && w->heap[l + 1].due < w->heap[m].due)
                m = l + 1;
            if (m == i)
                break;
            struct cl_due t = w->heap[i];
            w->heap[i] = w->heap[m];
            w->heap[m] = t;
            i = m;
        }
    }
}

void cl_members_probe(cl_worker *w, int64_t mono)
{
    cl_members *ms = &w->mem;
    if (!ms->parked || mono < ms->next_probe)
        return;
    ms->next_probe = mono + CL_PROBE_US;
    for (size_t k = 0; k < w->hlen; k++) {
        cl_conn *c = &w->conns[w->heap[k].conn];
        if (!(c->flags & CL_F_PARKED))
            continue;
        c->flags &= (uint8_t)~CL_F_PARKED;
        ms->parked--;
        /* Every other probe asks the suspected owner itself: if it answers,
         * the suspicion was wrong (a LoginOk from it ends it). */
        ms->probe_suspect = !ms->probe_suspect;
        if (ms->probe_suspect)
            c->flags |= CL_F_PROBE_SUSPECT;
        w->heap[k].due = 0;
        while (k > 0) { /* sift up: due 0 is the earliest */
            struct cl_due t = w->heap[k];
            w->heap[k] = w->heap[(k - 1) / 2];
            w->heap[(k - 1) / 2] = t;
            k = (k - 1) / 2;
        }
        return;
    }
    ms->parked = 0; /* none left in the heap (connected meanwhile) */
}

/* c (closed) found member slot gone: suspect it; the first to find it
 * reconnects at once to its owner among the others (it probes whether they
 * take it), the others are parked until they do. */
static void suspect_and_retry(cl_worker *w, cl_conn *c, int slot)
{
    bool fresh = cl_members_suspect(&w->mem, slot, hb_mono_us());
    if (fresh)
        HB_INC(w->st.suspects);
    if (cl_members_owner(&w->mem, c->uid) == CL_MEMBER_NONE)
        schedule_retry(w, (uint32_t)(c - w->conns)); /* nobody else to go to */
    else if (fresh)
        heap_push(w, 0, (uint32_t)(c - w->conns));
    else
        park(w, c, slot);
}

/* The connection's node went away without a word (EOF, reset, refused):
 * suspect it, and reconnect the user to its owner among the others at
 * once if it is the first sign, else park it until the survivors are ready
 * for it (they redirect to the dead node until its TTL has run out). */
static void peer_gone(cl_worker *w, cl_conn *c)
{
    int slot = c->member;
    bool told = c->flags & CL_F_TOLD;
    if (w->mem.nalive)
        c->redir_port = 0; /* the list decides where to go next */
    if (c->flags & CL_F_STANDBY) { /* its node may be dying */
        if (conn_close(w, c))
            standby_later(w, c);
        return;
    }
    if (told || slot == CL_MEMBER_NONE || !w->mem.m[slot].listed || atomic_load(&w->cl->stopping)) {
        cl_conn_lost(w, c);
        return;
    }
    if (conn_close(w, c))
        suspect_and_retry(w, c, slot);
}

/* A connect error that says the node is not there (as opposed to our own
 * lack of ports or memory). */
static bool gone_errno(int e)
{
    return e == ECONNREFUSED || e == ECONNRESET || e == EPIPE || e == EHOSTUNREACH || e == ENETUNREACH ||
           e == ETIMEDOUT || e == ECONNABORTED;
}

static void member_addr(const cl_member *m, struct sockaddr_in *to)
{
    *to = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(m->port)};
    to->sin_addr.s_addr = m->ip;
}

/* Where connection c connects: the node the last Redirect named, else its
 * owner among the members believed alive, else the configured servers.
 * *slot: the member it is (CL_MEMBER_NONE: not one we know). */
static void destination(cl_worker *w, cl_conn *c, struct sockaddr_in *to, int *slot)
{
    cl_client *cl = w->cl;
    cl_members *ms = &w->mem;
    *slot = CL_MEMBER_NONE;
    if (c->redir_port && (c->redirects || !ms->nalive)) { /* following a Redirect */
        *to = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(c->redir_port)};
        to->sin_addr.s_addr = c->redir_ip;
    } else if (ms->nalive) {
        if (c->flags & CL_F_PROBE_SUSPECT) /* a probe: the owner among all listed, suspected or not */
            *slot = cl_members_listed_owner(ms, c->uid);
        if (*slot == CL_MEMBER_NONE)
            *slot = cl_members_owner(ms, c->uid);
        member_addr(&ms->m[*slot], to);
        HB_INC(w->st.direct_connects);
        return;
    } else {
        /* Spread users evenly over (destination port, source address)
         * pairs: connect() slows down badly once one 4-tuple space is half
         * used.  With several --server hosts, a failed attempt tries the
         * next host. */
        uint32_t np = (uint32_t)cl->nports, nh = (uint32_t)(cl->ndst / cl->nports);
        uint32_t h = (c->uid / np + c->attempt) % nh;
        *to = cl->dst[h * np + c->uid % np];
    }
    if (ms->nslots)
        *slot = cl_members_slot_of(ms, to->sin_addr.s_addr, ntohs(to->sin_port));
}

/* --standby: user c's new owner holds its standby (the old owner left):
 * rather than a connect and a Login, wait for that node to promote it
 * (standby.h), a second at a time, at most CL_STANDBY_WAITS times. */
static bool awaits_promotion(cl_worker *w, cl_conn *c)
{
    if (!w->cl->cfg.standby || (c->flags & CL_F_STANDBY))
        return false;
    uint32_t i = (uint32_t)(c - w->conns);
    const cl_conn *s = &w->conns[w->n + i];
    if (s->state != CL_STANDBY || c->attempt >= CL_STANDBY_WAITS || s->member == CL_MEMBER_NONE ||
        cl_members_owner(&w->mem, c->uid) != s->member)
        return false;
    c->attempt++;
    HB_INC(w->st.standby_waits);
    heap_push(w, hb_mono_us() + CL_STANDBY_WAIT_US + (int64_t)(hb_rand64(&w->rng) % 250000), i);
    return true;
}

/* Where standby c connects: its uid's runner-up among the alive members. */
static bool standby_destination(cl_worker *w, cl_conn *c, struct sockaddr_in *to, int *slot)
{
    *slot = cl_members_runner_up(&w->mem, c->uid);
    if (*slot == CL_MEMBER_NONE)
        return false;
    member_addr(&w->mem.m[*slot], to);
    return true;
}

void cl_conn_connect(cl_worker *w, uint32_t i)
{
    cl_client *cl = w->cl;
    cl_conn *c = &w->conns[i];
    if (c->state != CL_IDLE)
        return; /* an entry a promotion left behind: the user is logged in (see queue_connect) */
    if (c->flags & CL_F_PARKED) { /* woken by its back-off, not by a list or a probe */
        c->flags &= (uint8_t)~CL_F_PARKED;
        w->mem.parked--;
        /* Its owner's suspicion was renewed meanwhile (a probe found it
         * still dead, the survivors still list it): wait on. */
        int o = cl_members_listed_owner(&w->mem, c->uid);
        if (cl_members_suspected(&w->mem, o) && w->mem.m[o].suspect_until > hb_mono_us()) {
            park(w, c, o);
            return;
        }
    }
    if (awaits_promotion(w, c))
        return;
    struct sockaddr_in dst;
    int slot;
    bool standby = c->flags & CL_F_STANDBY;
    if (!standby) {
        destination(w, c, &dst, &slot);
    } else if (!standby_destination(w, c, &dst, &slot)) {
        schedule_retry(w, i); /* one node only, for now */
        return;
    }
    c->flags = (uint8_t)((standby ? CL_F_STANDBY : 0) | (c->flags & CL_F_RETRIED)); /* that is the shake's */
    const struct in_addr *src = cl->nsrc ? &cl->src[(c->uid / (uint32_t)cl->nports) % (uint32_t)cl->nsrc] : NULL;
    HB_INC(w->st.connects);
    bool ready = false;
    int fd = hb_connect_nb(&dst, src, cl->cfg.fastopen, &ready);
    if (fd < 0) {
        int e = errno;
        HB_INC(w->st.connect_fail);
        c->redir_port = 0; /* the node we were sent to is gone: ask the configured ones again */
        if (!standby && slot != CL_MEMBER_NONE && gone_errno(e) && w->mem.m[slot].listed &&
            !atomic_load(&cl->stopping))
            suspect_and_retry(w, c, slot);
        else
            schedule_retry(w, i);
        return;
    }
    c->member = (uint8_t)slot;
    if (slot != CL_MEMBER_NONE)
        w->mem.m[slot].conns++;
    hb_tcp_nodelay(fd);
    c->state = CL_CONNECTING;
    c->sent_us = cl_now(cl);
    ev_io_init(&c->io, io_cb, fd, EV_WRITE);
    c->try_id++;
    /* Connect timeouts are tracked in start order.  The ring holds one entry
     * per connection; if it is full (entries of finished attempts waiting
     * behind a stuck one), this attempt goes untimed and the kernel's own
     * SYN retries end it. */
    if (w->pend_len < w->nc) {
        w->pend[(w->pend_head + w->pend_len) % w->nc] = (struct cl_pend){hb_mono_us(), i, c->try_id};
        w->pend_len++;
    }
    /* On loopback the handshake is usually over when connect() returns
     * EINPROGRESS: the SYN, SYN-ACK and ACK went through this thread's own
     * softirq before the call returned.  getpeername() says so (ENOTCONN
     * until then) for one system call, where waiting for the socket to
     * become writable costs an epoll_ctl, a wake-up and a getsockopt; the
     * Login then leaves at once.  Over a real network it says ENOTCONN and
     * we wait as before.  The same in --echo mode, so the floor gains it
     * too.  A Fast Open connect with a cookie returns 0 having sent
     * nothing: the Login's write sends the SYN with it. */
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    if (ready && cl->cfg.fastopen) {
        HB_INC(w->st.fastopen_connects);
    } else if (ready || getpeername(fd, (struct sockaddr *)&peer, &pl) == 0) {
        HB_INC(w->st.connected_at_once);
    } else {
        ev_io_start(w->loop, &c->io);
        return;
    }
    established(w, c);
}

/* Echo mode: the connection counts as logged in. */
static void echo_up(cl_worker *w, cl_conn *c)
{
    c->state = CL_ACTIVE;
    HB_INC(w->st.active);
    c->attempt = 0;
}

/* The handshake is complete: count it, wait for replies, log in. */
static void established(cl_worker *w, cl_conn *c)
{
    HB_INC(w->st.connected);
    ev_io_stop(w->loop, &c->io); /* a no-op if it was never started */
    ev_io_set(&c->io, c->io.fd, EV_READ);
    ev_io_start(w->loop, &c->io);
    if (w->cl->cfg.echo && !w->cl->cfg.echo_login) { /* the echo server has no login */
        echo_up(w, c);
        return;
    }
    c->state = CL_LOGIN; /* --echo-login: up when the echo server sends it back */
    send_login(w, c);
}

/* The socket became writable (or failed) while connecting. */
static void connected(cl_worker *w, cl_conn *c)
{
    int e = 0;
    socklen_t el = sizeof e;
    getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &e, &el);
    if (e) {
        HB_INC(w->st.connect_fail);
        c->redir_port = 0; /* as in cl_conn_connect */
        if (gone_errno(e))
            peer_gone(w, c);
        else
            cl_conn_lost(w, c);
        return;
    }
    established(w, c);
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
    HB_INC(w->st.outstanding);
    atomic_thread_fence(memory_order_seq_cst); /* see cl_client.closing */
    if (atomic_load(&w->cl->closing)) {
        /* The run is ending: not opened now; the server keeps the share
         * and tells this user again at its next login. */
        HB_DEC(w->st.outstanding);
        HB_INC(w->st.notices_left);
        return;
    }
    w->opens[w->nopens++] = (cl_open){packet_id, conn, 0};
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

/* Cluster: a member list came with a LoginOk or Redirect from member slot
 * `from` (l NULL: none, the sender's list is ours, or no cluster). */
static void take_list(cl_worker *w, const Hb__Members *l, int from)
{
    cl_members *ms = &w->mem;
    ms->known = true; /* a node answered: with or without a list, probing is over */
    uint64_t before = from != CL_MEMBER_NONE ? ms->m[from].seen_tag : 0;
    bool dropped = false;
    cl_list_result r = l ? cl_members_take(ms, l, &dropped) : CL_LIST_SAME;
    if (r == CL_LIST_BAD) {
        HB_INC(w->st.members_bad);
        return;
    }
    if (from != CL_MEMBER_NONE)
        ms->m[from].seen_tag = r == CL_LIST_LAGS ? l->tag : ms->tag;
    if (r == CL_LIST_LAGS) {
        HB_INC(w->st.members_lagging);
        return;
    }
    if (r == CL_LIST_NEW)
        HB_INC(w->st.members_lists);
    if (dropped) { /* sessions on a node the list no longer has: move them (worker.c, paced) */
        ms->sweeping = true;
        ms->sweep = 0;
    }
    /* Parked users whose owner now agrees with our list go (wake_parked
     * does nothing while the list still names a suspect). */
    if (dropped || (from != CL_MEMBER_NONE && before != ms->tag))
        wake_parked(w);
}

static void on_login_ok(cl_worker *w, cl_conn *c, const Hb__LoginOk *ok, int64_t now);

/* Standby s was promoted (a plain LoginOk on it): its socket becomes user
 * i's session in conns[i], whatever that held (most likely a connection to
 * the dead node the kernel has not closed yet, or nothing while it waited),
 * and the rest is a LoginOk there: the held shake, the opens, the list.
 * The standby slot reconnects later, to the runner-up of the new list.
 * conn_read goes on with the frames behind this one on conns[i] (w->moved). */
static void promote(cl_worker *w, cl_conn *s, const Hb__LoginOk *ok, int64_t now)
{
    uint32_t i = (uint32_t)(s - w->conns) - w->n;
    cl_conn *p = &w->conns[i];
    /* Most likely p is still open to the node that died: closing it now
     * would add a FIN per user to the seconds the box needs for the
     * promotions, and its teardown's FIN would wake us for nothing.  It is
     * closed CL_GRAVE_US later, unwatched until then. */
    conn_release(w, p, true);
    if (p->flags & CL_F_PARKED) { /* its heap entry stays: cl_conn_connect skips it */
        w->mem.parked--;
    }
    if (s->state == CL_STANDBY)
        HB_DEC(w->st.standby);
    ev_io_stop(w->loop, &s->io);
    ev_io_init(&p->io, io_cb, s->io.fd, s->outlen ? EV_READ | EV_WRITE : EV_READ);
    ev_io_start(w->loop, &p->io);
    p->spill = s->spill;
    p->out = s->out;
    p->outlen = s->outlen;
    p->inlen = 0; /* conn_read holds the bytes: it keeps the tail on p */
    p->member = s->member; /* its count in mem.m[].conns moves with it */
    p->flags &= CL_F_RETRIED; /* the shake's, not the connection's */
    p->redir_port = 0;
    p->sent_us = s->sent_us;
    p->state = CL_LOGIN;
    s->io.fd = -1;
    s->spill = s->out = NULL;
    s->outlen = s->inlen = 0;
    s->member = CL_MEMBER_NONE;
    s->state = CL_IDLE;
    s->attempt = 0;
    HB_INC(w->st.promoted);
    w->moved = p;
    on_login_ok(w, p, ok, now);
    standby_later(w, s);
}

/* A LoginOk on a standby connection: held as one, or promoted. */
static void standby_login_ok(cl_worker *w, cl_conn *c, const Hb__LoginOk *ok, int64_t now)
{
    if (ok->standby && c->state == CL_LOGIN) {
        take_list(w, ok->members, c->member);
        c->state = CL_STANDBY;
        c->attempt = 0;
        HB_INC(w->st.standby);
        HB_INC(w->st.standby_logins);
        clock_sample(w, c->sent_us, now, ok->server_time_us);
    } else if (!ok->standby && (c->state == CL_STANDBY || c->state == CL_LOGIN)) {
        promote(w, c, ok, now);
    }
}

static void on_login_ok(cl_worker *w, cl_conn *c, const Hb__LoginOk *ok, int64_t now)
{
    if (c->flags & CL_F_STANDBY) {
        standby_login_ok(w, c, ok, now);
        return;
    }
    if (c->state != CL_LOGIN)
        return;
    take_list(w, ok->members, c->member);
    if (c->member == CL_MEMBER_NONE && w->mem.nslots) { /* connected before we had a list: which member is it? */
        struct sockaddr_in pa;
        socklen_t pl = sizeof pa;
        if (getpeername(c->io.fd, (struct sockaddr *)&pa, &pl) == 0 && pa.sin_family == AF_INET) {
            int slot = cl_members_slot_of(&w->mem, pa.sin_addr.s_addr, ntohs(pa.sin_port));
            c->member = (uint8_t)slot;
            if (slot != CL_MEMBER_NONE) {
                w->mem.m[slot].conns++;
                w->mem.m[slot].seen_tag = ok->members ? ok->members->tag : w->mem.tag;
            }
        }
    }
    if (cl_members_suspected(&w->mem, c->member)) { /* it answers: alive after all */
        cl_members_trust(&w->mem, c->member);
        wake_parked(w);
    }
    c->state = CL_ACTIVE;
    c->attempt = 0;
    c->redirects = 0;
    HB_INC(w->st.active);
    HB_INC(w->st.logins);
    clock_sample(w, c->sent_us, now, ok->server_time_us);
    c->node = (uint8_t)(ok->node < CL_NODE_ANY ? ok->node : CL_NODE_ANY - 1);
    if (c->seq && c->seq_node != CL_NODE_ANY && c->seq_node != c->node) {
        /* Sent to a node that went away: only its journal knows whether the
         * shake won.  Hold it (this user skips shakes meanwhile, as while
         * any reply is due) until a login lands on that node again, as it
         * will when the node is back and takes its users home; a client
         * stopped before that lists it as unanswered in its ledger. */
        HB_INC(w->st.retries_held);
    } else if (c->seq) { /* unanswered before the drop: ask again, as a retry */
        HB_INC(w->st.retries);
        cl_conn_send_shake(w, c, true);
    }
    for (size_t i = 0; i < w->nopens; i++)
        if (w->opens[i].conn == (uint32_t)(c - w->conns) && !w->opens[i].sent) {
            w->opens[i].sent = 1;
            send_open(w, c, w->opens[i].packet_id);
        }
}

static void on_notice(cl_worker *w, cl_conn *c, const Hb__Notice *n)
{
    HB_INC(w->st.notices);
    size_t before = w->nopens;
    add_open(w, n->packet_id, (uint32_t)(c - w->conns));
    if (w->nopens > before) {
        w->opens[w->nopens - 1].sent = 1;
        send_open(w, c, n->packet_id);
    }
}

/* Cluster: the uid lives on another node.  Go there at once, at most
 * CL_REDIRECTS_MAX times in a row (until a LoginOk); past that, two nodes
 * disagree: back off as after any loss, and start again from the
 * configured servers. */
static void on_redirect(cl_worker *w, cl_conn *c, const Hb__Redirect *r)
{
    struct in_addr a;
    c->flags |= CL_F_TOLD;
    take_list(w, r->members, c->member);
    if (c->flags & CL_F_STANDBY) { /* not sent to standbys: start again later */
        cl_conn_lost(w, c);
        return;
    }
    /* A node answers every shake it read before it redirects a session,
     * never redirects one with a grant pending (server/rehome.c) and drops
     * unread what arrives after: a shake first sent on this session (not a
     * retry of one an earlier connection may have won) and unanswered at a
     * Redirect was never taken, so it may be asked wherever the user logs
     * in next.  Held for the node that moved the user, such shakes waited
     * for a login there for ever (88,438 at the end of a 1M run whose
     * restarted node took its users home mid-stage). */
    if (c->state == CL_ACTIVE && c->seq && c->seq_node == c->node && !(c->flags & CL_F_RETRIED))
        c->seq_node = CL_NODE_ANY;
    if (r->host && inet_pton(AF_INET, r->host, &a) == 1 && r->port && r->port <= 65535) {
        int to = cl_members_slot_of(&w->mem, a.s_addr, (uint16_t)r->port);
        if (cl_members_suspected(&w->mem, to) && cl_members_owner(&w->mem, c->uid) != CL_MEMBER_NONE) {
            /* To a node we believe dead: the sender still lists it (its TTL
             * has not run out).  Not now: wait with the others, retry the
             * next owner later. */
            HB_INC(w->st.redirects_deferred);
            c->redir_port = 0;
            if (conn_close(w, c))
                park(w, c, to);
            return;
        }
    }
    if (c->redirects >= CL_REDIRECTS_MAX || !r->host || inet_pton(AF_INET, r->host, &a) != 1 || !r->port ||
        r->port > 65535) {
        HB_INC(w->st.redirect_loops);
        c->redirects = 0;
        c->redir_port = 0;
        cl_conn_lost(w, c);
        return;
    }
    HB_INC(w->st.redirects);
    c->redirects++;
    c->redir_ip = a.s_addr;
    c->redir_port = (uint16_t)r->port;
    cl_conn_reconnect_now(w, c);
}

/* Returns false if the connection was dropped. */
static bool on_frame(cl_worker *w, cl_conn *c, const uint8_t *body, size_t len, int64_t now)
{
    Hb__Frame *f = hb_frame_unpack(&w->arena, body, len);
    if (!f) {
        HB_INC(w->st.protocol_errors);
        cl_conn_lost(w, c);
        return false;
    }
    switch (f->body_case) {
    case HB__FRAME__BODY_LOGIN_OK:
        on_login_ok(w, c, f->login_ok, now);
        break;
    case HB__FRAME__BODY_SHAKE_REPLY:
        on_shake_reply(w, c, f->shake_reply, now);
        break;
    case HB__FRAME__BODY_LOGIN: /* --echo-login: our Login back */
        if (w->cl->cfg.echo && c->state == CL_LOGIN) {
            echo_up(w, c);
            HB_INC(w->st.logins);
        } else {
            HB_INC(w->st.protocol_errors);
        }
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
    case HB__FRAME__BODY_NOTICE:
        on_notice(w, c, f->notice);
        break;
    case HB__FRAME__BODY_OPEN_REPLY:
        on_open_reply(w, c, f->open_reply);
        break;
    case HB__FRAME__BODY_CHAT:
        HB_INC(w->st.chats_recv);
        break;
    case HB__FRAME__BODY_REDIRECT:
        on_redirect(w, c, f->redirect);
        break;
    case HB__FRAME__BODY_ERROR:
        c->flags |= CL_F_TOLD; /* closing on purpose: no sign of a dead node */
        HB_INC(w->st.error_frames);
        HB_INC(w->st.err[cl_err_slot((unsigned)f->error->code)]);
        break; /* the server closes next; we reconnect then */
    default:
        HB_INC(w->st.protocol_errors);
        break;
    }
    return c->state != CL_IDLE;
}

/* Keep an unfinished frame for the next read: in the connection itself when
 * small (most are), else in a spill buffer of the largest frame's size (a
 * node's frames are bounded by HB_FRAME_DOWN_MAX: a LoginOk or Redirect
 * with the member list may be up to that long). */
static void keep_tail(cl_worker *w, cl_conn *c, const uint8_t *p, size_t rest)
{
    if (rest > CL_INLINE) {
        uint8_t *s = realloc(c->spill, HB_FRAME_DOWN_WIRE_MAX);
        if (!s) {
            cl_conn_lost(w, c);
            return;
        }
        c->spill = s;
        memmove(s, p, rest);
    } else {
        memcpy(c->in, p, rest);
    }
    c->inlen = (uint16_t)rest;
}

/* Read what is there (after the kept tail, in the worker's buffer) and
 * dispatch every whole frame. */
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
        peer_gone(w, c); /* EOF or reset: unless the node said why first, it may be dead */
        return;
    }
    HB_ADD(w->st.bytes_in, (uint64_t)n);
    have += (size_t)n;
    int64_t now = cl_now(w->cl);
    size_t off = 0, prefix, body;
    int r;
    while ((r = hb_frame_scan(rb + off, have - off, HB_FRAME_DOWN_MAX, &prefix, &body)) == HB_SCAN_FRAME) {
        bool up = on_frame(w, c, rb + off + prefix, body, now);
        if (w->moved) { /* a promotion: what follows is the session's */
            c = w->moved;
            w->moved = NULL;
            up = c->state != CL_IDLE;
        }
        if (!up)
            return;
        off += prefix + body;
    }
    if (r < 0) {
        HB_INC(w->st.protocol_errors);
        cl_conn_lost(w, c);
        return;
    }
    keep_tail(w, c, rb + off, have - off);
}

/* Send what conn_write had to queue; back to reading only once it is all
 * out.  Returns false if the connection was dropped. */
static bool conn_flush(cl_worker *w, cl_conn *c)
{
    ssize_t r = send(c->io.fd, c->out, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r < 0 && errno != EAGAIN && errno != EINTR) {
        write_failed(w, c); /* the read that follows ends it */
        return true;
    }
    if (r > 0) {
        HB_ADD(w->st.bytes_out, (uint64_t)r);
        memmove(c->out, c->out + r, c->outlen - (size_t)r);
        c->outlen -= (uint32_t)r;
    }
    if (!c->outlen) {
        free(c->out);
        c->out = NULL;
        ev_io_stop(w->loop, &c->io);
        ev_io_set(&c->io, c->io.fd, EV_READ);
        ev_io_start(w->loop, &c->io);
    }
    return true;
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
    if ((revents & EV_WRITE) && !conn_flush(w, c))
        return;
    if (revents & EV_READ)
        conn_read(w, c);
}

