/* main.c -- hb-monitor: settings, the UDP report socket, the once-a-second
 * merge (collect.c) feeding the TSV log and the dashboard history, the HTTP
 * server (http.c), signals and the exit summary. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ev.h>
#include "columns.h"
#include "conf.h"
#include "frame.h"
#include "http.h"
#include "monitor.h"
#include "net.h"
#include "tsvlog.h"
#include "util.h"

#ifndef HB_MONITOR_WEB_DIR
#define HB_MONITOR_WEB_DIR "monitor/web"
#endif

static struct {
    char *udp, *http, *log, *reports, *web;
    bool append, progress;
    int64_t settle, max_gap, max_future, history, max_instances, evict;
} cfg = {
    .udp = "127.0.0.1:8081",
    .http = "127.0.0.1:8080",
    .log = NULL,
    .web = HB_MONITOR_WEB_DIR,
    .append = false,
    .progress = false,
    .settle = 3,
    .max_gap = 10,
    .max_future = 5,
    .history = 3600,
    .max_instances = 4096,
    .evict = 300,
};

static const hb_opt opts[] = {
    {"udp", HB_OPT_STR, &cfg.udp, "ADDR:PORT", "receive report datagrams here (servers' and clients' --monitor)", 0, 0},
    {"http", HB_OPT_STR, &cfg.http, "ADDR:PORT", "serve the dashboard (/), /api/series and /metrics here", 0, 0},
    {"log", HB_OPT_STR, &cfg.log, "FILE", "write one TSV line per merged second to FILE (none if unset)", 0, 0},
    {"reports", HB_OPT_STR, &cfg.reports, "FILE",
     "write one raw TSV line per report received to FILE (counters, histogram as high:count; tools/bench)", 0, 0},
    {"append", HB_OPT_BOOL, &cfg.append, NULL, "append to an existing --log instead of replacing it", 0, 0},
    {"web", HB_OPT_STR, &cfg.web, "DIR", "the dashboard's files (index.html, app.js, node_modules/uplot)", 0, 0},
    {"settle", HB_OPT_INT, &cfg.settle, "SEC", "wait SEC seconds for late reports before merging a second", 0, 30},
    {"max-gap", HB_OPT_INT, &cfg.max_gap, "SEC", "counts spanning more than SEC seconds are not put into one second", 1, 60},
    {"max-future", HB_OPT_INT, &cfg.max_future, "SEC", "accept reports stamped up to SEC ahead of this clock", 0, 30},
    {"history", HB_OPT_INT, &cfg.history, "SEC", "seconds kept for the dashboard", 10, 864000},
    {"max-instances", HB_OPT_INT, &cfg.max_instances, "N", "server and client processes tracked at once", 1, 1000000},
    {"evict", HB_OPT_INT, &cfg.evict, "SEC", "forget a process silent for SEC seconds", 10, 864000},
    {"progress", HB_OPT_BOOL, &cfg.progress, NULL, "print one line per merged second on stderr", 0, 0},
    {NULL, 0, NULL, NULL, NULL, 0, 0},
};

static mon_state st = {.mu = PTHREAD_MUTEX_INITIALIZER};
static mon_tsvlog tlog, rlog; /* --log, --reports */
static int udp_fd = -1;
static uint64_t rows_out, log_errors;

/* ---- merged seconds: log, history, progress (called under st.mu) ------------------ */

static void on_row(void *ctx, const mon_row *r, const hb_hist *lat)
{
    (void)ctx;
    (void)lat;
    rows_out++;
    if (mon_tsvlog_write(&tlog, r) < 0 && log_errors++ == 0)
        hb_log("warning: cannot write --log %s: %s", cfg.log, strerror(errno));
    mon_history_push(&st.hist, r);
    if (cfg.progress)
        hb_log("%lld  servers %u clients %u  conns %llu/%llu  send %llu/s reply %llu/s  created %llu/s won %llu/s  "
               "opens %llu/s  p99 %.1f ms",
               (long long)r->second, r->reported[MON_SERVER] + r->filled[MON_SERVER] + r->rebased[MON_SERVER],
               r->reported[MON_CLIENT] + r->filled[MON_CLIENT] + r->rebased[MON_CLIENT],
               (unsigned long long)r->conns[MON_SERVER], (unsigned long long)r->conns[MON_CLIENT],
               (unsigned long long)r->d[MON_CLIENT][MON_requests], (unsigned long long)r->d[MON_SERVER][MON_replies],
               (unsigned long long)r->d[MON_SERVER][MON_created], (unsigned long long)r->d[MON_SERVER][MON_won],
               (unsigned long long)r->d[MON_SERVER][MON_opens], (double)r->lat_p99 / 1000.0);
}

