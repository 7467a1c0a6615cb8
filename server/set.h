/* set.h -- a SET: one thread, one libev loop, one descriptor table, the
 * connections it accepted, its packet queue and its inbox.
 *
 * Nothing in a SET is touched by another thread except through the three
 * doors named here: the packet queue (producer pushes), the inbox (anyone
 * pushes, then ev_async_send), and the stats counters (main reads). */
#ifndef SV_SET_H
#define SV_SET_H

#include <ev.h>
#include <pthread.h>
#include "frame.h"
#include "inbox.h"
#include "pool.h"
#include "pqueue.h"
#include "rehome.h"
#include "standby.h"
#include "server.h"
#include "stats.h"

/* A SET with nothing timed pending ticks once a second, not ten times:
 * 64 idle SETs ticking at 100 ms cost the box 640 wake-ups and ~11 ms of
 * CPU a second (README, "The producer's tick"). */
#define SV_TICK_BUSY 0.1
#define SV_TICK_IDLE 1.0

/* Bytes of a partial frame kept inside the connection; longer partials (a
 * login with its token split by TCP, a long chat) borrow a pool chunk. */
#define SV_CONN_INLINE 22 /* what is left of 112 bytes */

enum sv_conn_state {
    SV_CONN_FREE = 0, /* slot on the free list */
    SV_CONN_NEW,      /* accepted, waiting for Login (login timeout runs) */
    SV_CONN_ACTIVE,   /* logged in as uid */
    SV_CONN_CLOSING,  /* error sent, write side shut; draining until EOF or linger timeout */
    SV_CONN_STANDBY,  /* cluster: held as uid's standby, promoted to ACTIVE when this node owns uid (standby.c) */
};

/* The timeout lists a connection can be on (at most one at a time). */
enum sv_tlist_id {
    SV_TL_NONE = 0,
    SV_TL_LOGIN = 1,  /* NEW: must log in within --login-timeout */
    SV_TL_STALL = 2,  /* a frame started, or output queued, must finish within --frame-timeout */
    SV_TL_LINGER = 3, /* CLOSING: the peer gets --linger to read our error and close */
    SV_TL_COUNT
};

/* Per-connection state: fixed size, no pointers to owned memory, 112 bytes
 * (checked at compile time below).
 * Connections live in a per-SET array and are named by slot index; the
 * timeout list links are slot indices too. */
typedef struct sv_conn {
    ev_io io;          /* io.fd is the socket */
    uint32_t uid;
    uint32_t gen;      /* bumped each time the slot is reused: spots stale references */
    uint32_t prev, next; /* timeout list links, 0 = none */
    uint32_t since_ms; /* when it entered its timeout list (SET clock) */
    uint32_t addr;     /* peer IPv4, network order */
    uint32_t spill;    /* pool chunk holding the partial frame, 0 = in[] */
    uint32_t out;      /* pool chunk holding unsent output, 0 = none */
    uint16_t outlen, outoff;
    uint16_t inlen;    /* bytes of the partial frame */
    uint8_t state;
    uint8_t tl;        /* enum sv_tlist_id */
    uint8_t ndeferred; /* repeat replies of this connection waiting for the journal (<= SV_DEFER_PER_CONN) */
    uint8_t nwaiting;  /* all its replies waiting for the journal: no Redirect ahead of them (rehome.c) */
    uint8_t in[SV_CONN_INLINE];
} sv_conn;
_Static_assert(sizeof(sv_conn) == 112, "sv_conn grew: memory per connection is a measured figure");

/* One timeout list per kind of deadline ("Be smart about timeouts"): every
 * member has the same timeout, so appending at the tail keeps the list
 * sorted and one timer per loop expires the head. */
typedef struct sv_tlist {
    uint32_t head, tail;
    uint32_t timeout_ms;
    uint32_t len;
} sv_tlist;

/* A reply that may only leave after the journal has the grant on disk.
 * The largest such frame, a ShakeReply with every field at its widest
 * (10-byte varints for the id and the time), is 39 bytes on the wire;
 * defer() checks the length anyway. */
