/* liveness.c -- a member whose process is gone leaves at once (see liveness.h).
 *
 * Every peer slot is one member: its liveness connection (dialled or
 * held) and one timer that paces the dials.  Slots never move (their libev watchers are embedded), so a slot
 * is freed in place and found again by name. */
#include "liveness.h"

#include "cluster.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <ev.h>
#include "net.h"

typedef enum {
    PEER_FREE,    /* slot unused */
    PEER_WAIT,    /* dial when the timer fires */
    PEER_DIALING, /* connect to its liveness port in progress */
    PEER_UP,      /* holding the connection: the process is there */
    PEER_GONE     /* proven gone: nothing more until the list changes */
} peer_state;

typedef struct live_peer {
    sv_live *l;
    peer_state state;
    char name[SV_CLUSTER_NAME_MAX];
    struct sockaddr_in live_at; /* its liveness port */
    bool listed;                /* in the list being applied (sv_live_members) */
    int fd;                     /* the liveness connection, -1 */
    ev_io io;
    ev_timer timer;             /* dial pacing and timeout */
    ev_tstamp up_at;            /* when the connection came up */
    unsigned quick;             /* brief connections in a row (closed) */
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
    _Atomic uint64_t ngone, nclosed, ndials;
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

static void peer_close(live_peer *p)
{
    struct ev_loop *loop = p->l->loop;
    if (p->fd >= 0) {
        ev_io_stop(loop, &p->io);
        close(p->fd);
        p->fd = -1;
    }
    ev_timer_stop(loop, &p->timer);
}

static void dial_after(live_peer *p, ev_tstamp after)
{
    peer_close(p);
    p->state = PEER_WAIT;
    ev_timer_set(&p->timer, after, 0);
    ev_timer_start(p->l->loop, &p->timer);
}

/* Nothing listens on the port its process registered: that process is gone. */
static void proven_gone(live_peer *p)
{
    peer_close(p);
    p->state = PEER_GONE;
    atomic_fetch_add(&p->l->ngone, 1);
    atomic_store(&p->l->gone_us, hb_now_us());
    p->l->gone(p->l->arg, p->name, ntohs(p->live_at.sin_port));
}

static void dial(live_peer *p);

/* Its connection closed: dial again at once, and a refusal is the proof.
 * A dying process releases its shared table's sockets newest first, so
 * that dial may still reach the listener, to be reset a moment later (1M
 * run 18: closed 36 ms after the kill, refused only on the dial a second
 * later): a connection that closes soon after it came up is dialled again
 * after SV_LIVE_QUICK, up to SV_LIVE_QUICK_MAX times in a row, then once
 * a second (a peer that accepts and closes at once, its held connections
 * full, must not make this spin). */
static void closed(live_peer *p)
{
    atomic_fetch_add(&p->l->nclosed, 1);
    atomic_store(&p->l->closed_us, hb_now_us());
    if (ev_now(p->l->loop) - p->up_at >= SV_LIVE_REDIAL) {
        p->quick = 0;
        dial(p);
    } else {
        dial_after(p, p->quick++ < SV_LIVE_QUICK_MAX ? SV_LIVE_QUICK : SV_LIVE_REDIAL);
    }
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
            proven_gone(p);
        } else if (e) {
            dial_after(p, SV_LIVE_REDIAL); /* unreachable, timed out: proves nothing */
        } else {
            p->state = PEER_UP;
            p->up_at = ev_now(loop);
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
    closed(p); /* closed or reset: its process may be gone */
}

static void dial(live_peer *p)
{
    struct ev_loop *loop = p->l->loop;
    peer_close(p);
    atomic_fetch_add(&p->l->ndials, 1);
    bool ready = false;
    p->fd = hb_connect_nb(&p->live_at, NULL, false, &ready);
    if (p->fd < 0) {
        if (errno == ECONNREFUSED)
            proven_gone(p);
        else
            dial_after(p, SV_LIVE_REDIAL);
        return;
    }
    p->state = PEER_DIALING;
    ev_io_init(&p->io, io_cb, p->fd, EV_WRITE);
    p->io.data = p;
    ev_io_start(loop, &p->io);
    ev_timer_set(&p->timer, SV_LIVE_DIAL_TIMEOUT, 0); /* no answer at all: dial again */
    ev_timer_start(loop, &p->timer);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    live_peer *p = w->data;
    if (p->state == PEER_WAIT || p->state == PEER_DIALING) /* due, or the dial's time ran out */
        dial(p);
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
            *p = (live_peer){.l = l, .state = PEER_WAIT, .fd = -1};
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
        live_peer *p = peer_find(l, m->name);
        if (p && !same_addr(&p->live_at, &live_at)) {
            peer_close(p); /* restarted, or a new process took over: its port */
            p->state = PEER_WAIT;
        } else if (p) {
            p->listed = true;
            continue;
        } else if (!(p = peer_new(l, m->name))) {
            continue;
        }
        p->live_at = live_at;
        p->listed = true;
        dial(p);
    }
    for (size_t i = 0; i < SV_CLUSTER_MAX; i++) {
        live_peer *p = &l->peers[i];
        if (p->state != PEER_FREE && !p->listed) {
            peer_close(p);
            p->state = PEER_FREE;
        }
    }
}

