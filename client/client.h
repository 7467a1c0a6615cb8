/* client.h -- hb-client, the simulated phones: settings and the state the
 * main thread shares with the worker threads.
 *
 * A client process plays users [uid_from, uid_to), one TCP connection each,
 * spread over worker threads (one libev loop and, here, one descriptor table
 * each).  Every worker decides from the clock alone which of its users shake
 * when (schedule.h), records wins in the process's ledger, and keeps one
 * latency histogram.  The main thread runs the 1 s tick (monitor report,
 * --progress, ledger flush), the HTTP control interface, the clock-offset
 * estimate, and the end of the run. */
#ifndef CL_CLIENT_H
#define CL_CLIENT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "auth.h"
#include "hist.h"
#include "ledger.h"
#include "net.h"
#include "report.h"
#include "schedule.h"

typedef struct cl_config {
    char *server, *ports, *sources;
    int64_t uid_from, uid_to, users, qps, groups;
    int64_t threads, connect_rate, inflight;
    double duration, drain, connect_timeout;
    char *ledger, *secret_file;
    double chat_rate;
    char *monitor, *instance, *stats_file;
    bool progress;
    int64_t backoff_base_ms, backoff_cap_ms, tick_ms;
    bool backoff_jitter; /* full jitter (default); off only to show the storm it prevents */
    char *clock;        /* "local" or "server" */
    int64_t clock_skew_us; /* tests: pretend the local clock is off by this much */
    char *control;      /* HTTP control address, NULL = off */
    bool echo;          /* raw echo mode (against tools/bench/echo-floor) */
    bool shake;         /* send shakes (off: only connect, open, chat) */
    bool wait_connected; /* start shaking once all users are logged in */
    int64_t seed;
} cl_config;

typedef struct cl_worker cl_worker;

typedef struct cl_client {
    cl_config cfg;
    struct sockaddr_in dst[HB_MAX_PORTS];
    int ndst;
    struct in_addr src[HB_MAX_ADDRS];
    int nsrc;
    uint8_t secret[HB_SECRET_MAX];
    size_t secret_len;
    cl_layout layout;

    /* The rate plan.  Changed by the control interface (mutex + version);
     * workers copy it when the version moves. */
    pthread_mutex_t plan_mu;
    cl_plan plan;
    _Atomic uint64_t plan_version;
    int64_t pending_at;             /* a change of rate waiting for its second (0 = none) */
    uint64_t pending_qps;
    _Atomic uint64_t target_qps;

    _Atomic bool paused, stop_sending, stopping;
    bool server_clock;
    _Atomic int64_t offset_us;  /* estimated server clock - local clock */
    _Atomic int64_t offset_delay_us; /* round trip of the sample it came from, -1 = none yet */

    cl_worker **workers;
    int nworkers;
    cl_ledger ledger;
    hb_reporter reporter;
    uint64_t seed;
    int64_t start_us;
} cl_client;

/* The local clock (with the test skew applied). */
static inline int64_t cl_now(const cl_client *cl)
{
    return hb_now_us() + cl->cfg.clock_skew_us;
}

/* The clock the schedule runs on: local, or local + estimated offset. */
static inline int64_t cl_sched_now(const cl_client *cl)
{
    return cl_now(cl) + (cl->server_clock ? atomic_load_explicit(&cl->offset_us, memory_order_relaxed) : 0);
}

/* Apply a new aggregate rate from second `at` (schedule clock; a second
 * already begun means the next one).  Every client given the same (qps, at)
 * switches at the same second and stays in step.  Returns the second it
 * takes effect. */
int64_t cl_set_qps(cl_client *cl, uint64_t qps, int64_t at);

/* JSON of the current figures (GET /stats). */
size_t cl_stats_json(cl_client *cl, char *buf, size_t cap);

#endif
