/* server.h -- the hongbao server: configuration and the objects every server
 * module shares.
 *
 * Threads (see README "Architecture"):
 *   main       parses settings, replays the journal, builds every SET's loop
 *              and wake-up eventfd, starts the threads, then runs its own loop
 *              for signals and the once-a-second stats/report timer.
 *   SET x N    one libev loop each, over the connections it accepted on its
 *              own SO_REUSEPORT listeners, in its own descriptor table
 *              (unshare(CLONE_FILES)), with its own packet queue and inbox.
 *   producer   creates packets at a fixed rate and deals them round-robin
 *              into the SETs' queues; creates send-flow packets and routes
 *              their notices.
 *   journal    group-commits grant records (write + fdatasync per batch) and
 *              wakes the SETs whose replies waited for that commit.
 *
 * Names: the server's own code is sv_* (sv_set_*, sv_conn_*, sv_dir_*, ...);
 * hb_* is the shared code of lib/ and proto/, cl_* the client's. */
#ifndef SV_SERVER_H
#define SV_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <netinet/in.h>
#include "auth.h"
#include "cluster.h"
#include "directory.h"
#include "journal.h"
#include "net.h"
#include "producer.h"
#include "registry.h"
#include "report.h"
#include "route.h"
#include "util.h"

typedef struct sv_set sv_set;

typedef struct sv_config {
    char *listen;        /* address to listen on */
    char *ports;         /* "7000" or "7000-7003" */
    int64_t sets;
    int64_t max_conns;   /* per SET; 0 = what the descriptor table allows */
    int64_t users;       /* uids are 0..users-1 */
    bool private_fds;    /* unshare(CLONE_FILES) in every SET thread */
    int64_t backlog;
    int64_t sndbuf;
    int64_t fastopen; /* TCP Fast Open queue per listener (0 = off) */
    int64_t io_collect_us;      /* SET loops: libev io collect interval (0 = poll at once) */
    bool pin_sets;              /* SET k runs on allowed CPU k mod n (hb_thread_pin) */
    int64_t urgent_nice;        /* nice of the producer and journal writer threads (0 = as the process) */
    int64_t urgent_rt;          /* their SCHED_FIFO priority (0 = none: urgent_nice only) */

    /* shake flow */
    double rate;
    int64_t total;
    int64_t amount_min, amount_max;
    double start_delay;  /* seconds before the first packet; shakes get NOT_YET before */
    int64_t queue;       /* per-SET packet queue capacity */
    int64_t deal_ms;     /* the producer's tick: packets due within it are made at its start */

    /* send flow */
    double send_rate;
    int64_t send_total;
    int64_t send_split;
    int64_t send_amount_min, send_amount_max;
    bool send_concurrent; /* run with the shake flow instead of after it */

    /* routing */
    int64_t inbox;
    int64_t pending_max, pending_per_uid;
    double renotify;     /* tell unopened recipients again after SEC (doubling, capped); 0 = never */

    /* journal */
    char *journal;
    bool fsync;
    bool journal_cut;    /* cut a journal damaged before its end (normally refused) */
    int64_t journal_delay_us; /* wait before each journal write (bigger batches; a slow disk in tests) */

    /* hardening */
    char *secret_file;
    bool insecure; /* allow a non-loopback --listen without --secret (issue 13.7) */
    double login_timeout, frame_timeout, linger;
    int64_t shake_limit; /* shakes per uid per second, 0 = unlimited */
    int64_t chat_limit;  /* chat messages per uid per second, 0 = unlimited */
    int64_t addr_limit;  /* connections per source address, 0 = unlimited */

    /* cluster (cluster.h, placement.h, rehome.c); cluster = NULL: a lone server */
    char *cluster, *node, *advertise, *redis_password_file, *cluster_pin;
    double weight;
    int64_t node_index, nodes; /* money share and id band: node_index of nodes */
    int64_t cluster_ttl_ms;
    int64_t live_port;         /* the liveness port (liveness.h): 0 = the kernel's choice, -1 = none */
    int64_t start_pause_ms;    /* testing: a slow start-up (server.c) */
    int64_t flap_hold_ms;      /* a flapping member's standbys wait this long before promotion (cluster.h) */
    int64_t rehome_rate;       /* sessions per second the cluster redirects into one node after a change (rehome.c) */
    int64_t cluster_total, cluster_send_total; /* the cluster's totals (total, send_total: this node's share) */

    /* reporting */
    char *monitor, *instance, *stats_file;
    int64_t stats_every_ms; /* stats file period (monitor reports stay once a second) */
    bool progress;
    int64_t seed;

    /* hot upgrade (upgrade.c) */
    char *upgrade_socket; /* listen here for a new process to take over */
    char *takeover;       /* take over from the server listening here */
} sv_config;

typedef struct sv_server {
    sv_config cfg;
    int nports;
    int ports[HB_MAX_PORTS];
    struct in_addr listen_addr;
    uint8_t secret[HB_SECRET_MAX];
    size_t secret_len; /* 0: logins are not authenticated */

    sv_set **sets;
    int nsets;
    sv_dir dir;
    sv_registry reg;
    sv_journal journal;
    sv_producer prod;
    hb_reporter reporter;
    struct sv_addr_limit *addrs;
    struct sv_cluster *cluster; /* NULL: not in a cluster */
    struct sv_xmsg *xmsg;       /* messages to and from other nodes (xmsg.h); with cluster */
    unsigned band;              /* packet id band (proto/money.h): node_index + 1 in a cluster, else 0 */

    pthread_t dealer_th;        /* the producer thread (dealer.c) */
    bool dealer_running;
    bool journal_first_cycle;   /* the producer journals cycle 1 as it starts */
    bool producer_started;      /* its schedule began (at producer_start_mono) */
    int64_t producer_start_mono; /* when the event starts (--start-delay after start-up) */
    _Atomic bool dealer_pause;  /* hot upgrade: the producer thread stops between steps */
    _Atomic uint64_t route_drops; /* route.c */
    uint64_t renotify_from;     /* renotify.c (producer thread): packets before it are fully opened */
    int64_t renotify_next_us;   /* ... its next sweep (monotonic) */
    hb_counter renotices;       /* ... notices sent again */

    pid_t up_peer;              /* hot upgrade: the other process's pid */
    int up_lfd;                 /* hot upgrade: the --upgrade-socket listener (main), -1 = none */
    bool handed_over;           /* old process: everything went to the new one */
    _Atomic bool stopping;
    _Atomic bool event_started; /* the first shake packet was dealt */
    _Atomic int cycles_requested; /* producer cycles asked for (SIGUSR1 adds one) */
    _Atomic int cycles_started;
    int64_t start_us;           /* wall clock at start */
    uint64_t rng_seed;
    /* what the journal held at start-up (the counters below restart at 0) */
    uint64_t replayed_wins, replayed_win_amount, replayed_shares, replayed_share_amount;
} sv_server;

/* server.c */
void sv_server_defaults(sv_config *c);                       /* every setting's default */
int sv_server_init(sv_server *s, char *err, size_t errlen);  /* validate settings, allocate */
int sv_server_start(sv_server *s, char *err, size_t errlen); /* replay, SETs, journal, producer */
/* Instead of sv_server_start: take over a running server's connections,
 * listeners and journal (--takeover; upgrade.h). */
int sv_server_takeover(sv_server *s, char *err, size_t errlen);
void sv_server_stop(sv_server *s);
void sv_server_free(sv_server *s);

#endif
