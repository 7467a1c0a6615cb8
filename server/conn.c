/* conn.c -- a connection's life in its SET: accepted (NEW), logged in
 * (ACTIVE), failed (CLOSING: error sent, lingering), closed (FREE).
 *
 * Input: one read() per readiness event into the SET's read buffer, behind
 * the few bytes of an unfinished frame kept from last time; every whole frame
 * is handled in place; the unfinished tail is kept again (inline if short).
 * Output: replies produced while a connection's input is handled are gathered
 * and leave in one write(); a socket that does not take everything gets one
 * bounded pool chunk and EV_WRITE; overflowing it closes the connection.
 * Deadlines: one list per kind of timeout, expired by the SET's tick. */
#include "set.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "addrlimit.h"
#include "hongbao.pb-c.h"

static bool keep_partial(sv_set *set, sv_conn *c, const uint8_t *p, size_t n);

/* ---- timeout lists ---------------------------------------------------------- */

static void tl_del(sv_set *set, sv_conn *c)
{
    if (!c->tl)
        return;
    sv_tlist *l = &set->tl[c->tl];
    if (c->prev)
        set->conns[c->prev].next = c->next;
    else
        l->head = c->next;
    if (c->next)
        set->conns[c->next].prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = 0;
    c->tl = SV_TL_NONE;
    l->len--;
}

static void tl_add(sv_set *set, sv_conn *c, int which)
{
    if (c->tl == which)
        return; /* keeps its original deadline */
    tl_del(set, c);
    sv_tlist *l = &set->tl[which];
    uint32_t slot = sv_conn_slot(set, c);
    c->since_ms = sv_set_now_ms(set);
    c->prev = l->tail;
    c->next = 0;
    if (l->tail)
        set->conns[l->tail].next = slot;
    else
        l->head = slot;
    l->tail = slot;
    c->tl = (uint8_t)which;
    l->len++;
    sv_set_tick_busy(set); /* its deadline needs the fast tick */
}

/* Put c on the list its state calls for (or none). */
static void tl_update(sv_set *set, sv_conn *c)
{
    int want;
    switch (c->state) {
    case SV_CONN_NEW: want = SV_TL_LOGIN; break;
    case SV_CONN_CLOSING: want = SV_TL_LINGER; break;
    default: want = (c->inlen || c->outlen) ? SV_TL_STALL : SV_TL_NONE; break;
    }
    if (want == SV_TL_NONE)
        tl_del(set, c);
    else
        tl_add(set, c, want);
}

void sv_tlist_expire(sv_set *set)
{
    uint32_t now = sv_set_now_ms(set);
    for (int w = 1; w < SV_TL_COUNT; w++) {
        sv_tlist *l = &set->tl[w];
        while (l->head) {
            sv_conn *c = &set->conns[l->head];
            if (now - c->since_ms < l->timeout_ms)
                break; /* sorted: the rest are younger */
            if (w == SV_TL_LOGIN) {
                sv_conn_fail(set, c, HB__ERROR_CODE__ERR_LOGIN_TIMEOUT, "no login in time");
            } else if (w == SV_TL_STALL && c->outlen) {
                /* It does not read: an error frame would only queue behind. */
                HB_INC(set->st.err[HB__ERROR_CODE__ERR_OUTPUT_OVERFLOW]);
                sv_conn_close(set, c);
            } else if (w == SV_TL_STALL) {
                sv_conn_fail(set, c, HB__ERROR_CODE__ERR_FRAME_TIMEOUT, "frame not finished in time");
            } else {
                sv_conn_close(set, c);
            }
        }
    }
}

/* ---- open / close ------------------------------------------------------------ */

static void io_events(sv_set *set, sv_conn *c, int ev)
{
    if ((c->io.events & (EV_READ | EV_WRITE)) == ev)
        return;
    ev_io_stop(set->loop, &c->io);
    ev_io_set(&c->io, c->io.fd, ev);
    if (!set->frozen) /* a frozen SET (hot upgrade) keeps the wish for later */
        ev_io_start(set->loop, &c->io);
}

void sv_conn_watch_all(sv_set *set)
{
    for (uint32_t i = 1; i <= set->hwm; i++)
        if (set->conns[i].state != SV_CONN_FREE && !ev_is_active(&set->conns[i].io))
            ev_io_start(set->loop, &set->conns[i].io);
}

