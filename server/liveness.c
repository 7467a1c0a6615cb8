/* liveness.c -- a member whose process is gone leaves at once (see liveness.h).
 *
 * Every peer slot is one member: its liveness connection (dialled, held,
 * or closed and under probe) and one timer that paces the dials and the
 * probes.  Slots never move (their libev watchers are embedded), so a slot
 * is freed in place and found again by name. */
#include "liveness.h"

#include "cluster.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <ev.h>
#include "net.h"

typedef enum {
    PEER_FREE,    /* slot unused */
    PEER_WAIT,    /* dial again when the timer fires */
    PEER_DIALING, /* connect to its liveness port in progress */
    PEER_UP,      /* holding the connection: the process is there */
    PEER_PROBING, /* its connection closed: probing its client port */
    PEER_GONE     /* proven gone: nothing more until the list changes */
} peer_state;

typedef struct live_peer {
    sv_live *l;
    peer_state state;
    char name[SV_CLUSTER_NAME_MAX];
    struct sockaddr_in live_at, port_at; /* its liveness port, its client port */
    bool listed;                         /* in the list being applied (sv_live_members) */
    int fd;                              /* the liveness connection, -1 */
    int pfd;                             /* a probe in flight, -1 */
    ev_io io, pio;
    ev_timer timer;
    ev_tstamp suspect_since;
} live_peer;

typedef struct held {
    int fd; /* -1: free */
    ev_io io;
} held;

struct sv_live {
    struct ev_loop *loop;
    int lfd;
    unsigned port;
    ev_io accept_io;
    held held[SV_LIVE_HELD];
    live_peer peers[SV_CLUSTER_MAX];
    void (*gone)(void *, const char *, unsigned);
    void *arg;
    /* read by the stats thread (sv_live_get_stats) */
    _Atomic uint64_t ngone, nclosed, nprobes;
    _Atomic int64_t closed_us, gone_us; /* wall clock of the latest */
};

/* ---- the port others hold --------------------------------------------------------------- */

static void held_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    held *h = w->data;
    char buf[256];
    ssize_t n = recv(h->fd, buf, sizeof buf, 0);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
        return; /* nobody is meant to write here: ignored */
    ev_io_stop(loop, w);
    close(h->fd);
    h->fd = -1;
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    sv_live *l = w->data;
    for (;;) {
        int fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a transient error: the next readiness retries */
        held *h = NULL;
        for (size_t i = 0; i < SV_LIVE_HELD && !h; i++)
            if (l->held[i].fd < 0)
                h = &l->held[i];
        if (!h) {
            close(fd); /* full: a peer dialling now gets the TTL's slower notice */
            continue;
        }
        h->fd = fd;
        ev_io_init(&h->io, held_cb, fd, EV_READ);
        h->io.data = h;
        ev_io_start(loop, &h->io);
    }
}

/* ---- the members this node holds ------------------------------------------------------------ */

static void peer_close_fds(live_peer *p)
{
    struct ev_loop *loop = p->l->loop;
    if (p->fd >= 0) {
        ev_io_stop(loop, &p->io);
        close(p->fd);
        p->fd = -1;
    }
    if (p->pfd >= 0) {
        ev_io_stop(loop, &p->pio);
        close(p->pfd);
        p->pfd = -1;
    }
    ev_timer_stop(loop, &p->timer);
}

static void wait_then_dial(live_peer *p, ev_tstamp after)
{
    peer_close_fds(p);
    p->state = PEER_WAIT;
    ev_timer_set(&p->timer, after, 0);
    ev_timer_start(p->l->loop, &p->timer);
}

static void probe(live_peer *p);

/* The liveness connection closed (or the dial was refused): probe. */
static void suspect(live_peer *p)
{
    if (p->state == PEER_UP) {
        atomic_fetch_add(&p->l->nclosed, 1);
        atomic_store(&p->l->closed_us, hb_now_us());
    }
    if (p->state == PEER_UP)
        hb_log("cluster: the liveness connection to %s closed: trying its port %s:%u", p->name,
               inet_ntoa(p->port_at.sin_addr), ntohs(p->port_at.sin_port));
    peer_close_fds(p);
    p->state = PEER_PROBING;
    p->suspect_since = ev_now(p->l->loop);
    probe(p);
}