/* ---- UDP reports -------------------------------------------------------------------- */

static void on_datagram(const uint8_t *buf, size_t n, int64_t now_us)
{
    static uint8_t mem[64 * 1024]; /* a report with 1,000 histogram buckets needs ~13 KiB */
    static hb_arena arena;
    if (!arena.mem)
        hb_arena_init(&arena, mem, sizeof mem);
    size_t prefix, body;
    /* exactly one whole frame per datagram */
    if (hb_frame_scan(buf, n, HB_REPORT_MAX, &prefix, &body) != HB_SCAN_FRAME || prefix + body != n) {
        mon_collect_bad(st.col);
        return;
    }
    Hb__Frame *f = hb_frame_unpack(&arena, buf + prefix, body);
    mon_report r;
    if (!f || f->body_case != HB__FRAME__BODY_REPORT || mon_report_from_pb(f->report, &r) < 0) {
        mon_collect_bad(st.col);
        return;
    }
    if (mon_reports_write(&rlog, now_us, &r) < 0 && log_errors++ == 0)
        hb_log("warning: cannot write --reports %s: %s", cfg.reports, strerror(errno));
    mon_collect_add(st.col, &r, now_us / 1000000);
}

static void on_udp(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    static uint8_t buf[65536];
    /* a bounded batch, so a flood cannot starve the once-a-second merge */
    for (int i = 0; i < 4096; i++) {
        ssize_t n = recv(w->fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                hb_log("warning: udp recv: %s", strerror(errno));
            return;
        }
        int64_t now_us = hb_now_us();
        pthread_mutex_lock(&st.mu);
        if ((size_t)n > sizeof buf)
            mon_collect_bad(st.col); /* truncated: larger than any report */
        else
            on_datagram(buf, (size_t)n, now_us);
        pthread_mutex_unlock(&st.mu);
    }
}

static int udp_open(const char *addr, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    char why[256];
    if (hb_parse_hostport(addr, &sa, why, sizeof why) < 0) {
        snprintf(err, errlen, "--udp %s", why);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "--udp %s: socket: %s", addr, strerror(errno));
        return -1;
    }
    /* Every sender reports just after the second boundary: a burst of one
     * datagram per process.  A large receive buffer absorbs it; the kernel
     * caps it at net.core.rmem_max, which is fine. */
    int sz = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        snprintf(err, errlen, "--udp %s: bind: %s", addr, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- timers and signals ------------------------------------------------------------- */

static void on_second(struct ev_loop *loop, ev_periodic *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    pthread_mutex_lock(&st.mu);
    mon_collect_advance(st.col, hb_now_us() / 1000000);
    pthread_mutex_unlock(&st.mu);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    hb_log("%s: stopping", strsignal(w->signum));
    ev_break(loop, EVBREAK_ALL);
}

static void check_web_dir(const char *dir)
{
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/index.html", dir);
    if (stat(path, &sb) < 0) {
        hb_log("warning: --web %s has no index.html: the dashboard page is not served (/metrics and /api/series are)",
               dir);
        return;
    }
    snprintf(path, sizeof path, "%s/node_modules/uplot/dist/uPlot.iife.min.js", dir);
    if (stat(path, &sb) < 0)
        hb_log("warning: the chart library is missing (%s): run tools/dev/setup.sh, or 'npm ci' in %s", path, dir);
}

static char *describe_columns(void)
{
    static char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text,
                                "The --log file is tab-separated: a header line naming these columns, then one line\n"
                                "per merged second (rates are counts attributed to that second):\n");
    for (int i = 0; i < MON_NCOLS && n < sizeof text; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "  %-20s %s\n", mon_col_name[i], mon_col_help[i]);
    if (n < sizeof text)
        snprintf(text + n, sizeof text - n,
                 "\nExample (the ports tools/demo.sh uses):\n"
                 "  hb-monitor --udp 127.0.0.1:8081 --http 127.0.0.1:8080 --log run.tsv\n"
                 "  hb-server ... --monitor 127.0.0.1:8081;  hb-client ... --monitor 127.0.0.1:8081\n"
                 "  then open http://127.0.0.1:8080/  (Prometheus: http://127.0.0.1:8080/metrics)");
    return text;
}