int sv_conn_adopt(sv_set *set, int fd, const Hb__UpgradeConn *u)
{
    sv_server *s = set->srv;
    if (u->slot == 0 || u->slot > set->cap || set->conns[u->slot].state != SV_CONN_FREE ||
        (u->state != SV_CONN_NEW && u->state != SV_CONN_ACTIVE && u->state != SV_CONN_CLOSING &&
         u->state != SV_CONN_STANDBY) ||
        u->input.len >= SV_CHUNK || u->output.len > SV_CHUNK ||
        ((u->state == SV_CONN_ACTIVE || u->state == SV_CONN_STANDBY) && u->uid >= s->dir.users))
        return -1;
    sv_conn *c = &set->conns[u->slot];
    memset(c, 0, sizeof *c); /* FREE until it is whole: a failure leaves nothing to undo here */
    ev_io_init(&c->io, sv_conn_io_cb, fd, EV_READ | (u->output.len ? EV_WRITE : 0)); /* started by START */
    if (u->input.len && !keep_partial(set, c, u->input.data, u->input.len))
        return -1;
    if (u->output.len) {
        if (!(c->out = sv_pool_get(&set->pool)))
            return -1;
        memcpy(sv_pool_ptr(&set->pool, c->out), u->output.data, u->output.len);
        c->outlen = (uint16_t)u->output.len;
    }
    c->gen = u->gen; /* the same session: stale references stay stale */
    c->uid = u->uid;
    c->addr = u->addr;
    c->state = (uint8_t)u->state;
    if (u->slot > set->hwm)
        set->hwm = u->slot;
    HB_INC(set->st.conns);
    if (s->addrs)
        sv_addr_acquire(s->addrs, c->addr, (uint32_t)s->cfg.addr_limit);
    if (c->state == SV_CONN_ACTIVE) {
        sv_pend *parked;
        sv_dir_login(&s->dir, c->uid, SV_LOC(set->id, u->slot), &parked);
        sv_dir_free_list(parked); /* none in a new process */
        atomic_store(&s->dir.u[c->uid].rate, u->shake_rate);
        atomic_store(&s->dir.u[c->uid].chat_rate, u->chat_rate);
        HB_INC(set->st.active);
    }
    if (c->state == SV_CONN_STANDBY)
        HB_INC(set->st.standby);
    tl_update(set, c); /* deadlines start again from now */
    return 0;
}

static void conn_read(sv_set *set, sv_conn *c);

/* A client that sends its Login as soon as its connect() returns (hb-client
 * does) has usually done so by the time the accept loop gets to it, so the
 * Login is read and answered now, without a trip through epoll for the new
 * descriptor.  Where logins come later (phones over a real network), the
 * read would only say EAGAIN: after SV_EARLY_MISSES misses in a row a SET
 * tries only every SV_EARLY_PROBE-th connection, until one hits again. */
#define SV_EARLY_MISSES 8
#define SV_EARLY_PROBE 64

static void early_read(sv_set *set, sv_conn *c)
{
    if (set->early_misses >= SV_EARLY_MISSES && HB_GET(set->st.accepted) % SV_EARLY_PROBE)
        return;
    uint64_t before = HB_GET(set->st.frames);
    conn_read(set, c); /* may close c: nothing of it is used after */
    if (HB_GET(set->st.frames) != before) {
        set->early_misses = 0;
        HB_INC(set->st.read_at_accept);
    } else if (set->early_misses < SV_EARLY_MISSES) {
        set->early_misses++;
    }
}

sv_conn *sv_conn_accepted(sv_set *set, int fd, uint32_t addr)
{
    uint32_t slot;
    if (set->free_head) {
        slot = set->free_head;
        set->free_head = set->conns[slot].next;
    } else {
        slot = ++set->hwm; /* the caller checked the count against cap */
    }
    sv_conn *c = &set->conns[slot];
    uint32_t gen = c->gen + 1;
    memset(c, 0, sizeof *c);
    c->gen = gen;
    c->addr = addr;
    c->state = SV_CONN_NEW;
    /* TCP_NODELAY and --sndbuf come from the listener (sv_set_add_listener). */
    ev_io_init(&c->io, sv_conn_io_cb, fd, EV_READ);
    ev_io_start(set->loop, &c->io);
    tl_add(set, c, SV_TL_LOGIN);
    HB_INC(set->st.conns);
    early_read(set, c);
    return c;
}

/* The connection stops being uid's session. */
static void leave_active(sv_set *set, sv_conn *c)
{
    if (c->state == SV_CONN_STANDBY)
        HB_DEC(set->st.standby);
    if (c->state != SV_CONN_ACTIVE)
        return;
    sv_dir_logout(&set->srv->dir, c->uid, SV_LOC(set->id, sv_conn_slot(set, c)));
    HB_DEC(set->st.active);
}

