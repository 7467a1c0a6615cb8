/* set.c -- a SET's thread: its descriptor table, listeners, accept loop,
 * wake-ups and timers.  Connection I/O is in conn.c, messages in handlers.c. */
#include "set.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include "addrlimit.h"

uint32_t sv_set_now_ms(sv_set *set)
{
    return (uint32_t)((hb_mono_us() - set->t0_mono) / 1000);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents);
static void wake_cb(struct ev_loop *loop, ev_async *w, int revents);
static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void reopen_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* --io-collect-us: a loop turn that handled several connection events was
 * part of a stream of them; waiting a little before the next poll then takes
 * more of them per wake-up (libev sleeps the rest of the interval, then
 * polls).  After a turn with one event or none it polls at once: at low
 * rates the sleep would only add a system call and a context switch per
 * event. */
static void collect_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    sv_set *set = ev_userdata(loop);
    uint32_t n = set->turn_events;
    set->turn_events = 0;
    ev_set_io_collect_interval(loop, n >= 2 ? (double)set->srv->cfg.io_collect_us / 1e6 : 0.);
}

/* Called by main, before any SET thread runs: everything another thread will
 * ever write to (the loop's wake-up eventfd) is created here, in the shared
 * descriptor table, so it is valid in every table copied from it later. */
int sv_set_create(sv_server *s, int id, char *err, size_t errlen)
{
    sv_set *set = calloc(1, sizeof *set);
    if (!set) {
        snprintf(err, errlen, "SET %d: out of memory", id);
        return -1;
    }
    s->sets[id] = set;
    set->id = id;
    set->srv = s;
    set->spare_fd = -1;
    set->up_lfd = -1;
    set->frozen = s->cfg.takeover != NULL; /* a new process reads once the old one let go */
    if (set->frozen)
        atomic_store(&set->ctl_state, SV_CTL_BUSY); /* until it has received (set_main) */
    set->rng = (uint64_t)s->rng_seed ^ ((uint64_t)(id + 1) * 0x9e3779b97f4a7c15ULL);
    set->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV | EVFLAG_NOSIGMASK);
    if (!set->loop) {
        snprintf(err, errlen, "SET %d: cannot create an epoll loop", id);
        return -1;
    }
    ev_set_userdata(set->loop, set);
    if (s->cfg.io_collect_us > 0) {
        ev_prepare_init(&set->collect, collect_cb);
        ev_prepare_start(set->loop, &set->collect);
    }
    ev_async_init(&set->wake, wake_cb);
    ev_async_start(set->loop, &set->wake); /* creates the eventfd, here, now */
    ev_timer_init(&set->tick, tick_cb, SV_TICK_BUSY, SV_TICK_BUSY);
    ev_timer_start(set->loop, &set->tick);
    ev_timer_init(&set->reopen_timer, reopen_cb, 0., 0.);
    if (sv_pqueue_init(&set->q, (uint32_t)s->cfg.queue) < 0 || sv_inbox_init(&set->inbox, (size_t)s->cfg.inbox) < 0) {
        snprintf(err, errlen, "SET %d: out of memory for queues", id);
        return -1;
    }
    hb_arena_init(&set->arena, set->arena_mem, sizeof set->arena_mem);
    /* Enough chunks for 1 in 4 connections to hold one; beyond that the pool
     * refuses and the connection that asked is closed. */
    sv_pool_init(&set->pool, 1024 + (uint32_t)(s->cfg.max_conns / 4));
    set->tl[SV_TL_LOGIN].timeout_ms = (uint32_t)(s->cfg.login_timeout * 1000);
    set->tl[SV_TL_STALL].timeout_ms = (uint32_t)(s->cfg.frame_timeout * 1000);
    set->tl[SV_TL_LINGER].timeout_ms = (uint32_t)(s->cfg.linger * 1000);
    set->cap = (uint32_t)s->cfg.max_conns;
    /* Slots are reserved address space, touched only as connections arrive
     * (a fresh anonymous mapping reads as zero = SV_CONN_FREE). */
    size_t bytes = ((size_t)set->cap + 1) * sizeof(sv_conn);
    set->conns = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (set->conns == MAP_FAILED) {
        set->conns = NULL;
        snprintf(err, errlen, "SET %d: cannot reserve %zu bytes for connections", id, bytes);
        return -1;
    }
    set->free_head = 0;
    set->hwm = 0; /* slots 1..hwm have been used; beyond hwm they are fresh */
    return 0;
}

