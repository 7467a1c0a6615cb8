/* worker.h -- one client worker thread: its connections, its share of the
 * schedule, its counters and its latency histogram.
 *
 * Everything in cl_worker is the worker thread's alone, except `st` (read by
 * main and control), `hist_out`/`out_*` (handed to main under out_mu) and
 * `ready`.  A connection's I/O is conn.c; the loop and its tick, worker.c. */
#ifndef CL_WORKER_H
#define CL_WORKER_H

#include <ev.h>
#include <pthread.h>
#include "client.h"
#include "frame.h"
#include "members.h"
#include "stats.h"
#include "util.h"

/* CL_STANDBY: a standby connection (CL_F_STANDBY) logged in as such. */
enum cl_state { CL_IDLE = 0, CL_CONNECTING, CL_LOGIN, CL_ACTIVE, CL_STANDBY };

#define CL_INLINE 24

typedef struct cl_conn {
    ev_io io;
    uint32_t uid;
    uint32_t seq;    /* outstanding shake, 0 = none */
    int64_t due_us;  /* when that shake was scheduled (local clock): latency starts here */
    int64_t sent_us; /* when the last request/connect left (local clock) */
    uint8_t *spill;  /* partial frame longer than in[] */
    uint8_t *out;    /* unsent output (rare) */
    uint32_t outlen;
    uint16_t inlen;
    uint8_t state, attempt;
    uint8_t in[CL_INLINE];
    uint32_t try_id; /* numbers this connection's connect attempts */
    /* Cluster: where the last Redirect sent this uid (0 = the configured
     * --server/--port), and how many redirects in a row since a LoginOk. */
    uint32_t redir_ip;   /* network order */
    uint16_t redir_port; /* host order */
    uint8_t redirects;
    /* The node (LoginOk.node) of this session, and the one the outstanding
     * shake went to: a shake is retried only where it was sent
     * (CL_NODE_ANY: anywhere, that node dropped it unread). */
    uint8_t node, seq_node;
    /* Cluster: the worker's member slot this connection is on
     * (CL_MEMBER_NONE: not a known member), and CL_F_* flags. */
    uint8_t member, flags;
} cl_conn;

#define CL_NODE_ANY 255 /* seq_node: no node took the shake; LoginOk.node is at most 254 here */

#define CL_F_TOLD 1    /* the node sent Error or Redirect here: its closing is no sign of death */
#define CL_F_PARKED 2  /* waiting in the back-off heap while its owner is suspected */
#define CL_F_PROBE_SUSPECT 4 /* this reconnect tries the suspected owner itself (is it alive?) */
#define CL_F_STANDBY 8 /* conns[n + i]: user i's standby connection (--standby), for good */
#define CL_F_RETRIED 16 /* the outstanding shake may have been taken before it was last sent (a retry to the node it went to) */
#define CL_F_BROKEN 32 /* a send failed: read what the node sent first (conn.c write_failed), then it is gone */

/* --standby: a user whose new owner holds its standby waits for the
 * promotion instead of reconnecting, CL_STANDBY_WAIT_US at a time, at most
 * CL_STANDBY_WAITS times (then it logs in as before); a standby promoted
 * or lost is replaced CL_STANDBY_QUIET_US later plus a random delay up to
 * CL_STANDBY_REFILL_US (no storm, and none while the recovery needs the
 * box: spread from 0, about 8% of them connected in a kill's first 10 s). */
#define CL_STANDBY_WAIT_US 1000000LL
#define CL_STANDBY_WAITS 8
#define CL_STANDBY_QUIET_US 15000000LL
#define CL_STANDBY_REFILL_US 120000000LL
/* A session replaced by a promotion is closed this much later (conn.c promote). */
#define CL_GRAVE_US 15000000LL

/* Redirects followed in a row for one uid before backing off (a loop
 * between nodes that disagree costs a back-off, not a storm). */
#define CL_REDIRECTS_MAX 3

