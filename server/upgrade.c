/* upgrade.c -- hot upgrade, the running side, and the messages both sides
 * exchange.
 *
 * The running server (--upgrade-socket PATH) hands everything to a new
 * process (--takeover PATH): it checks the new one runs with the same money,
 * freezes every SET (nothing read, nothing accepted: no request is
 * half-handled), pauses the producer between two steps, lets the journal
 * write and sync its last batch and stops appending (the journal changes
 * hands at a batch boundary), sends the journal's descriptor and the
 * producer's schedule, then has each SET send its listeners and connections
 * to the new SET of the same number.  Until it sends Commit it owns
 * everything: a new process that refuses, dies or goes silent makes it thaw
 * and serve as before (and say so).  After Commit it closes its copies (the
 * sockets live on in the new process) and exits.
 *
 * Everything here runs on main's thread, blocking with bounded timeouts:
 * main has nothing else to do while the SETs are frozen. */
#include "upgrade.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cluster.h"
#include "dealer.h"
#include "xmsg.h"
#include "server.h"
#include "set.h"

/* ---- messages ------------------------------------------------------------------ */

int sv_up_send(int fd, const Hb__Upgrade *m, const int *fds, int nfds)
{
    size_t n = hb__upgrade__get_packed_size(m);
    if (n > SV_UP_MAX_MSG || nfds > SV_UP_MAX_FDS) {
        errno = EMSGSIZE;
        return -1;
    }
    uint8_t *buf = malloc(n ? n : 1); /* the rare path: a handful per takeover */
    if (!buf)
        return -1;
    hb__upgrade__pack(m, buf);
    struct iovec iov = {.iov_base = buf, .iov_len = n ? n : 1}; /* an empty message still needs a byte */
    if (!n)
        buf[0] = 0;
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int) * SV_UP_MAX_FDS)];
    } c;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        memset(&c, 0, sizeof c);
        mh.msg_control = c.space;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(h), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t w;
    do
        w = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    int e = errno;
    free(buf);
    errno = e;
    return w < 0 ? -1 : 0;
}

Hb__Upgrade *sv_up_recv(int fd, int ms, int *fds, int *nfds, char *err, size_t errlen)
{
    *nfds = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    if (r == 0) {
        snprintf(err, errlen, "no answer within %d ms", ms);
        return NULL;
    }
    uint8_t *buf = malloc(SV_UP_MAX_MSG);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int) * SV_UP_MAX_FDS)];
    } c;
    struct iovec iov = {.iov_base = buf, .iov_len = SV_UP_MAX_MSG};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.space, .msg_controllen = sizeof c.space};
    ssize_t n;
    do
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); n >= 0 && h; h = CMSG_NXTHDR(&mh, h))
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
            int k = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(fds + *nfds, CMSG_DATA(h), sizeof(int) * (size_t)k);
            *nfds += k;
        }
    Hb__Upgrade *m = NULL;
    if (n < 0)
        snprintf(err, errlen, "%s", strerror(errno));
    else if (n == 0)
        snprintf(err, errlen, "the other process closed the connection");
    else if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        snprintf(err, errlen, "a message too large");
    else if (!(m = hb__upgrade__unpack(NULL, (size_t)n == 1 && buf[0] == 0 ? 0 : (size_t)n, buf)))
        snprintf(err, errlen, "an undecodable message");
    free(buf);
    if (!m) {
        for (int i = 0; i < *nfds; i++)
            close(fds[i]);
        *nfds = 0;
    }
    return m;
}

void sv_up_free(Hb__Upgrade *m)
{
    if (m)
        hb__upgrade__free_unpacked(m, NULL);
}

socklen_t sv_up_abstract(struct sockaddr_un *a, pid_t pid, int set)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "hb-upgrade-%d-%d", (int)pid, set);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

bool sv_up_peer(int fd, pid_t *pid, uid_t *uid)
{
    struct ucred cr;
    socklen_t l = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0)
        return false;
    *pid = cr.pid;
    *uid = cr.uid;
    return true;
}

void sv_up_die_at(const char *stage)
{
    const char *at = getenv("HB_TAKEOVER_DIE_AT");
    if (at && !strcmp(at, stage)) {
        hb_log("HB_TAKEOVER_DIE_AT=%s: dying here (test)", stage);
        raise(SIGKILL);
    }
}

static void send_one(int fd, Hb__Upgrade *m, Hb__Upgrade__BodyCase kind, Hb__UpgradeDone *d)
{
    m->body_case = kind;
    switch (kind) {
    case HB__UPGRADE__BODY_GO: m->go = d; break;
    case HB__UPGRADE__BODY_SET_DONE: m->set_done = d; break;
    case HB__UPGRADE__BODY_ALL_SENT: m->all_sent = d; break;
    case HB__UPGRADE__BODY_READY: m->ready = d; break;
    case HB__UPGRADE__BODY_COMMIT: m->commit = d; break;
    default: break;
    }
}