void sv_set_add_listener(sv_set *set, int fd)
{
    /* TCP_NODELAY and --sndbuf on the listener, where the connections it
     * accepts inherit them (one system call or two fewer per connection);
     * on every listener this SET watches, made here or handed over by an
     * older process that set them per connection. */
    if (hb_listen_conn_opts(fd, (int)set->srv->cfg.sndbuf, (int)set->srv->cfg.fastopen) < 0) {
        static atomic_flag said = ATOMIC_FLAG_INIT; /* once, not per listener and SET */
        if (!atomic_flag_test_and_set(&said))
            hb_log("--fastopen: the kernel refused TCP_FASTOPEN (%s): connections use a plain handshake",
                   strerror(errno));
    }
    set->lfd[set->nl] = fd;
    ev_io_init(&set->lio[set->nl], accept_cb, fd, EV_READ);
    if (!set->frozen)
        ev_io_start(set->loop, &set->lio[set->nl]);
    set->nl++;
}

static int make_listeners(sv_set *set, char *err, size_t errlen)
{
    sv_server *s = set->srv;
    for (int i = 0; i < s->nports; i++) {
        int fd = hb_listen_tcp(&s->listen_addr, s->ports[i], (int)s->cfg.backlog, true, err, errlen);
        if (fd < 0)
            return -1;
        sv_set_add_listener(set, fd);
    }
    /* The spare descriptor of libev's manual: at EMFILE, close it, accept
     * and close the connection, reopen it; so a full table cannot make the
     * listener spin. */
    set->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return 0;
}

typedef struct start_sync {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done; /* 1 ok, -1 failed */
    char err[256];
} start_sync;

static void *set_main(void *arg)
{
    void **args = arg;
    sv_set *set = args[0];
    start_sync *sync = args[1];
    char err[256] = "";
    int rc = 0;
    char name[16];
    snprintf(name, sizeof name, "hb-set-%d", set->id); /* top -H shows which SET is busy */
    pthread_setname_np(pthread_self(), name);
    if (set->srv->cfg.pin_sets)
        hb_thread_pin(set->id, name);

    if (set->srv->cfg.private_fds) {
        /* From here on this thread has its own descriptor table (its own
         * RLIMIT_NOFILE worth of sockets).  Descriptors inherited from the
         * shared table (eventfds, epoll fds, the journal) stay valid. */
        if (unshare(CLONE_FILES) == 0) {
            set->unshared = true;
            /* Not ours, and kept open here it would outlive this process's
             * death by as long as this table takes to close: other nodes
             * would find the port still answering (liveness.h). */
            int lfd = sv_cluster_live_fd(set->srv->cluster);
            if (lfd >= 0)
                close(lfd);
        } else if (set->id == 0)
            hb_log("warning: unshare(CLONE_FILES) failed (%s): all SETs share one descriptor table", strerror(errno));
    }
    set->t0_mono = hb_mono_us();
    if (set->srv->cfg.takeover ? sv_handover_listen(set, err, sizeof err) < 0 : make_listeners(set, err, sizeof err) < 0)
        rc = -1;

    pthread_mutex_lock(&sync->mu);
    sync->done = rc < 0 ? -1 : 1;
    if (rc < 0)
        snprintf(sync->err, sizeof sync->err, "SET %d: %s", set->id, err);
    pthread_cond_signal(&sync->cv);
    pthread_mutex_unlock(&sync->mu);
    if (rc < 0)
        return NULL;
    if (set->srv->cfg.takeover) { /* the old SET connects once main said Go */
        rc = sv_handover_receive(set, err, sizeof err);
        if (rc < 0)
            hb_log("takeover: SET %d: %s", set->id, err);
        atomic_store(&set->ctl_state, rc < 0 ? SV_CTL_FAILED : SV_CTL_OK);
    }

    ev_run(set->loop, 0);

    /* Stopped: close what this table holds. */
    for (uint32_t i = 1; i <= set->hwm; i++)
        if (set->conns[i].state != SV_CONN_FREE)
            sv_conn_close(set, &set->conns[i]);
    for (int i = 0; i < set->nl; i++)
        close(set->lfd[i]);
    if (set->spare_fd >= 0)
        close(set->spare_fd);
    return NULL;
}

