/* handover.c -- a SET's part of a hot upgrade (upgrade.c runs the whole).
 *
 * Main posts a command (set->ctl) and wakes the SET; the SET runs it from
 * its wake-up and publishes the outcome (set->ctl_state).  A SET's sockets
 * live in its own descriptor table, so only the SET itself can send them:
 * the old SET k connects to "@hb-upgrade-<new pid>-<k>", where the new
 * SET k (in its own table) listens, and sends its listeners first, then
 * every connection in batches: its descriptor (SCM_RIGHTS) beside its slot,
 * generation, uid, state, unfinished input, unsent output and the uid's
 * rate-limit words.  The new SET puts each into the same slot with the same
 * generation: the session goes on, no new Login.
 *
 * Old side: FREEZE (stop reading and accepting; replies may still leave),
 * SEND, then COMMIT (close our copies, the sockets stay open in the new
 * process; no FIN, no directory changes) or THAW (read again).  New side:
 * receive before its loop runs, START when the old one has let go.
 * Deferred replies: before SEND the journal has synced everything, so every
 * waiting reply is flushed into the connection's output first. */
#include "set.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "upgrade.h"

#define BATCH_CONNS 200         /* + listeners <= SV_UP_MAX_FDS */
#define BATCH_BYTES (48 * 1024) /* of connection state per message */

bool sv_set_ctl_all(sv_server *s, int cmd, int timeout_ms)
{
    for (int i = 0; cmd && i < s->nsets; i++) {
        atomic_store(&s->sets[i]->ctl_state, SV_CTL_BUSY);
        atomic_store(&s->sets[i]->ctl, cmd);
        ev_async_send(s->sets[i]->loop, &s->sets[i]->wake);
    }
    int64_t end = hb_mono_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        int busy = 0, failed = 0;
        for (int i = 0; i < s->nsets; i++) {
            int st = atomic_load(&s->sets[i]->ctl_state);
            busy += st == SV_CTL_BUSY;
            failed += st == SV_CTL_FAILED;
        }
        if (!busy)
            return failed == 0;
        if (hb_mono_us() > end)
            return false;
        usleep(1000);
    }
}

static void watch_listeners(sv_set *set, bool on)
{
    for (int i = 0; i < set->nl; i++) {
        if (on)
            ev_io_start(set->loop, &set->lio[i]);
        else
            ev_io_stop(set->loop, &set->lio[i]);
    }
}

static void freeze(sv_set *set)
{
    set->frozen = true;
    sv_set_tick_busy(set); /* deferred replies are flushed by the tick while frozen */
    watch_listeners(set, false);
    for (uint32_t i = 1; i <= set->hwm; i++)
        if (set->conns[i].state != SV_CONN_FREE)
            ev_io_stop(set->loop, &set->conns[i].io); /* keeps its events for a thaw */
}