/* ---- life ---------------------------------------------------------------------------------- */

#define TOP_FD 4095 /* the listener's descriptor: above all the shared table ever holds (~300) */

/* The listener moved to a descriptor above every other of the shared
 * table (liveness.h: released first when the process dies).  F_DUPFD
 * takes the lowest free one from TOP_FD up, atomically, so no descriptor
 * of another thread is ever overwritten.  Below the limit on open files it
 * stays where it is (a tighter limit than TOP_FD + 1: tests, small boxes). */
static int to_top(int fd)
{
    struct rlimit rl;
    if (fd >= TOP_FD || getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur <= TOP_FD)
        return fd;
    int top = fcntl(fd, F_DUPFD_CLOEXEC, TOP_FD);
    if (top < 0)
        return fd;
    close(fd);
    return top;
}

sv_live *sv_live_adopt(int lfd, void (*gone)(void *, const char *, unsigned), void *arg, char *err,
                       size_t errlen)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    if (getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0 || sa.sin_family != AF_INET) {
        snprintf(err, errlen, "liveness port: not an IPv4 socket (%s)", strerror(errno));
        close(lfd);
        return NULL;
    }
    sv_live *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        close(lfd);
        return NULL;
    }
    l->lfd = to_top(lfd);
    l->port = ntohs(sa.sin_port);
    l->gone = gone;
    l->arg = arg;
    for (size_t i = 0; i < SV_LIVE_HELD; i++)
        l->held[i].fd = -1;
    return l;
}

sv_live *sv_live_new(const char *bind_host, int port, void (*gone)(void *, const char *, unsigned), void *arg,
                     char *err, size_t errlen)
{
    struct in_addr a = {.s_addr = htonl(INADDR_ANY)};
    if (bind_host && inet_pton(AF_INET, bind_host, &a) != 1) {
        snprintf(err, errlen, "liveness port: '%s' is not an IPv4 address", bind_host);
        return NULL;
    }
    int lfd = hb_listen_tcp(&a, port, SV_LIVE_HELD, false, err, errlen);
    return lfd < 0 ? NULL : sv_live_adopt(lfd, gone, arg, err, errlen);
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
    st->dials = atomic_load(&l->ndials);
    st->closed_us = atomic_load(&l->closed_us);
    st->gone_us = atomic_load(&l->gone_us);
}

void sv_live_free(sv_live *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < SV_CLUSTER_MAX; i++)
        if (l->peers[i].state != PEER_FREE)
            peer_close(&l->peers[i]);
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