#define SV_DEFERRED_FRAME 46
/* Replies to new grants are bounded by the packets there are; but retried
 * shakes and repeated opens reveal an existing grant, are not rate-limited,
 * and an honest client sends one or two of them after a reconnect: without
 * a bound one client could grow the queue ~9x faster than it sends while
 * the disk is slow. */
#define SV_DEFER_PER_CONN 8
typedef struct sv_deferred {
    uint64_t jseq;
    uint32_t slot, gen;
    uint8_t len;
    bool shake;  /* counts as a shake reply when sent */
    bool repeat; /* answers a retried shake or a repeated open: counted in sv_conn.ndeferred */
                 /* every entry counts in sv_conn.nwaiting */
    uint8_t frame[SV_DEFERRED_FRAME];
} sv_deferred;

/* An open found in flight: the same share being opened from another
 * connection at that moment (registry.h: rare, a user on two sessions at
 * once).  Kept per SET and asked again on later loop turns, never waited
 * for; a full list closes the connection (the client opens again after
 * reconnecting). */
#define SV_REOPEN_MAX 16
typedef struct sv_reopen {
    uint64_t packet_id;
    uint32_t slot, gen, uid;
} sv_reopen;

struct sv_set {
    int id;
    sv_server *srv;
    struct ev_loop *loop;
    ev_async wake;   /* inbox, journal commits, stop */
    ev_timer tick;   /* timeout lists, gauges: every SV_TICK_BUSY while any
                      * deadline or sweep is pending, else every SV_TICK_IDLE */
    ev_prepare collect; /* --io-collect-us: before each poll, whether to wait first */
    uint32_t turn_events; /* connection I/O events handled in this loop turn */
    int nl;
    int lfd[HB_MAX_PORTS];
    ev_io lio[HB_MAX_PORTS];
    int spare_fd;    /* for accept-and-close at EMFILE */
    uint8_t early_misses; /* conn.c early_read: accepted connections in a row with nothing to read yet */
    pthread_t th;
    bool unshared;

    sv_pqueue q;
    sv_inbox inbox;

    sv_conn *conns;  /* [0] unused; 1..cap */
    uint32_t cap, free_head, hwm;
    sv_tlist tl[SV_TL_COUNT];
    sv_pool pool;
    int64_t t0_mono; /* SET clock origin */

    sv_rehome rehome; /* rehome.c */
    sv_standby standby; /* standby.c */
    sv_packet back[2]; /* packets a grant could not take after all (see on_shake) */
    int nback;
    sv_deferred *dq; /* FIFO of deferred replies */
    size_t dq_head, dq_len, dq_cap;
    sv_reopen reopen[SV_REOPEN_MAX]; /* opens asked again on a later turn */
    int nreopen;
    ev_timer reopen_timer; /* runs while reopen[] is not empty: 1 ms, doubling to 64 ms */
    double reopen_wait;

    /* Hot upgrade (handover.c): main posts a command and waits for its
     * state; a frozen SET reads nothing and accepts nothing. */
    _Atomic int ctl, ctl_state;
    bool frozen;
    int up_lfd;      /* new process: the abstract socket the old SET connects to */

    hb_arena arena;
    uint64_t rng;
    /* Replies for the connection being served are gathered here and written
     * with one write() when its input has been handled. */
    sv_conn *txc;
    size_t txlen;
    alignas(64) sv_set_stats st;
    uint8_t arena_mem[4096];
    uint8_t tx[4096];
    uint8_t rbuf[16384 + HB_FRAME_WIRE_MAX];
};

/* set.c */
int sv_set_create(sv_server *s, int id, char *err, size_t errlen);
int sv_set_start(sv_set *set, char *err, size_t errlen);
void sv_set_stop(sv_set *set); /* from main: wake, and join */
void sv_set_destroy(sv_set *set);
uint32_t sv_set_now_ms(sv_set *set);
/* A listening socket joins this SET's accept loop (watched unless frozen). */
void sv_set_add_listener(sv_set *set, int fd);
/* Keep c's open of packet_id for a later loop turn; false if the list is full. */
bool sv_set_open_later(sv_set *set, sv_conn *c, uint64_t packet_id);