typedef struct cl_open {
    uint64_t packet_id;
    uint32_t conn;
    uint32_t sent; /* already sent on the current connection */
} cl_open;

struct cl_worker {
    int id;
    cl_client *cl;
    struct ev_loop *loop;
    ev_async wake;
    ev_timer tick;   /* one-shot, armed for the next tick needed (arm) */
    ev_prepare arm;  /* before each sleep: arm tick */
    int64_t tick_at; /* monotonic us tick is armed for, INT64_MAX = none */
    int64_t tick_planned; /* when the last tick was due (monotonic us): the next is --tick later */
    pthread_t th;
    bool unshared;
    _Atomic bool ready;

    cl_conn *conns;  /* [0, n): the users' sessions; [n, nc): their standbys (--standby) */
    uint32_t n, nc;
    bool standby_queued; /* --standby: the standbys were queued to connect (after the ramp) */
    cl_conn *moved;  /* conn.c: the frame just handled moved its connection here (a promotion) */
    struct cl_grave {
        int64_t due; /* monotonic us */
        int fd;
    } *grave;        /* sockets to close later (--standby; a ring of n, in due order) */
    size_t grave_head, grave_len;
    uint32_t uid0;
    cl_mine mine;
    cl_plan plan;        /* this worker's copy: every change applied so far */
    cl_changes changes;  /* changes still to apply, each at its second */
    uint64_t plan_version;
    bool sending;     /* shaking in the previous tick */
    bool ramped;      /* all users were logged in once (or the wait ran out) */
    int64_t start_mono;

    uint32_t *cq; /* connect queue (ring of connection numbers) */
    size_t cq_head, cq_len;
    struct cl_due {
        int64_t due;
        uint32_t conn;
    } *heap; /* reconnect back-off (conn.c), a min-heap on due */
    size_t hlen;
    struct cl_pend {
        int64_t since;
        uint32_t conn;
        uint32_t try_id; /* the attempt it times; a later attempt has its own entry */
    } *pend; /* connects in flight, oldest first */
    size_t pend_head, pend_len;
    double tokens;
    int64_t last_tick;
    double chat_tokens;

    cl_members mem;      /* cluster: the member list and suspicions (members.h) */

    cl_open *opens;
    size_t nopens, capopens;
    cl_keyset won, shared;
    uint32_t next_seq;
    uint64_t rng;

    hb_hist hist;    /* this second's latencies (worker only) */
    pthread_mutex_t out_mu;
    hb_hist hist_out;/* handed to main once a second */
    int64_t best_delay, best_offset; /* best clock sample this second (worker only) */
    int64_t out_delay, out_offset;   /* best sample handed to main (under out_mu) */
    int64_t last_second;

    hb_arena arena;
    /* What a node sends is bounded by HB_FRAME_DOWN_MAX (proto/frame.h): a
     * kept tail of up to HB_FRAME_DOWN_WIRE_MAX - 1 bytes plus a 16 KiB read;
     * any frame within the bound unpacks in the arena. */
    uint8_t arena_mem[HB_FRAME_DOWN_ARENA];
    cl_stats st;
    uint8_t rbuf[16384 + HB_FRAME_DOWN_WIRE_MAX];
};

cl_worker *cl_worker_new(cl_client *cl, int id, uint32_t uid0, uint32_t n, char *err, size_t errlen);
int cl_worker_start(cl_worker *w, char *err, size_t errlen);
void cl_worker_stop(cl_worker *w);
/* After cl_worker_stop: write what is still unanswered to the ledger (Q and
 * O lines), so the ledger check can tell a reply the client never read from
 * a lost grant. */
void cl_worker_record_unanswered(cl_worker *w);
void cl_worker_free(cl_worker *w);
/* Main thread, once a second: take the histogram and clock sample. */
void cl_worker_collect(cl_worker *w, hb_hist *into, int64_t *best_delay, int64_t *best_offset);

#endif
