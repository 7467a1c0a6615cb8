/* echo-floor.c -- hb-echo-floor: the least a server can do per connection and
 * per message, to measure hb-server against (issue 4, "the floor").
 *
 * Raw epoll, no libev, no per-connection state: a connection is its
 * descriptor in the epoll set, nothing else.  Bytes are echoed as they
 * arrive; only a write that the kernel does not take whole leaves a buffer
 * behind (and stops reading that connection until it drains).
 *
 * Like a hb-server SET, each worker thread first calls unshare(CLONE_FILES)
 * and so owns a descriptor table of its own (on these machines one table
 * holds at most 20,000 files and the limit cannot be raised), then opens its
 * own SO_REUSEPORT listener on every port, so the kernel spreads new
 * connections over the threads.  The one descriptor the main thread writes to
 * (the stop eventfd) is made before any thread unshares, so it exists in
 * every table. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include "conf.h"
#include "net.h"
#include "util.h"

static struct {
    char *listen, *ports, *stats_file;
    int64_t threads, backlog;
    bool pin;
} cfg = {.listen = "0.0.0.0", .ports = "7000", .threads = 64, .backlog = 65535};

static const hb_opt opts[] = {
    {"listen", HB_OPT_STR, &cfg.listen, "ADDR", "IPv4 address to listen on", 0, 0},
    {"port", HB_OPT_STR, &cfg.ports, "PORTS", "port, FIRST-LAST range or list; every thread listens on each", 0, 0},
    {"threads", HB_OPT_INT, &cfg.threads, "N", "worker threads, each with its own descriptor table and listeners", 1, 1024},
    {"pin", HB_OPT_BOOL, &cfg.pin, NULL, "pin thread k to the (k mod n)-th CPU this process may use (as hb-server --pin-sets)", 0, 0},
    {"backlog", HB_OPT_INT, &cfg.backlog, "N", "listen() backlog per listener", 1, 1000000},
    {"stats-file", HB_OPT_STR, &cfg.stats_file, "FILE", "write counters ('name value') to FILE every second and at exit", 0, 0},
    {NULL, 0, NULL, NULL, NULL, 0, 0},
};

static const hb_cli cli = {
    .synopsis = "hb-echo-floor [OPTIONS]",
    .description =
        "A minimal epoll echo server: the floor hb-server is measured against.  Every byte a connection sends\n"
        "comes back as it arrives; no login, no framing, no per-connection state.  Drive it with\n"
        "'hb-client --echo' (every echoed Shake frame counts as a reply).  Each thread has its own descriptor\n"
        "table (unshare CLONE_FILES) and its own SO_REUSEPORT listener on every port, so 64 threads hold\n"
        "1,000,000 connections where one table holds 20,000.  SIGINT/SIGTERM stop it with a summary.",
    .epilog = "Example:\n  hb-echo-floor --listen 10.77.0.1 --port 7000-7015 --threads 64 --stats-file echo.stats",
    .opts = opts,
};

typedef struct worker {
    int id;
    pthread_t th;
    int ep;
    int nlisten;
    int listeners[HB_MAX_PORTS];
    bool unshared;
    /* Unsent echo per descriptor (NULL almost always): fd numbers are small
     * in a private table, so an array indexed by fd is the whole map. */
    struct pend {
        char *buf;
        size_t len, off;
    } *pend;
    int npend;
    _Atomic uint64_t conns, accepted, closed, bytes, emfile;
    _Atomic bool ready;
    char err[256];
} worker;

static struct in_addr listen_addr;
static int ports[HB_MAX_PORTS], nports;
static int stop_fd = -1; /* eventfd: made before any unshare, so valid in every table */
static worker *workers;

static void close_listeners(worker *w)
{
    for (int i = 0; i < w->nlisten; i++) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, w->listeners[i], NULL);
        close(w->listeners[i]);
    }
    w->nlisten = 0;
}

static void drop(worker *w, int fd)
{
    if (fd < w->npend && w->pend[fd].buf) {
        free(w->pend[fd].buf);
        w->pend[fd].buf = NULL;
    }
    close(fd); /* also leaves the epoll set */
    atomic_fetch_sub(&w->conns, 1);
    atomic_fetch_add(&w->closed, 1);
}