int sv_set_start(sv_set *set, char *err, size_t errlen)
{
    start_sync sync = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    void *args[2] = {set, &sync};
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    int e = pthread_create(&set->th, &attr, set_main, args);
    pthread_attr_destroy(&attr);
    if (e) {
        snprintf(err, errlen, "SET %d: pthread_create: %s", set->id, strerror(e));
        return -1;
    }
    /* Wait until it listens (or failed): bind errors are reported here, in
     * order, before the server says it is up. */
    pthread_mutex_lock(&sync.mu);
    while (!sync.done)
        pthread_cond_wait(&sync.cv, &sync.mu);
    pthread_mutex_unlock(&sync.mu);
    if (sync.done < 0) {
        snprintf(err, errlen, "%s", sync.err);
        pthread_join(set->th, NULL);
        set->th = 0;
        return -1;
    }
    return 0;
}

void sv_set_stop(sv_set *set)
{
    if (!set->th)
        return;
    ev_async_send(set->loop, &set->wake); /* wake_cb sees srv->stopping */
    pthread_join(set->th, NULL);
    set->th = 0;
}

void sv_set_destroy(sv_set *set)
{
    if (!set)
        return;
    if (set->loop)
        ev_loop_destroy(set->loop);
    sv_pqueue_free(&set->q);
    sv_inbox_free(&set->inbox);
    sv_pool_destroy(&set->pool);
    if (set->conns)
        munmap(set->conns, ((size_t)set->cap + 1) * sizeof(sv_conn));
    free(set->dq);
    free(set);
}

/* ---- accepting ----------------------------------------------------------- */

static void refuse(sv_set *set, int fd, Hb__ErrorCode code, const char *detail)
{
    /* A refused peer gets one Error frame (best effort, the socket buffer is
     * empty so it fits) and a close: a clear answer, no state kept. */
    uint8_t buf[128];
    size_t n = hb_pack_error(buf, sizeof buf, code, detail);
    if (n)
        (void)!send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(fd);
    HB_INC(set->st.err[code]);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    sv_set *set = ev_userdata(loop);
    sv_server *s = set->srv;
    /* Bounded batch: a connect storm on one SET must not starve its
     * established connections. */
    for (int i = 0; i < 256; i++) {
        struct sockaddr_in sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(w->fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && set->spare_fd >= 0) {
                close(set->spare_fd);
                int victim = accept(w->fd, NULL, NULL);
                if (victim >= 0) {
                    close(victim); /* before reopening the spare: it needs that slot */
                    HB_INC(set->st.emfile); /* one connection refused */
                }
                set->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (set->spare_fd < 0)
                    sv_set_tick_busy(set); /* the tick tries again */
                /* accept() says EMFILE even when nobody is waiting: stop at
                 * the first empty round instead of looping on it */
                if (victim < 0)
                    return;
                continue;
            }
            if (errno == EMFILE || errno == ENFILE) {
                HB_INC(set->st.emfile);
                /* No spare to sacrifice: stop accepting until a tick. */
                ev_io_stop(loop, w);
                sv_set_tick_busy(set);
            }
            return; /* EAGAIN, or an error the next event will repeat */
        }
        HB_INC(set->st.accepted);
        if (HB_GET(set->st.conns) >= set->cap) {
            HB_INC(set->st.refused_full);
            refuse(set, fd, HB__ERROR_CODE__ERR_SERVER_FULL, "server full (--max-conns)");
            continue;
        }
        uint32_t addr = sa.sin_family == AF_INET ? sa.sin_addr.s_addr : 0;
        if (s->cfg.addr_limit > 0 && !sv_addr_acquire(s->addrs, addr, (uint32_t)s->cfg.addr_limit)) {
            HB_INC(set->st.refused_addr);
            refuse(set, fd, HB__ERROR_CODE__ERR_TOO_MANY_CONNS_FROM_ADDR, "too many connections from your address");
            continue;
        }
        sv_conn_accepted(set, fd, addr);
    }
}