static void proven_gone(live_peer *p)
{
    peer_close_fds(p);
    p->state = PEER_GONE;
    atomic_fetch_add(&p->l->ngone, 1);
    atomic_store(&p->l->gone_us, hb_now_us());
    p->l->gone(p->l->arg, p->name, ntohs(p->live_at.sin_port));
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    live_peer *p = w->data;
    if (p->state == PEER_DIALING) {
        int e = 0;
        socklen_t el = sizeof e;
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
            e = errno;
        if (e == EINPROGRESS)
            return;
        if (e == ECONNREFUSED) {
            suspect(p); /* listed, yet nothing on its liveness port */
        } else if (e) {
            wait_then_dial(p, SV_LIVE_REDIAL);
        } else {
            p->state = PEER_UP;
            ev_timer_stop(loop, &p->timer);
            ev_io_stop(loop, w);
            ev_io_set(w, p->fd, EV_READ);
            ev_io_start(loop, w);
        }
        return;
    }
    char buf[256];
    ssize_t n = recv(p->fd, buf, sizeof buf, 0);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
        return;
    suspect(p); /* closed or reset: its process may be gone */
}

static void dial(live_peer *p)
{
    struct ev_loop *loop = p->l->loop;
    peer_close_fds(p);
    bool ready = false;
    p->fd = hb_connect_nb(&p->live_at, NULL, false, &ready);
    if (p->fd < 0) {
        if (errno == ECONNREFUSED)
            suspect(p);
        else
            wait_then_dial(p, SV_LIVE_REDIAL);
        return;
    }
    p->state = PEER_DIALING;
    ev_io_init(&p->io, io_cb, p->fd, EV_WRITE);
    p->io.data = p;
    ev_io_start(loop, &p->io);
    ev_timer_set(&p->timer, SV_LIVE_DIAL_TIMEOUT, 0); /* no answer at all: dial again */
    ev_timer_start(loop, &p->timer);
}

/* A probe's connect ended (or its time ran out): refused proves the member gone. */
static void probe_done(live_peer *p, int e)
{
    struct ev_loop *loop = p->l->loop;
    ev_timer_stop(loop, &p->timer);
    ev_io_stop(loop, &p->pio);
    close(p->pfd);
    p->pfd = -1;
    if (e == ECONNREFUSED) {
        proven_gone(p);
        return;
    }
    if (ev_now(loop) - p->suspect_since >= SV_LIVE_PROBE_FOR) {
        hb_log("cluster: %s's port still answers after %.0f s of tries: not proven gone (an upgrade, or it is still "
               "closing); holding its liveness port again", p->name, SV_LIVE_PROBE_FOR);
        dial(p); /* its port accepts (an upgrade, a broken connection): hold it again */
        return;
    }
    ev_timer_set(&p->timer, SV_LIVE_PROBE_EVERY, 0);
    ev_timer_start(loop, &p->timer);
}