int main(int argc, char **argv)
{
    hb_prog = "hb-monitor";
    hb_cli cli = {
        .synopsis = "hb-monitor [--udp ADDR:PORT] [--http ADDR:PORT] [--log FILE] [OPTIONS]",
        .description =
            "Collects the once-a-second UDP reports of hb-server and hb-client processes, merges them per\n"
            "second and per role (rates from the cumulative counters; late, out-of-order, duplicate and\n"
            "missing reports and process restarts handled), writes a TSV log, serves a live dashboard and\n"
            "Prometheus /metrics.  SIGINT/SIGTERM: merge what is pending, flush the log, print a summary.",
        .epilog = describe_columns(),
        .opts = opts,
    };
    int pos = hb_cli_parse(&cli, argc, argv);
    if (pos < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n%s: see '%s --help'\n", hb_prog, argv[pos], hb_prog, hb_prog);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    mon_config mc = {
        .settle = (int)cfg.settle,
        .max_gap = (int)cfg.max_gap,
        .max_future = (int)cfg.max_future,
        .evict = (int)cfg.evict,
        .max_sources = (int)cfg.max_instances,
    };
    st.col = mon_collect_new(&mc, on_row, NULL, err, sizeof err);
    if (!st.col) {
        fprintf(stderr, "%s: --settle/--max-future: %s\n", hb_prog, err);
        return 2;
    }
    if (mon_history_init(&st.hist, (size_t)cfg.history) < 0)
        hb_die("out of memory for --history %lld", (long long)cfg.history);
    st.start_time = hb_now_us() / 1000000;
    st.settle = (int)cfg.settle;
    st.web_dir = cfg.web;

    if (cfg.log && *cfg.log && mon_tsvlog_open(&tlog, cfg.log, cfg.append, err, sizeof err) < 0)
        hb_die("%s", err);
    if (cfg.reports && *cfg.reports && mon_reports_open(&rlog, cfg.reports, err, sizeof err) < 0)
        hb_die("%s", err);
    if ((udp_fd = udp_open(cfg.udp, err, sizeof err)) < 0)
        hb_die("%s", err);
    if (mon_http_start(&st, cfg.http, err, sizeof err) < 0)
        hb_die("%s", err);
    check_web_dir(cfg.web);
    hb_log("reports on udp %s; dashboard http://%s/ (Prometheus /metrics); log %s; settle %llds", cfg.udp, cfg.http,
           cfg.log && *cfg.log ? cfg.log : "(none)", (long long)cfg.settle);

    struct ev_loop *loop = EV_DEFAULT;
    ev_io udp_w;
    ev_periodic tick_w;
    ev_signal int_w, term_w;
    ev_io_init(&udp_w, on_udp, udp_fd, EV_READ);
    ev_io_start(loop, &udp_w);
    /* just after every second boundary: seconds become due on the second */
    ev_periodic_init(&tick_w, on_second, 0.2, 1.0, 0);
    ev_periodic_start(loop, &tick_w);
    ev_signal_init(&int_w, on_signal, SIGINT);
    ev_signal_start(loop, &int_w);
    ev_signal_init(&term_w, on_signal, SIGTERM);
    ev_signal_start(loop, &term_w);
    ev_run(loop, 0);

    /* No more reports will come: what is pending is as complete as it gets. */
    pthread_mutex_lock(&st.mu);
    mon_collect_flush(st.col);
    pthread_mutex_unlock(&st.mu);
    mon_http_stop();
    close(udp_fd);
    mon_tsvlog_close(&tlog);
    mon_tsvlog_close(&rlog);

    const mon_events *ev = mon_collect_events(st.col);
    hb_log("summary: %llu seconds merged%s%s; %llu datagrams: %llu accepted, %llu duplicate, %llu late, %llu future, "
           "%llu bad; %zu processes, %llu restarts, %llu reports filled",
           (unsigned long long)rows_out, cfg.log && *cfg.log ? " into " : "", cfg.log && *cfg.log ? cfg.log : "",
           (unsigned long long)ev->received, (unsigned long long)ev->accepted, (unsigned long long)ev->duplicate,
           (unsigned long long)ev->late, (unsigned long long)ev->future, (unsigned long long)ev->bad,
           mon_collect_nsources(st.col), (unsigned long long)ev->restarts, (unsigned long long)ev->filled);
    mon_collect_free(st.col);
    mon_history_free(&st.hist);
    return log_errors ? 1 : 0;
}