static void thaw(sv_set *set)
{
    set->frozen = false;
    watch_listeners(set, true);
    sv_conn_watch_all(set);
    if (set->spare_fd < 0)
        set->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Let go: the new process holds every socket now.  Closing our descriptor
 * drops one reference; the connection itself stays open. */
static void commit(sv_set *set)
{
    for (uint32_t i = 1; i <= set->hwm; i++) {
        sv_conn *c = &set->conns[i];
        if (c->state == SV_CONN_FREE)
            continue;
        close(c->io.fd);
        c->state = SV_CONN_FREE; /* set_main must not close them again (nor log them out) */
    }
    for (int i = 0; i < set->nl; i++)
        close(set->lfd[i]);
    set->nl = 0;
    ev_break(set->loop, EVBREAK_ALL);
}

/* ---- sending (old) ------------------------------------------------------------------ */

typedef struct batch {
    int fd; /* the socket to the new SET */
    Hb__UpgradeSet us;
    Hb__UpgradeConn conn[BATCH_CONNS];
    Hb__UpgradeConn *ptr[BATCH_CONNS];
    int fds[SV_UP_MAX_FDS];
    int nfds;
    size_t bytes;
    uint64_t sent;
} batch;

static int flush_batch(batch *b, bool last)
{
    for (size_t i = 0; i < b->us.n_conns; i++)
        b->ptr[i] = &b->conn[i];
    b->us.conns = b->ptr;
    b->us.last = last;
    Hb__Upgrade m = HB__UPGRADE__INIT;
    m.body_case = HB__UPGRADE__BODY_SET;
    m.set = &b->us;
    if (sv_up_send(b->fd, &m, b->fds, b->nfds) < 0)
        return -1;
    b->sent += b->us.n_conns;
    b->us.n_conns = 0;
    b->us.listeners = 0;
    b->nfds = 0;
    b->bytes = 0;
    return 0;
}

static void add_conn(sv_set *set, batch *b, sv_conn *c)
{
    sv_dir *d = &set->srv->dir;
    Hb__UpgradeConn *u = &b->conn[b->us.n_conns++];
    hb__upgrade_conn__init(u);
    u->slot = sv_conn_slot(set, c);
    u->gen = c->gen;
    u->uid = c->uid;
    u->state = c->state;
    u->addr = c->addr;
    u->input.len = c->inlen;
    u->input.data = c->spill ? sv_pool_ptr(&set->pool, c->spill) : c->in;
    u->output.len = c->outlen;
    u->output.data = c->out ? sv_pool_ptr(&set->pool, c->out) + c->outoff : NULL;
    if (c->state == SV_CONN_ACTIVE && c->uid < d->users) {
        u->shake_rate = atomic_load(&d->u[c->uid].rate);
        u->chat_rate = atomic_load(&d->u[c->uid].chat_rate);
    }
    b->fds[b->nfds++] = c->io.fd;
    b->bytes += 32 + c->inlen + c->outlen;
}

static int send_all(sv_set *set, char *err, size_t errlen)
{
    sv_flush_deferred(set); /* the journal synced everything: every waiting reply may leave */
    if (set->dq_len) {
        snprintf(err, errlen, "%zu replies still wait for the journal", set->dq_len);
        return -1;
    }
    batch *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    struct sockaddr_un a;
    socklen_t al = sv_up_abstract(&a, set->srv->up_peer, set->id);
    struct timeval tv = {.tv_sec = 30};
    b->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (b->fd < 0 || setsockopt(b->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
        connect(b->fd, (struct sockaddr *)&a, al) < 0) {
        snprintf(err, errlen, "cannot reach the new SET: %s", strerror(errno));
        goto out;
    }
    b->us = (Hb__UpgradeSet)HB__UPGRADE_SET__INIT;
    b->us.set = (uint32_t)set->id;
    b->us.t0_mono_us = set->t0_mono;
    b->us.listeners = (uint32_t)set->nl;
    for (int i = 0; i < set->nl; i++)
        b->fds[b->nfds++] = set->lfd[i];
    for (uint32_t i = 1; i <= set->hwm; i++) {
        sv_conn *c = &set->conns[i];
        if (c->state == SV_CONN_FREE)
            continue;
        add_conn(set, b, c);
        if ((b->us.n_conns == BATCH_CONNS || b->bytes > BATCH_BYTES) && flush_batch(b, false) < 0)
            goto io_error;
    }
    if (flush_batch(b, true) < 0)
        goto io_error;
    int fds[SV_UP_MAX_FDS], nfds;
    Hb__Upgrade *m = sv_up_recv(b->fd, 30000, fds, &nfds, err, errlen);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    if (m && m->body_case == HB__UPGRADE__BODY_SET_DONE && m->set_done->conns == b->sent)
        rc = 0;
    else if (m)
        snprintf(err, errlen, "the new SET did not confirm %llu connections", (unsigned long long)b->sent);
    sv_up_free(m);
    goto out;
io_error:
    snprintf(err, errlen, "sending: %s", strerror(errno));
out:
    if (b->fd >= 0)
        close(b->fd);
    free(b);
    return rc;
}

void sv_handover_ctl(sv_set *set, int cmd)
{
    char err[256] = "";
    int rc = 0;
    switch (cmd) {
    case SV_CTL_FREEZE: freeze(set); break;
    case SV_CTL_SEND:
        if ((rc = send_all(set, err, sizeof err)) < 0)
            hb_log("takeover: SET %d: %s", set->id, err);
        break;
    case SV_CTL_COMMIT: commit(set); break;
    case SV_CTL_THAW:
    case SV_CTL_START: thaw(set); break;
    default: rc = -1;
    }
    atomic_store(&set->ctl_state, rc < 0 ? SV_CTL_FAILED : SV_CTL_OK);
}

/* ---- receiving (new) ---------------------------------------------------------------- */

int sv_handover_listen(sv_set *set, char *err, size_t errlen)
{
    struct sockaddr_un a;
    socklen_t al = sv_up_abstract(&a, getpid(), set->id);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, al) < 0 || listen(fd, 1) < 0) {
        snprintf(err, errlen, "takeover socket: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    set->up_lfd = fd;
    return 0;
}

/* The old SET's socket, from the old process only (an abstract socket has
 * no file permissions: check who connected). */
static int accept_old(sv_set *set, char *err, size_t errlen)
{
    struct pollfd p = {.fd = set->up_lfd, .events = POLLIN};
    for (int64_t end = hb_mono_us() + 60000000; hb_mono_us() < end;) {
        if (poll(&p, 1, 1000) <= 0)
            continue;
        int fd = accept4(set->up_lfd, NULL, NULL, SOCK_CLOEXEC);
        pid_t pid;
        uid_t uid;
        if (fd >= 0 && sv_up_peer(fd, &pid, &uid) && pid == set->srv->up_peer)
            return fd;
        if (fd >= 0)
            close(fd);
    }
    snprintf(err, errlen, "the old SET did not connect within 60 s");
    return -1;
}

/* One batch: listeners (first batch), then a descriptor per connection. */
static int adopt_batch(sv_set *set, const Hb__UpgradeSet *us, int *fds, int nfds, char *err, size_t errlen)
{
    int k = 0; /* descriptors used so far: the rest are closed on failure */
    if (us->set != (uint32_t)set->id || (size_t)nfds != us->listeners + us->n_conns ||
        set->nl + (int)us->listeners > HB_MAX_PORTS) {
        snprintf(err, errlen, "a batch for SET %u with %d descriptors for %u listeners and %zu connections", us->set,
                 nfds, us->listeners, us->n_conns);
        goto close_all;
    }
    for (; k < (int)us->listeners; k++)
        sv_set_add_listener(set, fds[k]); /* watched from START on */
    if (us->t0_mono_us)
        set->t0_mono = us->t0_mono_us;
    for (size_t i = 0; i < us->n_conns; i++, k++)
        if (sv_conn_adopt(set, fds[k], us->conns[i]) < 0) {
            snprintf(err, errlen, "connection in slot %u cannot be adopted", us->conns[i]->slot);
            goto close_all;
        }
    return 0;
close_all:
    for (; k < nfds; k++)
        close(fds[k]);
    return -1;
}

static void rebuild_free_list(sv_set *set)
{
    set->free_head = 0;
    for (uint32_t i = set->hwm; i >= 1; i--)
        if (set->conns[i].state == SV_CONN_FREE) {
            set->conns[i].next = set->free_head;
            set->free_head = i;
        }
}

int sv_handover_receive(sv_set *set, char *err, size_t errlen)
{
    int fd = accept_old(set, err, errlen);
    close(set->up_lfd);
    set->up_lfd = -1;
    if (fd < 0)
        return -1;
    uint64_t n = 0;
    int rc = -1;
    for (;;) {
        int fds[SV_UP_MAX_FDS], nfds;
        Hb__Upgrade *m = sv_up_recv(fd, 30000, fds, &nfds, err, errlen);
        if (!m)
            break;
        if (m->body_case != HB__UPGRADE__BODY_SET) {
            snprintf(err, errlen, "an unexpected message (%d)", m->body_case);
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
            sv_up_free(m);
            break;
        }
        bool last = m->set->last;
        int r = adopt_batch(set, m->set, fds, nfds, err, errlen);
        n += m->set->n_conns;
        sv_up_free(m);
        if (r < 0)
            break;
        if (set->id == 0)
            sv_up_die_at("receive"); /* test hook: a takeover killed midway */
        if (last) {
            rc = 0;
            break;
        }
    }
    if (rc == 0) {
        rebuild_free_list(set);
        Hb__Upgrade out = HB__UPGRADE__INIT;
        Hb__UpgradeDone d = HB__UPGRADE_DONE__INIT;
        d.conns = n;
        out.body_case = HB__UPGRADE__BODY_SET_DONE;
        out.set_done = &d;
        if (sv_up_send(fd, &out, NULL, 0) < 0) {
            snprintf(err, errlen, "confirming: %s", strerror(errno));
            rc = -1;
        }
    }
    close(fd);
    return rc;
}