static void pio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    live_peer *p = w->data;
    int e = 0;
    socklen_t el = sizeof e;
    if (getsockopt(p->pfd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
        e = errno;
    if (e != EINPROGRESS)
        probe_done(p, e);
}

static void probe(live_peer *p)
{
    struct ev_loop *loop = p->l->loop;
    atomic_fetch_add(&p->l->nprobes, 1);
    bool ready = false;
    p->pfd = hb_connect_nb(&p->port_at, NULL, false, &ready);
    if (p->pfd < 0) {
        int e = errno;
        if (e == ECONNREFUSED) {
            proven_gone(p);
            return;
        }
        ev_timer_set(&p->timer, SV_LIVE_PROBE_EVERY, 0);
        ev_timer_start(loop, &p->timer);
        return;
    }
    ev_io_init(&p->pio, pio_cb, p->pfd, EV_WRITE);
    p->pio.data = p;
    ev_io_start(loop, &p->pio);
    ev_timer_set(&p->timer, SV_LIVE_PROBE_EVERY, 0); /* an unanswered probe proves nothing */
    ev_timer_start(loop, &p->timer);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    live_peer *p = w->data;
    switch (p->state) {
    case PEER_WAIT:
    case PEER_DIALING: /* the dial's time ran out */
        dial(p);
        break;
    case PEER_PROBING:
        if (p->pfd >= 0)
            probe_done(p, ETIMEDOUT);
        else
            probe(p);
        break;
    default:
        break;
    }
}

static live_peer *peer_find(sv_live *l, const char *name)
{
    for (size_t i = 0; i < SV_CLUSTER_MAX; i++)
        if (l->peers[i].state != PEER_FREE && !strcmp(l->peers[i].name, name))
            return &l->peers[i];
    return NULL;
}

static live_peer *peer_new(sv_live *l, const char *name)
{
    for (size_t i = 0; i < SV_CLUSTER_MAX; i++) {
        live_peer *p = &l->peers[i];
        if (p->state == PEER_FREE) {
            *p = (live_peer){.l = l, .state = PEER_WAIT, .fd = -1, .pfd = -1};
            snprintf(p->name, sizeof p->name, "%s", name);
            ev_timer_init(&p->timer, timer_cb, 0, 0);
            p->timer.data = p;
            return p;
        }
    }
    return NULL;
}

static bool same_addr(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
    return a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port;
}

void sv_live_members(sv_live *l, const sv_members *ms)
{
    for (size_t i = 0; i < SV_CLUSTER_MAX; i++)
        l->peers[i].listed = false;
    for (size_t i = 0; i < ms->n; i++) {
        const sv_member *m = &ms->m[i];
        struct sockaddr_in live_at = {.sin_family = AF_INET, .sin_port = htons(m->live_port)};
        if ((int)i == ms->self || !m->live_port || inet_pton(AF_INET, m->host, &live_at.sin_addr) != 1)
            continue;
        struct sockaddr_in port_at = live_at;
        port_at.sin_port = htons(m->port);
        live_peer *p = peer_find(l, m->name);
        if (p && (!same_addr(&p->live_at, &live_at) || !same_addr(&p->port_at, &port_at))) {
            peer_close_fds(p); /* restarted or upgraded: its new port */
            p->state = PEER_WAIT;
        } else if (p) {
            p->listed = true;
            continue;
        } else if (!(p = peer_new(l, m->name))) {
            continue;
        }
        p->live_at = live_at;
        p->port_at = port_at;
        p->listed = true;
        dial(p);
    }
    for (size_t i = 0; i < SV_CLUSTER_MAX; i++) {
        live_peer *p = &l->peers[i];
        if (p->state != PEER_FREE && !p->listed) {
            peer_close_fds(p);
            p->state = PEER_FREE;
        }
    }
}

/* ---- life ---------------------------------------------------------------------------------- */

sv_live *sv_live_new(const char *bind_host, int port, void (*gone)(void *, const char *, unsigned), void *arg,
                     char *err, size_t errlen)
{
    struct in_addr a = {.s_addr = htonl(INADDR_ANY)};
    if (bind_host && inet_pton(AF_INET, bind_host, &a) != 1) {
        snprintf(err, errlen, "liveness port: '%s' is not an IPv4 address", bind_host);
        return NULL;
    }
    sv_live *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* A fixed port is shared with a hot upgrade's new process (SO_REUSEPORT,
     * as the SET listeners), which binds it before the old one exits. */
    l->lfd = hb_listen_tcp(&a, port, SV_LIVE_HELD, port != 0, err, errlen);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    if (l->lfd < 0 || getsockname(l->lfd, (struct sockaddr *)&sa, &sl) < 0) {
        if (l->lfd >= 0) {
            snprintf(err, errlen, "liveness port: getsockname: %s", strerror(errno));
            close(l->lfd);
        }
        free(l);
        return NULL;
    }
    l->port = ntohs(sa.sin_port);
    l->gone = gone;
    l->arg = arg;
    for (size_t i = 0; i < SV_LIVE_HELD; i++)
        l->held[i].fd = -1;
    return l;
}

unsigned sv_live_port(const sv_live *l)
{
    return l ? l->port : 0;
}

void sv_live_start(sv_live *l, struct ev_loop *loop)
{
    l->loop = loop;
    ev_io_init(&l->accept_io, accept_cb, l->lfd, EV_READ);
    l->accept_io.data = l;
    ev_io_start(loop, &l->accept_io);
}

int sv_live_fd(const sv_live *l)
{
    return l ? l->lfd : -1;
}

bool sv_live_started(const sv_live *l)
{
    return l && l->loop;
}

void sv_live_get_stats(sv_live *l, sv_live_stats *st)
{
    *st = (sv_live_stats){0};
    if (!l)
        return;
    st->gone = atomic_load(&l->ngone);
    st->closed = atomic_load(&l->nclosed);
    st->probes = atomic_load(&l->nprobes);
    st->closed_us = atomic_load(&l->closed_us);
    st->gone_us = atomic_load(&l->gone_us);
}

void sv_live_free(sv_live *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < SV_CLUSTER_MAX; i++)
        if (l->peers[i].state != PEER_FREE)
            peer_close_fds(&l->peers[i]);
    for (size_t i = 0; i < SV_LIVE_HELD; i++)
        if (l->held[i].fd >= 0) {
            if (l->loop)
                ev_io_stop(l->loop, &l->held[i].io);
            close(l->held[i].fd);
        }
    if (l->loop)
        ev_io_stop(l->loop, &l->accept_io);
    close(l->lfd);
    free(l);
}
