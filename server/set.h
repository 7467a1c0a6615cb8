/* set.h -- a SET: one thread, one libev loop, one descriptor table, the
 * connections it accepted, its packet queue and its inbox.
 *
 * Nothing in a SET is touched by another thread except through the three
 * doors named here: the packet queue (producer pushes), the inbox (anyone
 * pushes, then ev_async_send), and the stats counters (main reads). */
#ifndef HB_SET_H
#define HB_SET_H

#include <ev.h>
#include <pthread.h>
#include "frame.h"
#include "inbox.h"
#include "pool.h"
#include "pqueue.h"
#include "server.h"
#include "stats.h"

/* Bytes of a partial frame kept inside the connection; longer partials (a
 * login with its token split by TCP, a long chat) borrow a pool chunk. */
#define HB_CONN_INLINE 24

enum hb_conn_state {
    HB_CONN_FREE = 0, /* slot on the free list */
    HB_CONN_NEW,      /* accepted, waiting for Login (login timeout runs) */
    HB_CONN_ACTIVE,   /* logged in as uid */
    HB_CONN_CLOSING,  /* error sent, write side shut; draining until EOF or linger timeout */
};

/* The timeout lists a connection can be on (at most one at a time). */
enum hb_tlist_id {
    HB_TL_NONE = 0,
    HB_TL_LOGIN = 1,  /* NEW: must log in within --login-timeout */
    HB_TL_STALL = 2,  /* a frame started, or output queued, must finish within --frame-timeout */
    HB_TL_LINGER = 3, /* CLOSING: the peer gets --linger to read our error and close */
    HB_TL_COUNT
};

/* Per-connection state: fixed size, no pointers to owned memory, 112 bytes
 * (checked at compile time below).
 * Connections live in a per-SET array and are named by slot index; the
 * timeout list links are slot indices too. */
typedef struct hb_conn {
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
    uint8_t tl;        /* enum hb_tlist_id */
    uint8_t in[HB_CONN_INLINE];
} hb_conn;
_Static_assert(sizeof(hb_conn) == 112, "hb_conn grew: memory per connection is a measured figure");

/* One timeout list per kind of deadline ("Be smart about timeouts"): every
 * member has the same timeout, so appending at the tail keeps the list
 * sorted and one timer per loop expires the head. */
typedef struct hb_tlist {
    uint32_t head, tail;
    uint32_t timeout_ms;
    uint32_t len;
} hb_tlist;

/* A reply that may only leave after the journal has the grant on disk.
 * The largest such frame, a ShakeReply with every field at its widest
 * (10-byte varints for the id and the time), is 39 bytes on the wire;
 * defer() checks the length anyway. */
#define HB_DEFERRED_FRAME 46
typedef struct hb_deferred {
    uint64_t jseq;
    uint32_t slot, gen;
    uint8_t len;
    bool shake; /* counts as a shake reply when sent */
    uint8_t frame[HB_DEFERRED_FRAME];
} hb_deferred;

struct hb_set {
    int id;
    hb_server *srv;
    struct ev_loop *loop;
    ev_async wake;   /* inbox, journal commits, stop */
    ev_timer tick;   /* 100 ms: timeout lists, gauges */
    int nl;
    int lfd[HB_MAX_PORTS];
    ev_io lio[HB_MAX_PORTS];
    int spare_fd;    /* for accept-and-close at EMFILE */
    pthread_t th;
    bool unshared;

    hb_pqueue q;
    hb_inbox inbox;

    hb_conn *conns;  /* [0] unused; 1..cap */
    uint32_t cap, free_head, hwm;
    hb_tlist tl[HB_TL_COUNT];
    hb_pool pool;
    int64_t t0_mono; /* SET clock origin */

    hb_packet back[2]; /* packets a grant could not take after all (see on_shake) */
    int nback;
    hb_deferred *dq; /* FIFO of deferred replies */
    size_t dq_head, dq_len, dq_cap;

    hb_arena arena;
    uint64_t rng;
    /* Replies for the connection being served are gathered here and written
     * with one write() when its input has been handled. */
    hb_conn *txc;
    size_t txlen;
    alignas(64) hb_set_stats st;
    uint8_t arena_mem[4096];
    uint8_t tx[4096];
    uint8_t rbuf[16384 + HB_FRAME_WIRE_MAX];
};

/* set.c */
int hb_set_create(hb_server *s, int id, char *err, size_t errlen);
int hb_set_start(hb_set *set, char *err, size_t errlen);
void hb_set_stop(hb_set *set); /* from main: wake, and join */
void hb_set_destroy(hb_set *set);
uint32_t hb_set_now_ms(hb_set *set);

/* conn.c */
hb_conn *hb_conn_accepted(hb_set *set, int fd, uint32_t addr);
void hb_conn_io_cb(struct ev_loop *loop, ev_io *w, int revents);
/* Queue a packed frame for c (gathered into one write when c is being
 * served, written at once otherwise). */
void hb_conn_send(hb_set *set, hb_conn *c, const uint8_t *frame, size_t len);
void hb_conn_send_frame(hb_set *set, hb_conn *c, const Hb__Frame *f);
/* Send an Error frame, shut the write side and linger until the peer closes. */
void hb_conn_fail(hb_set *set, hb_conn *c, Hb__ErrorCode code, const char *detail);
void hb_conn_close(hb_set *set, hb_conn *c);
void hb_conn_flush_tx(hb_set *set);
void hb_tlist_expire(hb_set *set);
static inline uint32_t hb_conn_slot(hb_set *set, hb_conn *c) { return (uint32_t)(c - set->conns); }

/* handlers.c */
/* Handle one frame body from c; returns false if c was closed. */
bool hb_handle_frame(hb_set *set, hb_conn *c, const uint8_t *body, size_t len);
/* A routed message reached this SET. */
void hb_handle_msg(hb_set *set, hb_msg *m);
/* Send the deferred replies whose grants are now on disk. */
void hb_flush_deferred(hb_set *set);

#endif