void sv_conn_close(sv_set *set, sv_conn *c)
{
    if (c->state == SV_CONN_FREE)
        return;
    if (set->txc == c) {
        set->txc = NULL;
        set->txlen = 0;
    }
    leave_active(set, c);
    ev_io_stop(set->loop, &c->io);
    close(c->io.fd);
    if (set->srv->addrs)
        sv_addr_release(set->srv->addrs, c->addr);
    if (c->spill)
        sv_pool_put(&set->pool, c->spill);
    if (c->out)
        sv_pool_put(&set->pool, c->out);
    c->spill = c->out = 0;
    c->inlen = c->outlen = c->outoff = 0;
    tl_del(set, c);
    c->state = SV_CONN_FREE;
    c->next = set->free_head; /* free-list link while FREE */
    set->free_head = sv_conn_slot(set, c);
    HB_DEC(set->st.conns);
    HB_INC(set->st.closed);
}

/* ---- output ------------------------------------------------------------------ */

static void conn_write(sv_set *set, sv_conn *c, const uint8_t *p, size_t n)
{
    if (c->out) { /* already backed up: queue behind, bounded */
        uint8_t *o = sv_pool_ptr(&set->pool, c->out);
        if (c->outoff) {
            memmove(o, o + c->outoff, c->outlen);
            c->outoff = 0;
        }
        if (c->outlen + n > SV_CHUNK) {
            HB_INC(set->st.err[HB__ERROR_CODE__ERR_OUTPUT_OVERFLOW]);
            sv_conn_close(set, c);
            return;
        }
        memcpy(o + c->outlen, p, n);
        c->outlen += (uint16_t)n;
        return;
    }
    ssize_t w = send(c->io.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w == (ssize_t)n) {
        HB_ADD(set->st.bytes_out, n);
        return;
    }
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            sv_conn_close(set, c); /* reset or gone */
            return;
        }
        w = 0;
    }
    HB_ADD(set->st.bytes_out, (uint64_t)w);
    size_t rest = n - (size_t)w;
    if (rest > SV_CHUNK) {
        HB_INC(set->st.err[HB__ERROR_CODE__ERR_OUTPUT_OVERFLOW]);
        sv_conn_close(set, c);
        return;
    }
    if (!(c->out = sv_pool_get(&set->pool))) {
        HB_INC(set->st.pool_exhausted);
        sv_conn_close(set, c);
        return;
    }
    memcpy(sv_pool_ptr(&set->pool, c->out), p + w, rest);
    c->outlen = (uint16_t)rest;
    c->outoff = 0;
    io_events(set, c, EV_READ | EV_WRITE);
    tl_update(set, c);
}

/* EV_WRITE: drain the backed-up chunk.  false if the connection closed. */
static bool out_flush(sv_set *set, sv_conn *c)
{
    if (!c->out) {
        io_events(set, c, EV_READ);
        return true;
    }
    ssize_t w = send(c->io.fd, sv_pool_ptr(&set->pool, c->out) + c->outoff, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return true;
        sv_conn_close(set, c);
        return false;
    }
    HB_ADD(set->st.bytes_out, (uint64_t)w);
    c->outoff += (uint16_t)w;
    c->outlen -= (uint16_t)w;
    if (c->outlen == 0) {
        sv_pool_put(&set->pool, c->out);
        c->out = 0;
        c->outoff = 0;
        io_events(set, c, EV_READ);
        if (c->state == SV_CONN_CLOSING)
            shutdown(c->io.fd, SHUT_WR);
    } else if (w > 0 && c->tl == SV_TL_STALL) {
        tl_del(set, c); /* progress: the deadline starts again */
    }
    tl_update(set, c);
    return true;
}

void sv_conn_flush_tx(sv_set *set)
{
    sv_conn *c = set->txc;
    size_t n = set->txlen;
    set->txlen = 0;
    if (c && n && c->state != SV_CONN_FREE)
        conn_write(set, c, set->tx, n);
}

void sv_conn_send(sv_set *set, sv_conn *c, const uint8_t *frame, size_t len)
{
    if (c->state == SV_CONN_FREE || c->state == SV_CONN_CLOSING)
        return;
    if (set->txc == c && len <= sizeof set->tx) {
        if (set->txlen + len > sizeof set->tx)
            sv_conn_flush_tx(set);
        if (set->txc == c) {
            memcpy(set->tx + set->txlen, frame, len);
            set->txlen += len;
            return;
        }
        if (c->state == SV_CONN_FREE)
            return;
    }
    conn_write(set, c, frame, len);
}

/* Frames a node sends are bounded by HB_FRAME_DOWN_MAX (a LoginOk or
 * Redirect with the member list; proto/frame.h), what it reads by
 * HB_FRAME_MAX.  The longest must fit the batch buffer, and one output
 * chunk: a socket that takes only part of it leaves the rest in a chunk
 * (conn_write). */
_Static_assert(HB_FRAME_DOWN_WIRE_MAX <= SV_CHUNK, "a frame to a client must fit one output chunk");
_Static_assert(HB_FRAME_DOWN_WIRE_MAX <= sizeof(((sv_set *)0)->tx), "a frame to a client must fit the batch");

