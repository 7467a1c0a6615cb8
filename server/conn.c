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

/* ---- timeout lists ---------------------------------------------------------- */

static void tl_del(hb_set *set, hb_conn *c)
{
    if (!c->tl)
        return;
    hb_tlist *l = &set->tl[c->tl];
    if (c->prev)
        set->conns[c->prev].next = c->next;
    else
        l->head = c->next;
    if (c->next)
        set->conns[c->next].prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = 0;
    c->tl = HB_TL_NONE;
    l->len--;
}

static void tl_add(hb_set *set, hb_conn *c, int which)
{
    if (c->tl == which)
        return; /* keeps its original deadline */
    tl_del(set, c);
    hb_tlist *l = &set->tl[which];
    uint32_t slot = hb_conn_slot(set, c);
    c->since_ms = hb_set_now_ms(set);
    c->prev = l->tail;
    c->next = 0;
    if (l->tail)
        set->conns[l->tail].next = slot;
    else
        l->head = slot;
    l->tail = slot;
    c->tl = (uint8_t)which;
    l->len++;
}

/* Put c on the list its state calls for (or none). */
static void tl_update(hb_set *set, hb_conn *c)
{
    int want;
    switch (c->state) {
    case HB_CONN_NEW: want = HB_TL_LOGIN; break;
    case HB_CONN_CLOSING: want = HB_TL_LINGER; break;
    default: want = (c->inlen || c->outlen) ? HB_TL_STALL : HB_TL_NONE; break;
    }
    if (want == HB_TL_NONE)
        tl_del(set, c);
    else
        tl_add(set, c, want);
}

void hb_tlist_expire(hb_set *set)
{
    uint32_t now = hb_set_now_ms(set);
    for (int w = 1; w < HB_TL_COUNT; w++) {
        hb_tlist *l = &set->tl[w];
        while (l->head) {
            hb_conn *c = &set->conns[l->head];
            if (now - c->since_ms < l->timeout_ms)
                break; /* sorted: the rest are younger */
            if (w == HB_TL_LOGIN) {
                hb_conn_fail(set, c, HB__ERROR_CODE__ERR_LOGIN_TIMEOUT, "no login in time");
            } else if (w == HB_TL_STALL && c->outlen) {
                /* It does not read: an error frame would only queue behind. */
                HB_INC(set->st.err[HB__ERROR_CODE__ERR_OUTPUT_OVERFLOW]);
                hb_conn_close(set, c);
            } else if (w == HB_TL_STALL) {
                hb_conn_fail(set, c, HB__ERROR_CODE__ERR_FRAME_TIMEOUT, "frame not finished in time");
            } else {
                hb_conn_close(set, c);
            }
        }
    }
}

/* ---- open / close ------------------------------------------------------------ */

static void io_events(hb_set *set, hb_conn *c, int ev)
{
    if ((c->io.events & (EV_READ | EV_WRITE)) == ev)
        return;
    ev_io_stop(set->loop, &c->io);
    ev_io_set(&c->io, c->io.fd, ev);
    ev_io_start(set->loop, &c->io);
}

hb_conn *hb_conn_accepted(hb_set *set, int fd, uint32_t addr)
{
    uint32_t slot;
    if (set->free_head) {
        slot = set->free_head;
        set->free_head = set->conns[slot].next;
    } else {
        slot = ++set->hwm; /* the caller checked the count against cap */
    }
    hb_conn *c = &set->conns[slot];
    uint32_t gen = c->gen + 1;
    memset(c, 0, sizeof *c);
    c->gen = gen;
    c->addr = addr;
    c->state = HB_CONN_NEW;
    hb_tcp_nodelay(fd);
    ev_io_init(&c->io, hb_conn_io_cb, fd, EV_READ);
    ev_io_start(set->loop, &c->io);
    tl_add(set, c, HB_TL_LOGIN);
    HB_INC(set->st.conns);
    return c;
}

/* The connection stops being uid's session. */
static void leave_active(hb_set *set, hb_conn *c)
{
    if (c->state != HB_CONN_ACTIVE)
        return;
    hb_dir_logout(&set->srv->dir, c->uid, HB_LOC(set->id, hb_conn_slot(set, c)));
    HB_DEC(set->st.active);
}