/* A SEQPACKET socket and the address of `path` (named after `flag` in
 * errors); the socket, or -1 with err. */
static int unix_socket(const char *path, const char *flag, struct sockaddr_un *a, char *err, size_t errlen)
{
    *a = (struct sockaddr_un){.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a->sun_path) {
        snprintf(err, errlen, "%s %s: path too long", flag, path);
        return -1;
    }
    strcpy(a->sun_path, path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        snprintf(err, errlen, "%s: %s", flag, strerror(errno));
    return fd;
}

/* ---- the running side ------------------------------------------------------------ */

int sv_upgrade_listen(sv_server *s, char *err, size_t errlen)
{
    const char *path = s->cfg.upgrade_socket;
    struct sockaddr_un a;
    int fd = unix_socket(path, "--upgrade-socket", &a, err, errlen);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        close(fd);
        snprintf(err, errlen, "--upgrade-socket %s: another server listens there", path);
        return -1;
    }
    close(fd);
    unlink(path); /* a stale one from a process that is gone */
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    mode_t old = umask(0077); /* root-only (or owner-only): it hands over every connection */
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    umask(old);
    if (rc < 0 || listen(fd, 4) < 0) {
        snprintf(err, errlen, "--upgrade-socket %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    s->up_lfd = fd;
    return 0;
}

void sv_upgrade_unlisten(sv_server *s)
{
    if (s->up_lfd < 0)
        return;
    close(s->up_lfd);
    s->up_lfd = -1;
    unlink(s->cfg.upgrade_socket);
}

/* Why the new process may not take over, or NULL. */
static const char *refusal(sv_server *s, const Hb__UpgradeHello *h, char *buf, size_t n)
{
    if (h->version != SV_UPGRADE_VERSION)
        snprintf(buf, n, "protocol version %u, this server speaks %d", h->version, SV_UPGRADE_VERSION);
    else if ((int)h->sets != s->nsets)
        snprintf(buf, n, "--sets %u, this server runs %d (SET k hands over to SET k)", h->sets, s->nsets);
    else if (!h->ports || strcmp(h->ports, s->cfg.ports) || !h->listen || strcmp(h->listen, s->cfg.listen))
        snprintf(buf, n, "--listen %s --port %s, this server listens on %s port %s (its listeners are handed over)",
                 h->listen ? h->listen : "?", h->ports ? h->ports : "?", s->cfg.listen, s->cfg.ports);
    else if (!h->money)
        snprintf(buf, n, "no money settings");
    else {
        Hb__Cycle mine;
        char why[200];
        sv_cycle_from_config(&s->cfg, (uint32_t)atomic_load(&s->cycles_started), &mine);
        if (!sv_cycle_money_differs(&mine, h->money, why, sizeof why))
            return NULL;
        snprintf(buf, n, "money settings differ: %s", why);
    }
    return buf;
}

static void fill_flow(Hb__UpgradeFlow *o, const sv_flow *f)
{
    hb__upgrade_flow__init(o);
    o->rate = f->rate;
    o->total = f->total;
    o->made = f->made;
    o->base_made = f->base;
    o->t0_mono_us = f->t0;
    o->amount_min = f->amin;
    o->amount_max = f->amax;
    o->running = f->running;
}

/* The journal has written and synced everything appended (bounded wait). */
static bool journal_drained(sv_server *s, int ms)
{
    for (int64_t end = hb_mono_us() + ms * 1000LL; hb_mono_us() < end; usleep(1000))
        if (sv_journal_committed(&s->journal) >= sv_journal_appended(&s->journal))
            return true;
    return false;
}

typedef struct up_run {
    sv_server *s;
    int fd;
    bool frozen, dealer_paused, journal_paused, xmsg_paused;
    int64_t frozen_at;
    char why[256];
} up_run;

static Hb__Upgrade *expect(up_run *r, Hb__Upgrade__BodyCase kind, int ms, const char *what)
{
    int fds[SV_UP_MAX_FDS], nfds;
    char err[128];
    Hb__Upgrade *m = sv_up_recv(r->fd, ms, fds, &nfds, err, sizeof err);
    for (int i = 0; i < nfds; i++)
        close(fds[i]); /* the new side sends none */
    if (!m)
        snprintf(r->why, sizeof r->why, "waiting for %s: %s", what, err);
    else if (m->body_case != kind) {
        snprintf(r->why, sizeof r->why, "waiting for %s: another message (%d)", what, m->body_case);
        sv_up_free(m);
        m = NULL;
    }
    return m;
}

/* Stop reading, dealing and appending; send the journal and the schedule. */
static bool freeze_and_send_state(up_run *r)
{
    sv_server *s = r->s;
    r->frozen_at = hb_mono_us();
    r->frozen = true;
    if (!sv_set_ctl_all(s, SV_CTL_FREEZE, 5000)) {
        snprintf(r->why, sizeof r->why, "a SET did not freeze");
        return false;
    }
    sv_dealer_pause(s);
    r->dealer_paused = true;
    r->xmsg_paused = true; /* opens from other nodes append to the journal too */
    if (!sv_xmsg_pause(s->xmsg, true, 5000)) {
        snprintf(r->why, sizeof r->why, "messages from other nodes did not pause");
        return false;
    }
    if (!journal_drained(s, 10000)) {
        snprintf(r->why, sizeof r->why, "the journal did not write its last batch within 10 s");
        return false;
    }
    sv_journal_pause(&s->journal);
    r->journal_paused = true;

    Hb__UpgradeFrozen f = HB__UPGRADE_FROZEN__INIT;
    Hb__UpgradeFlow shake, send;
    fill_flow(&shake, &s->prod.shake);
    fill_flow(&send, &s->prod.send);
    f.journal = s->cfg.journal;
    f.shake = &shake;
    f.send = &send;
    f.next_set = (uint32_t)s->prod.next_set;
    f.rng = s->prod.rng;
    f.cycles_requested = (uint32_t)atomic_load(&s->cycles_requested);
    f.cycles_started = (uint32_t)atomic_load(&s->cycles_started);
    f.producer_started = s->producer_started;
    f.producer_start_mono_us = s->producer_start_mono;
    f.event_started = atomic_load(&s->event_started);
    f.frozen_mono_us = r->frozen_at;
    f.pid = (uint32_t)getpid();
    Hb__Upgrade m = HB__UPGRADE__INIT;
    m.body_case = HB__UPGRADE__BODY_FROZEN;
    m.frozen = &f;
    /* The journal, and the cluster's liveness listener: on it the other
     * nodes see this node alive through the switch (liveness.h). */
    int fds[2] = {s->journal.fd, sv_cluster_live_fd(s->cluster)};
    if (sv_up_send(r->fd, &m, fds, fds[1] >= 0 ? 2 : 1) < 0) {
        snprintf(r->why, sizeof r->why, "sending the journal: %s", strerror(errno));
        return false;
    }
    return true;
}

uint64_t sv_up_conns(sv_server *s)
{
    uint64_t n = 0;
    for (int i = 0; i < s->nsets; i++)
        n += HB_GET(s->sets[i]->st.conns);
    return n;
}

/* Hello checked: the whole handover.  true once committed. */
static bool hand_over(up_run *r)
{
    sv_server *s = r->s;
    if (!freeze_and_send_state(r))
        return false;
    Hb__Upgrade *m = expect(r, HB__UPGRADE__BODY_GO, 60000, "Go (the new process replays the journal)");
    if (!m)
        return false;
    sv_up_free(m);
    uint64_t n = sv_up_conns(s);
    if (!sv_set_ctl_all(s, SV_CTL_SEND, 120000)) {
        snprintf(r->why, sizeof r->why, "a SET could not hand over its connections");
        return false;
    }
    Hb__Upgrade out = HB__UPGRADE__INIT;
    Hb__UpgradeDone d = HB__UPGRADE_DONE__INIT;
    d.conns = n;
    send_one(r->fd, &out, HB__UPGRADE__BODY_ALL_SENT, &d);
    if (sv_up_send(r->fd, &out, NULL, 0) < 0) {
        snprintf(r->why, sizeof r->why, "sending AllSent: %s", strerror(errno));
        return false;
    }
    if (!(m = expect(r, HB__UPGRADE__BODY_READY, 30000, "Ready")))
        return false;
    bool same = m->ready->conns == n;
    sv_up_free(m);
    if (!same) {
        snprintf(r->why, sizeof r->why, "the new process adopted another number of connections than %llu",
                 (unsigned long long)n);
        return false;
    }
    /* The point of no return: from here the new process owns everything. */
    sv_upgrade_unlisten(s); /* so the new one can listen on the same path */
    send_one(r->fd, &out, HB__UPGRADE__BODY_COMMIT, &d);
    if (sv_up_send(r->fd, &out, NULL, 0) < 0)
        hb_log("takeover: sending Commit failed (%s); the new process owns the connections regardless",
               strerror(errno));
    sv_set_ctl_all(s, SV_CTL_COMMIT, 10000);
    s->handed_over = true;
    sv_cluster_stay(s->cluster, true); /* the new process is this node now */
    hb_log("takeover: handed %llu connections, the listeners and the journal to pid %d; paused %.1f ms so far; "
           "exiting",
           (unsigned long long)n, (int)s->up_peer, (double)(hb_mono_us() - r->frozen_at) / 1000.0);
    return true;
}

/* A failed takeover: serve everything again, from where it stopped. */
static void thaw(up_run *r)
{
    sv_server *s = r->s;
    if (r->journal_paused && sv_journal_resume(&s->journal) < 0)
        hb_die("takeover failed and the journal writer cannot restart: stopping");
    if (r->dealer_paused && sv_dealer_start(s) < 0)
        hb_die("takeover failed and the producer cannot restart: stopping");
    if (r->xmsg_paused)
        sv_xmsg_pause(s->xmsg, false, 0);
    if (r->frozen && !sv_set_ctl_all(s, SV_CTL_THAW, 10000))
        hb_log("takeover: a SET did not thaw in time");
    hb_log("takeover by pid %d failed: %s; serving everything again (paused %.1f ms)", (int)s->up_peer, r->why,
           r->frozen ? (double)(hb_mono_us() - r->frozen_at) / 1000.0 : 0.0);
}

bool sv_upgrade_serve(sv_server *s)
{
    int fd = accept4(s->up_lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return false;
    up_run r = {.s = s, .fd = fd};
    pid_t pid;
    uid_t uid;
    bool committed = false;
    Hb__Upgrade *m = NULL;
    if (!sv_up_peer(fd, &pid, &uid) || (uid != 0 && uid != geteuid())) {
        hb_log("takeover: a process of another user connected: ignored");
        goto out;
    }
    s->up_peer = pid;
    if (!(m = expect(&r, HB__UPGRADE__BODY_HELLO, 5000, "Hello"))) {
        hb_log("takeover by pid %d: %s; nothing changed", (int)pid, r.why);
        goto out;
    }
    char buf[300];
    const char *no = refusal(s, m->hello, buf, sizeof buf);
    if (!no && m->hello->pid != (uint32_t)pid)
        no = "its Hello names another pid than its socket";
    if (no) {
        Hb__UpgradeRefused rf = HB__UPGRADE_REFUSED__INIT;
        rf.reason = (char *)no;
        Hb__Upgrade out = HB__UPGRADE__INIT;
        out.body_case = HB__UPGRADE__BODY_REFUSED;
        out.refused = &rf;
        sv_up_send(fd, &out, NULL, 0);
        hb_log("takeover by pid %d refused: %s; nothing changed", (int)pid, no);
        goto out;
    }
    hb_log("takeover: pid %d asks for everything; freezing", (int)pid);
    committed = hand_over(&r);
    if (!committed)
        thaw(&r);
out:
    sv_up_free(m);
    close(fd);
    return committed;
}

/* ---- the new side's pieces (the order is sv_server_takeover's, server.c) ------- */

int sv_up_connect(sv_server *s, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un a;
    int fd = unix_socket(path, "--takeover", &a, err, errlen);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        snprintf(err, errlen, "--takeover %s: cannot reach the running server: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    Hb__Cycle money;
    sv_cycle_from_config(&s->cfg, (uint32_t)atomic_load(&s->cycles_started), &money);
    Hb__UpgradeHello h = HB__UPGRADE_HELLO__INIT;
    h.version = SV_UPGRADE_VERSION;
    h.pid = (uint32_t)getpid();
    h.sets = (uint32_t)s->nsets;
    h.money = &money;
    h.ports = s->cfg.ports;
    h.listen = s->cfg.listen;
    Hb__Upgrade m = HB__UPGRADE__INIT;
    m.body_case = HB__UPGRADE__BODY_HELLO;
    m.hello = &h;
    if (sv_up_send(fd, &m, NULL, 0) < 0) {
        snprintf(err, errlen, "--takeover %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void restore_flow(sv_flow *f, const Hb__UpgradeFlow *o)
{
    if (!o)
        return;
    f->rate = o->rate;
    f->total = o->total;
    f->made = o->made;
    f->base = o->base_made;
    f->t0 = o->t0_mono_us;
    f->amin = o->amount_min;
    f->amax = o->amount_max;
    f->running = o->running;
}

void sv_up_restore_producer(sv_server *s, const Hb__UpgradeFrozen *f)
{
    restore_flow(&s->prod.shake, f->shake);
    restore_flow(&s->prod.send, f->send);
    s->prod.next_set = (int)(f->next_set % (uint32_t)s->nsets);
    s->prod.rng = f->rng;
    sv_producer_sync_counters(&s->prod);
    atomic_store(&s->prod.started, f->producer_started);
    atomic_store(&s->cycles_requested, (int)f->cycles_requested);
    atomic_store(&s->cycles_started, (int)f->cycles_started);
    s->producer_started = f->producer_started;
    s->producer_start_mono = f->producer_start_mono_us;
    s->journal_first_cycle = false; /* the running server journaled it */
    if (f->event_started)
        atomic_store(&s->event_started, true);
}