static void accept_some(worker *w, int lfd)
{
    for (int k = 0; k < 256; k++) { /* a bounded batch: other events get their turn */
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* This table is full.  Closing our listeners takes us out of
                 * the SO_REUSEPORT group: new connections go to the other
                 * threads (what waits in our accept queue is reset). */
                atomic_fetch_add(&w->emfile, 1);
                hb_log("thread %d: descriptor table full at %llu connections: it stops accepting", w->id,
                       (unsigned long long)atomic_load(&w->conns));
                close_listeners(w);
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            continue;
        }
        atomic_fetch_add(&w->conns, 1);
        atomic_fetch_add(&w->accepted, 1);
    }
}

/* Keep what write() did not take; watch for writability instead of input. */
static bool keep_rest(worker *w, int fd, const char *p, size_t n)
{
    if (fd >= w->npend) {
        int nn = fd + 1024;
        struct pend *np = realloc(w->pend, (size_t)nn * sizeof *np);
        if (!np)
            return false;
        memset(np + w->npend, 0, (size_t)(nn - w->npend) * sizeof *np);
        w->pend = np;
        w->npend = nn;
    }
    struct pend *q = &w->pend[fd];
    if (!(q->buf = malloc(n)))
        return false;
    memcpy(q->buf, p, n);
    q->len = n;
    q->off = 0;
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
    return epoll_ctl(w->ep, EPOLL_CTL_MOD, fd, &ev) == 0;
}

static void on_readable(worker *w, int fd, char *buf, size_t cap)
{
    ssize_t n = read(fd, buf, cap);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        drop(w, fd);
        return;
    }
    atomic_fetch_add(&w->bytes, (uint64_t)n);
    ssize_t m = write(fd, buf, (size_t)n);
    if (m == n)
        return;
    if (m < 0 && errno != EAGAIN) {
        drop(w, fd);
        return;
    }
    if (m < 0)
        m = 0;
    if (!keep_rest(w, fd, buf + m, (size_t)(n - m)))
        drop(w, fd);
}

static void on_writable(worker *w, int fd)
{
    struct pend *q = &w->pend[fd];
    ssize_t m = write(fd, q->buf + q->off, q->len - q->off);
    if (m < 0 && errno == EAGAIN)
        return;
    if (m < 0) {
        drop(w, fd);
        return;
    }
    q->off += (size_t)m;
    if (q->off < q->len)
        return;
    free(q->buf);
    q->buf = NULL;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, fd, &ev) < 0)
        drop(w, fd);
}

static bool is_listener(const worker *w, int fd)
{
    for (int i = 0; i < w->nlisten; i++)
        if (w->listeners[i] == fd)
            return true;
    return false;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    if (cfg.pin) {
        char name[32];
        snprintf(name, sizeof name, "echo thread %d", w->id);
        hb_thread_pin(w->id, name);
    }
    /* First our own table: every descriptor below lives in it. */
    w->unshared = unshare(CLONE_FILES) == 0;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = stop_fd};
    if (w->ep < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, stop_fd, &ev) < 0) {
        snprintf(w->err, sizeof w->err, "thread %d: epoll: %s", w->id, strerror(errno));
        atomic_store(&w->ready, true);
        return NULL;
    }
    for (int i = 0; i < nports; i++) {
        int fd = hb_listen_tcp(&listen_addr, ports[i], (int)cfg.backlog, true, w->err, sizeof w->err);
        if (fd < 0) {
            atomic_store(&w->ready, true);
            return NULL;
        }
        w->listeners[w->nlisten++] = fd;
        ev = (struct epoll_event){.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
    }
    atomic_store(&w->ready, true);

    static _Thread_local char buf[65536];
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(w->ep, evs, 512, -1);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == stop_fd)
                goto out;
            if (is_listener(w, fd))
                accept_some(w, fd);
            else if (evs[i].events & EPOLLOUT)
                on_writable(w, fd);
            else
                on_readable(w, fd, buf, sizeof buf); /* EPOLLERR/HUP too: read() tells */
        }
    }