/* conn.c */
sv_conn *sv_conn_accepted(sv_set *set, int fd, uint32_t addr);
void sv_conn_io_cb(struct ev_loop *loop, ev_io *w, int revents);
/* Queue a packed frame for c (gathered into one write when c is being
 * served, written at once otherwise). */
void sv_conn_send(sv_set *set, sv_conn *c, const uint8_t *frame, size_t len);
void sv_conn_send_frame(sv_set *set, sv_conn *c, const Hb__Frame *f);
/* Send an Error frame, shut the write side and linger until the peer closes. */
void sv_conn_fail(sv_set *set, sv_conn *c, Hb__ErrorCode code, const char *detail);
/* The same without the Error frame: after what was queued, shut the write
 * side and linger (a Redirect is the last frame, rehome.c). */
void sv_conn_shut(sv_set *set, sv_conn *c);
void sv_conn_close(sv_set *set, sv_conn *c);
void sv_conn_flush_tx(sv_set *set);
void sv_tlist_expire(sv_set *set);
/* Something timed is pending (a deadline, a sweep, a reply): tick fast. */
void sv_set_tick_busy(sv_set *set);
static inline uint32_t sv_conn_slot(sv_set *set, sv_conn *c) { return (uint32_t)(c - set->conns); }

/* handover.c: a SET's part of a hot upgrade (run by upgrade.c) */
enum sv_ctl {
    SV_CTL_FREEZE = 1, /* old: stop reading and accepting (replies still leave) */
    SV_CTL_SEND,       /* old: hand everything to the new SET of our number */
    SV_CTL_COMMIT,     /* old: let go (close our copies) and stop */
    SV_CTL_THAW,       /* old: the takeover failed: read again */
    SV_CTL_START,      /* new: read what was adopted */
};
enum sv_ctl_state { SV_CTL_IDLE = 0, SV_CTL_BUSY, SV_CTL_OK, SV_CTL_FAILED };
/* main: post cmd to every SET, then wait until all are done (or timeout_ms);
 * true if every SET says OK. */
bool sv_set_ctl_all(sv_server *s, int cmd, int timeout_ms);
/* The SET thread runs a posted command (from its wake-up). */
void sv_handover_ctl(sv_set *set, int cmd);
/* New process, SET thread, after unsharing: listen for the old SET, then
 * adopt what it sends.  0, or -1 with err. */
int sv_handover_listen(sv_set *set, char *err, size_t errlen);
int sv_handover_receive(sv_set *set, char *err, size_t errlen);
/* conn.c: take over a connection from the old process into its own slot. */
struct Hb__UpgradeConn;
int sv_conn_adopt(sv_set *set, int fd, const struct Hb__UpgradeConn *u);
/* conn.c: (re)start the watchers of every connection (after a freeze). */
void sv_conn_watch_all(sv_set *set);

/* handlers.c */
/* Handle one frame body from c; returns false if c was closed. */
bool sv_handle_frame(sv_set *set, sv_conn *c, const uint8_t *body, size_t len);
/* A routed message reached this SET. */
void sv_handle_msg(sv_set *set, sv_msg *m);
/* Send the deferred replies whose grants are now on disk. */
void sv_flush_deferred(sv_set *set);
/* c (NEW or STANDBY) becomes uid's session on this node: the directory
 * points at it, an older session is replaced, LoginOk goes out (with the
 * member list unless members_tag is current) and parked messages follow. */
void sv_login_accept(sv_set *set, sv_conn *c, uint32_t uid, uint64_t members_tag);
/* LoginOk for c's uid (standby: LoginOk{standby}, standby.c), with the
 * member list unless members_tag is current. */
void sv_send_login_ok(sv_set *set, sv_conn *c, uint64_t members_tag, bool standby);
/* Ask the kept opens again (set.c's timer); `last`: there is no later turn
 * (a hot upgrade hands the connections over), close those still in flight. */
void sv_retry_opens(sv_set *set, bool last);

#endif