void hb_conn_close(hb_set *set, hb_conn *c)
{
    if (c->state == HB_CONN_FREE)
        return;
    if (set->txc == c) {
        set->txc = NULL;
        set->txlen = 0;
    }
    leave_active(set, c);
    ev_io_stop(set->loop, &c->io);
    close(c->io.fd);
    if (set->srv->addrs)
        hb_addr_release(set->srv->addrs, c->addr);
    if (c->spill)
        hb_pool_put(&set->pool, c->spill);
    if (c->out)
        hb_pool_put(&set->pool, c->out);
    c->spill = c->out = 0;
    c->inlen = c->outlen = c->outoff = 0;
    tl_del(set, c);
    c->state = HB_CONN_FREE;
    c->next = set->free_head; /* free-list link while FREE */
    set->free_head = hb_conn_slot(set, c);
    HB_DEC(set->st.conns);
    HB_INC(set->st.closed);
}

/* ---- output ------------------------------------------------------------------ */

static void conn_write(hb_set *set, hb_conn *c, const uint8_t *p, size_t n)
{
    if (c->out) { /* already backed up: queue behind, bounded */
        uint8_t *o = hb_pool_ptr(&set->pool, c->out);
        if (c->outoff) {
            memmove(o, o + c->outoff, c->outlen);
            c->outoff = 0;
        }
        if (c->outlen + n > HB_CHUNK) {
            HB_INC(set->st.err[HB__ERROR_CODE__ERR_OUTPUT_OVERFLOW]);
            hb_conn_close(set, c);
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
            hb_conn_close(set, c); /* reset or gone */
            return;
        }
        w = 0;
    }
    HB_ADD(set->st.bytes_out, (uint64_t)w);
    size_t rest = n - (size_t)w;
    if (rest > HB_CHUNK) {
        HB_INC(set->st.err[HB__ERROR_CODE__ERR_OUTPUT_OVERFLOW]);
        hb_conn_close(set, c);
        return;
    }
    if (!(c->out = hb_pool_get(&set->pool))) {
        HB_INC(set->st.pool_exhausted);
        hb_conn_close(set, c);
        return;
    }
    memcpy(hb_pool_ptr(&set->pool, c->out), p + w, rest);
    c->outlen = (uint16_t)rest;
    c->outoff = 0;
    io_events(set, c, EV_READ | EV_WRITE);
    tl_update(set, c);
}

/* EV_WRITE: drain the backed-up chunk.  false if the connection closed. */
static bool out_flush(hb_set *set, hb_conn *c)
{
    if (!c->out) {
        io_events(set, c, EV_READ);
        return true;
    }
    ssize_t w = send(c->io.fd, hb_pool_ptr(&set->pool, c->out) + c->outoff, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return true;
        hb_conn_close(set, c);
        return false;
    }
    HB_ADD(set->st.bytes_out, (uint64_t)w);
    c->outoff += (uint16_t)w;
    c->outlen -= (uint16_t)w;
    if (c->outlen == 0) {
        hb_pool_put(&set->pool, c->out);
        c->out = 0;
        c->outoff = 0;
        io_events(set, c, EV_READ);
        if (c->state == HB_CONN_CLOSING)
            shutdown(c->io.fd, SHUT_WR);
    } else if (w > 0 && c->tl == HB_TL_STALL) {
        tl_del(set, c); /* progress: the deadline starts again */
    }
    tl_update(set, c);
    return true;
}

void hb_conn_flush_tx(hb_set *set)
{
    hb_conn *c = set->txc;
    size_t n = set->txlen;
    set->txlen = 0;
    if (c && n && c->state != HB_CONN_FREE)
        conn_write(set, c, set->tx, n);
}

void hb_conn_send(hb_set *set, hb_conn *c, const uint8_t *frame, size_t len)
{
    if (c->state == HB_CONN_FREE || c->state == HB_CONN_CLOSING)
        return;
    if (set->txc == c && len <= sizeof set->tx) {
        if (set->txlen + len > sizeof set->tx)
            hb_conn_flush_tx(set);
        if (set->txc == c) {
            memcpy(set->tx + set->txlen, frame, len);
            set->txlen += len;
            return;
        }
        if (c->state == HB_CONN_FREE)
            return;
    }
    conn_write(set, c, frame, len);
}

