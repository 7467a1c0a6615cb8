/* client.h -- hb-client, the simulated phones: settings and the state the
 * main thread shares with the worker threads.
 *
 * A client process plays users [uid_from, uid_to), one TCP connection each,
 * spread over worker threads (one libev loop and, here, one descriptor table
 * each).  Every worker decides from the clock alone which of its users shake
 * when (schedule.h), records wins in the process's ledger, and keeps one
 * latency histogram.  The main thread runs the 1 s tick (monitor report,
 * --progress, ledger flush), the HTTP control interface, the clock-offset
 * estimate, and the end of the run.
 *
 * Files: main.c settings, workers, tick, end of the run; client.c this
 * object's run identity and rate plan; worker.c a worker's loop and its tick
 * phases; conn.c one connection's I/O and frames; stats.c counters, clock
 * estimate and everything shown; schedule.c the pure schedule; ledger.c the
 * grant file; control.c the HTTP interface. */
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

#define CL_MAX_SERVERS 8 /* --server hosts */

typedef struct cl_config {
    char *server, *ports, *sources;
    int64_t uid_from, uid_to, users, qps, groups;
    int64_t threads, connect_rate, inflight;
    double duration, drain, connect_timeout;
    char *ledger, *secret_file;
    int64_t token_ttl; /* seconds each login's token is valid for (made afresh at every login) */
    double chat_rate;
    char *monitor, *instance, *stats_file;
    bool progress;
    int64_t backoff_base_ms, backoff_cap_ms, tick_ms;
    bool backoff_jitter; /* full jitter (default); off only to show the storm it prevents */
    char *clock;        /* "local" or "server" */
    int64_t clock_skew_us; /* tests: pretend the local clock is off by this much */
    char *control;      /* HTTP control address, NULL = off */
    bool echo;          /* raw echo mode (against tools/bench/echo-floor) */
    bool fastopen;      /* TCP Fast Open: the Login rides in the SYN (after a first connect got a cookie) */
    bool standby;       /* cluster: each user also holds a standby login on its runner-up (server/standby.h) */
    int64_t pin_workers; /* >= 0: worker i runs on allowed CPU (pin_workers + i) mod n; -1: unpinned */
    bool echo_login;    /* echo mode: a connection is up once its Login comes back (one round trip, as a real login) */
    bool shake;         /* send shakes (off: only connect, open, chat) */
    bool wait_connected; /* start shaking once all users are logged in */
    int64_t seed;
    /* Driven by a fleet agent (agent.c starts one such process per task):
     * shake only in schedule seconds [start_at, stop_at) (0 = unbounded),
     * with the task's rate history `plan` ("T:QPS,..."), commands read from
     * commands_fd (command.c), the run's latency histogram written raw to
     * hist_file at exit. */
    int64_t start_at, stop_at, commands_fd;
    char *plan, *hist_file;
    /* --agent: this process is the agent itself (agent.c) */
    char *agent, *redis_password_file, *agent_name, *agent_dir;
    int64_t agent_ttl_ms;
    int64_t agent_nice; /* --agent-nice: the agent's own, not its runs' */
} cl_config;

typedef struct cl_worker cl_worker;

typedef struct cl_client {
    cl_config cfg;
    struct sockaddr_in dst[CL_MAX_SERVERS * HB_MAX_PORTS]; /* --server host h, port p: dst[h * nports + p] */
    int ndst, nports;
    struct in_addr src[HB_MAX_ADDRS];
    int nsrc;
    uint8_t secret[HB_SECRET_MAX];
    size_t secret_len;
    cl_layout layout;

    /* The rate plan: `plan` holds every change main has applied, `changes`
     * those still waiting for their second.  Changed by the control thread
     * and by main's tick (mutex + version); workers copy both when the
     * version moves and apply each change at its second themselves. */
    pthread_mutex_t plan_mu;
    cl_plan plan;
    cl_changes changes;
    _Atomic uint64_t plan_version;
    _Atomic uint64_t target_qps; /* aggregate rate of main's plan, for the figures */

    _Atomic bool paused, stop_sending, stopping;
    /* The drain's end: set by main before it reads the last count of
     * requests in flight; a worker counts a new open first and then looks
     * at it (both seq_cst), so either main sees that open or the worker
     * sees `closing` and does not send it: nothing is left in flight. */
    _Atomic bool closing;
    bool server_clock;
    _Atomic int64_t offset_us;  /* estimated server clock - local clock */
    _Atomic int64_t offset_delay_us; /* round trip of the sample it came from, -1 = none yet */

    cl_worker **workers;
    int nworkers;
    cl_ledger ledger;
    hb_reporter reporter;
    uint64_t seed;   /* --seed, or from the clock: uid choices, back-off jitter */
    uint64_t run_id; /* never the same twice (getrandom): shake seqs start from it */
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

/* After the settings: seed, run id, layout, rate plan, clock estimate. */
void cl_client_init(cl_client *cl);

/* Queue a new aggregate rate from second `at` (schedule clock; a second
 * already begun means the next one).  Every client given the same (qps, at)
 * switches at the same second and stays in step.  Returns the second it
 * takes effect, or -1 when CL_CHANGES_MAX changes are already waiting. */
int64_t cl_set_qps(cl_client *cl, uint64_t qps, int64_t at);
/* Apply a rate history "T:QPS,T:QPS,..." (ascending seconds) at start-up:
 * changes already begun are built into the plan at their own seconds (so a
 * process that joins late is in step with those that saw them happen), the
 * others wait in the queue.  0, or -1 with a message. */
int cl_rate_history(cl_client *cl, const char *plan, char *err, size_t errlen);
/* Main's tick: apply the changes now due to main's plan. */
void cl_rate_tick(cl_client *cl);
/* Wake every worker to look at the plan, pause and clock again (worker.c):
 * a worker sleeps until its next due shake, so whoever changes what is due
 * calls this.  Any thread; workers not made yet are skipped. */
void cl_client_nudge(cl_client *cl);
/* A consistent copy of the plan and the waiting changes (either may be
 * NULL); returns the plan version it belongs to. */
uint64_t cl_rate_copy(cl_client *cl, cl_plan *plan, cl_changes *changes);

#endif