out:
    /* The table is ours alone, so closing everything is closing it: exit
     * with the thread and let the kernel close the connections. */
    return NULL;
}

static void write_stats(bool final)
{
    if (!cfg.stats_file || !*cfg.stats_file)
        return;
    uint64_t conns = 0, accepted = 0, closed = 0, bytes = 0, emfile = 0;
    for (int i = 0; i < cfg.threads; i++) {
        conns += atomic_load(&workers[i].conns);
        accepted += atomic_load(&workers[i].accepted);
        closed += atomic_load(&workers[i].closed);
        bytes += atomic_load(&workers[i].bytes);
        emfile += atomic_load(&workers[i].emfile);
    }
    char text[512];
    int len = snprintf(text, sizeof text,
                       "# hb-echo-floor counters: 'name value', rewritten every second%s\n"
                       "final %d\ntime_us %lld\nthreads %lld\nports %d\nconns %llu\naccepted %llu\nclosed %llu\n"
                       "bytes %llu\nemfile %llu\n",
                       final ? " (final)" : "", final ? 1 : 0, (long long)hb_now_us(), (long long)cfg.threads, nports,
                       (unsigned long long)conns, (unsigned long long)accepted, (unsigned long long)closed,
                       (unsigned long long)bytes, (unsigned long long)emfile);
    if (hb_write_file_atomic(cfg.stats_file, text, (size_t)len) < 0)
        hb_log("warning: cannot write stats file %s", cfg.stats_file);
}

int main(int argc, char **argv)
{
    hb_prog = "hb-echo-floor";
    int first = hb_cli_parse(&cli, argc, argv);
    char err[256];
    if (first < argc) {
        fprintf(stderr, "hb-echo-floor: unexpected argument '%s'\nhb-echo-floor: see 'hb-echo-floor --help'\n", argv[first]);
        return 2;
    }
    if ((nports = hb_parse_ports(cfg.ports, ports, HB_MAX_PORTS, err, sizeof err)) < 0) {
        fprintf(stderr, "hb-echo-floor: --port: %s\n", err);
        return 2;
    }
    if (inet_pton(AF_INET, cfg.listen, &listen_addr) != 1) {
        fprintf(stderr, "hb-echo-floor: --listen '%s': expected an IPv4 address\n", cfg.listen);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Signals are taken by sigwait in main only; threads inherit the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    if ((stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        hb_die("eventfd: %s", strerror(errno));
    workers = calloc((size_t)cfg.threads, sizeof *workers);
    if (!workers)
        hb_die("out of memory");
    for (int i = 0; i < cfg.threads; i++) {
        worker *w = &workers[i];
        w->id = i;
        int e = pthread_create(&w->th, NULL, worker_main, w);
        if (e)
            hb_die("pthread_create: %s", strerror(e));
        while (!atomic_load(&w->ready))
            sched_yield();
        if (w->err[0])
            hb_die("%s", w->err);
    }
    hb_log("listening on %s port %s: %lld threads, %s descriptor tables", cfg.listen, cfg.ports,
           (long long)cfg.threads, workers[0].unshared ? "private" : "one shared (unshare failed)");

    /* Once a second: the stats file; a signal ends the wait early. */
    struct timespec one = {1, 0};
    for (;;) {
        int sig = sigtimedwait(&sigs, NULL, &one);
        if (sig == SIGINT || sig == SIGTERM)
            break;
        write_stats(false);
    }
    uint64_t v = 1;
    if (write(stop_fd, &v, sizeof v) != sizeof v)
        hb_log("warning: cannot wake the threads: %s", strerror(errno));
    for (int i = 0; i < cfg.threads; i++)
        pthread_join(workers[i].th, NULL);
    write_stats(true);
    uint64_t accepted = 0, bytes = 0, conns = 0;
    for (int i = 0; i < cfg.threads; i++) {
        accepted += atomic_load(&workers[i].accepted);
        bytes += atomic_load(&workers[i].bytes);
        conns += atomic_load(&workers[i].conns);
    }
    hb_log("summary: %llu connections accepted, %llu open at the end, %llu bytes echoed", (unsigned long long)accepted,
           (unsigned long long)conns, (unsigned long long)bytes);
    return 0;
}