/* ---- wake-ups and ticks --------------------------------------------------- */

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    sv_set *set = ev_userdata(loop);
    if (atomic_load(&set->srv->stopping)) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    int cmd = atomic_exchange(&set->ctl, 0);
    if (cmd == SV_CTL_SEND && set->nreopen)
        sv_retry_opens(set, true); /* the new process would not know to answer them */
    if (cmd)
        sv_handover_ctl(set, cmd);
    sv_msg m;
    /* Bounded per wake-up so a flood of routed messages cannot starve I/O;
     * whatever is left triggers another round at once. */
    int n = 0;
    while (n < 1024 && sv_inbox_pop(&set->inbox, &m)) {
        sv_handle_msg(set, &m);
        n++;
    }
    if (n == 1024)
        ev_async_send(loop, &set->wake);
    sv_flush_deferred(set);
}

/* ---- opens found in flight (set.h) ------------------------------------------ */

#define REOPEN_FIRST 0.001
#define REOPEN_MAX_WAIT 0.064

bool sv_set_open_later(sv_set *set, sv_conn *c, uint64_t packet_id)
{
    if (set->nreopen == SV_REOPEN_MAX)
        return false;
    set->reopen[set->nreopen++] =
        (sv_reopen){.packet_id = packet_id, .slot = sv_conn_slot(set, c), .gen = c->gen, .uid = c->uid};
    if (!ev_is_active(&set->reopen_timer)) {
        set->reopen_wait = REOPEN_FIRST;
        ev_timer_set(&set->reopen_timer, REOPEN_FIRST, 0.);
        ev_timer_start(set->loop, &set->reopen_timer);
    }
    return true;
}

/* The paying open appends one record and is done: usually within the next
 * millisecond, later only if its thread was preempted (or the journal's
 * ring is full), so the wait doubles rather than spin. */
static void reopen_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    sv_set *set = ev_userdata(loop);
    double wait = set->reopen_wait;
    sv_retry_opens(set, false);
    if (set->nreopen) {
        ev_timer_stop(loop, w); /* sv_set_open_later started it again at the first delay */
        set->reopen_wait = wait * 2 < REOPEN_MAX_WAIT ? wait * 2 : REOPEN_MAX_WAIT;
        ev_timer_set(w, set->reopen_wait, 0.);
        ev_timer_start(loop, w);
    }
}

/* Whether the next tick has work that cannot wait a second. */
static bool tick_needed(const sv_set *set)
{
    for (int w = 1; w < SV_TL_COUNT; w++)
        if (set->tl[w].head)
            return true;
    for (int i = 0; i < set->nl; i++)
        if (!ev_is_active(&set->lio[i]))
            return true;
    /* a standby is promoted at the first tick after a new list (standby.h) */
    return set->frozen || set->dq_len || set->rehome.cursor || set->spare_fd < 0 || HB_GET(set->st.standby);
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    sv_set *set = ev_userdata(loop);
    if (set->frozen) { /* hot upgrade: no deadlines, no accepting */
        if (set->dq_len)
            sv_flush_deferred(set);
        return;
    }
    sv_tlist_expire(set);
    sv_standby_tick(set); /* before rehoming: a promoted uid is home */
    sv_rehome_tick(set);
    if (set->dq_len) /* a safety net: replies are normally sent on the journal's wake-up */
        sv_flush_deferred(set);
    HB_STORE(set->st.queued, sv_pqueue_size(&set->q) + (uint64_t)set->nback);
    HB_STORE(set->st.deferred, set->dq_len);
    HB_STORE(set->st.pool_chunks, set->pool.used);
    /* A listener stopped at EMFILE without a spare gets another chance. */
    for (int i = 0; i < set->nl; i++)
        if (!ev_is_active(&set->lio[i]))
            ev_io_start(loop, &set->lio[i]);
    if (set->spare_fd < 0)
        set->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (!tick_needed(set) && w->repeat != SV_TICK_IDLE) {
        w->repeat = SV_TICK_IDLE;
        ev_timer_again(loop, w);
    }
}

void sv_set_tick_busy(sv_set *set)
{
    if (set->tick.repeat != SV_TICK_BUSY) {
        set->tick.repeat = SV_TICK_BUSY;
        ev_timer_again(set->loop, &set->tick);
    }
}