void sv_conn_send_frame(sv_set *set, sv_conn *c, const Hb__Frame *f)
{
    uint8_t buf[HB_FRAME_DOWN_WIRE_MAX];
    size_t n = hb_frame_pack(f, buf, sizeof buf);
    if (n)
        sv_conn_send(set, c, buf, n);
}

void sv_conn_fail(sv_set *set, sv_conn *c, Hb__ErrorCode code, const char *detail)
{
    if (c->state == SV_CONN_FREE || c->state == SV_CONN_CLOSING)
        return;
    HB_INC(set->st.err[code]);
    uint8_t buf[HB_FRAME_WIRE_MAX];
    size_t n = hb_pack_error(buf, sizeof buf, code, detail);
    if (n)
        sv_conn_send(set, c, buf, n);
    sv_conn_shut(set, c);
}

void sv_conn_shut(sv_set *set, sv_conn *c)
{
    if (c->state == SV_CONN_FREE || c->state == SV_CONN_CLOSING)
        return;
    if (set->txc == c)
        sv_conn_flush_tx(set);
    if (c->state == SV_CONN_FREE)
        return; /* the write found the peer gone */
    leave_active(set, c);
    c->state = SV_CONN_CLOSING;
    /* Half-close: the peer reads our error, then EOF, and closes; we drain
     * what it still sends until then (closing at once with unread input
     * would reset the connection and could destroy the error frame). */
    if (!c->outlen)
        shutdown(c->io.fd, SHUT_WR);
    if (c->spill)
        sv_pool_put(&set->pool, c->spill);
    c->spill = 0;
    c->inlen = 0;
    tl_update(set, c);
}

/* ---- input ------------------------------------------------------------------- */

static bool keep_partial(sv_set *set, sv_conn *c, const uint8_t *p, size_t n)
{
    if (n <= SV_CONN_INLINE) {
        if (c->spill) {
            sv_pool_put(&set->pool, c->spill);
            c->spill = 0;
        }
        memcpy(c->in, p, n);
    } else {
        if (!c->spill && !(c->spill = sv_pool_get(&set->pool))) {
            HB_INC(set->st.pool_exhausted);
            sv_conn_close(set, c);
            return false;
        }
        memmove(sv_pool_ptr(&set->pool, c->spill), p, n);
    }
    c->inlen = (uint16_t)n;
    return true;
}

static void conn_read(sv_set *set, sv_conn *c)
{
    uint8_t *rb = set->rbuf;
    size_t have = c->inlen;
    if (have)
        memcpy(rb, c->spill ? sv_pool_ptr(&set->pool, c->spill) : c->in, have);
    ssize_t n = read(c->io.fd, rb + have, sizeof set->rbuf - have);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        sv_conn_close(set, c); /* EOF or reset: nobody left to answer */
        return;
    }
    HB_ADD(set->st.bytes_in, (uint64_t)n);
    if (c->state == SV_CONN_CLOSING)
        return; /* draining until the peer closes */
    have += (size_t)n;

    set->txc = c;
    set->txlen = 0;
    size_t off = 0, prefix, body;
    bool progress = false;
    int r;
    for (;;) {
        r = hb_frame_scan(rb + off, have - off, HB_FRAME_MAX, &prefix, &body);
        if (r != HB_SCAN_FRAME)
            break;
        HB_INC(set->st.frames);
        progress = true;
        sv_handle_frame(set, c, rb + off + prefix, body);
        off += prefix + body;
        if (c->state == SV_CONN_FREE || c->state == SV_CONN_CLOSING)
            break;
    }
    if (c->state == SV_CONN_ACTIVE || c->state == SV_CONN_NEW || c->state == SV_CONN_STANDBY) {
        if (r == HB_SCAN_TOO_LARGE)
            sv_conn_fail(set, c, HB__ERROR_CODE__ERR_FRAME_TOO_LARGE, "frame length over the limit");
        else if (r == HB_SCAN_EMPTY)
            sv_conn_fail(set, c, HB__ERROR_CODE__ERR_FRAME_EMPTY, "zero-length frame");
        else if (keep_partial(set, c, rb + off, have - off)) {
            /* A new frame began: its own deadline, unless output is stuck:
             * input must not keep alive a peer that does not read (its
             * chunk would be held for as long as it keeps talking). */
            if (progress && c->tl == SV_TL_STALL && !c->outlen)
                tl_del(set, c);
            tl_update(set, c);
        }
    }
    if (set->txc == c)
        sv_conn_flush_tx(set);
    set->txc = NULL;
}

void sv_conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    sv_set *set = ev_userdata(loop);
    sv_conn *c = HB_CONTAINER_OF(w, sv_conn, io);
    set->turn_events++;
    if ((revents & EV_WRITE) && !out_flush(set, c))
        return;
    if (revents & EV_READ)
        conn_read(set, c);
}