void hb_conn_send_frame(hb_set *set, hb_conn *c, const Hb__Frame *f)
{
    uint8_t buf[HB_FRAME_WIRE_MAX];
    size_t n = hb_frame_pack(f, buf, sizeof buf);
    if (n)
        hb_conn_send(set, c, buf, n);
}

void hb_conn_fail(hb_set *set, hb_conn *c, Hb__ErrorCode code, const char *detail)
{
    if (c->state == HB_CONN_FREE || c->state == HB_CONN_CLOSING)
        return;
    HB_INC(set->st.err[code]);
    uint8_t buf[HB_FRAME_WIRE_MAX];
    size_t n = hb_pack_error(buf, sizeof buf, code, detail);
    if (n)
        hb_conn_send(set, c, buf, n);
    if (set->txc == c)
        hb_conn_flush_tx(set);
    if (c->state == HB_CONN_FREE)
        return; /* the write found the peer gone */
    leave_active(set, c);
    c->state = HB_CONN_CLOSING;
    /* Half-close: the peer reads our error, then EOF, and closes; we drain
     * what it still sends until then (closing at once with unread input
     * would reset the connection and could destroy the error frame). */
    if (!c->outlen)
        shutdown(c->io.fd, SHUT_WR);
    if (c->spill)
        hb_pool_put(&set->pool, c->spill);
    c->spill = 0;
    c->inlen = 0;
    tl_update(set, c);
}

/* ---- input ------------------------------------------------------------------- */

static bool keep_partial(hb_set *set, hb_conn *c, const uint8_t *p, size_t n)
{
    if (n <= HB_CONN_INLINE) {
        if (c->spill) {
            hb_pool_put(&set->pool, c->spill);
            c->spill = 0;
        }
        memcpy(c->in, p, n);
    } else {
        if (!c->spill && !(c->spill = hb_pool_get(&set->pool))) {
            HB_INC(set->st.pool_exhausted);
            hb_conn_close(set, c);
            return false;
        }
        memmove(hb_pool_ptr(&set->pool, c->spill), p, n);
    }
    c->inlen = (uint16_t)n;
    return true;
}

static void conn_read(hb_set *set, hb_conn *c)
{
    uint8_t *rb = set->rbuf;
    size_t have = c->inlen;
    if (have)
        memcpy(rb, c->spill ? hb_pool_ptr(&set->pool, c->spill) : c->in, have);
    ssize_t n = read(c->io.fd, rb + have, sizeof set->rbuf - have);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        hb_conn_close(set, c); /* EOF or reset: nobody left to answer */
        return;
    }
    HB_ADD(set->st.bytes_in, (uint64_t)n);
    if (c->state == HB_CONN_CLOSING)
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
        hb_handle_frame(set, c, rb + off + prefix, body);
        off += prefix + body;
        if (c->state == HB_CONN_FREE || c->state == HB_CONN_CLOSING)
            break;
    }
    if (c->state == HB_CONN_ACTIVE || c->state == HB_CONN_NEW) {
        if (r == HB_SCAN_TOO_LARGE)
            hb_conn_fail(set, c, HB__ERROR_CODE__ERR_FRAME_TOO_LARGE, "frame length over the limit");
        else if (r == HB_SCAN_EMPTY)
            hb_conn_fail(set, c, HB__ERROR_CODE__ERR_FRAME_EMPTY, "zero-length frame");
        else if (keep_partial(set, c, rb + off, have - off)) {
            if (progress && c->tl == HB_TL_STALL)
                tl_del(set, c); /* a new frame began: its own deadline */
            tl_update(set, c);
        }
    }
    if (set->txc == c)
        hb_conn_flush_tx(set);
    set->txc = NULL;
}

void hb_conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    hb_set *set = ev_userdata(loop);
    hb_conn *c = HB_CONTAINER_OF(w, hb_conn, io);
    if ((revents & EV_WRITE) && !out_flush(set, c))
        return;
    if (revents & EV_READ)
        conn_read(set, c);
}
