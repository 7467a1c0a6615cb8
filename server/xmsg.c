/* xmsg.c -- messages between nodes through Redis Streams (see xmsg.h).
 *
 * Everything below the queue runs on the cluster thread, on its libev loop,
 * with a Redis connection of its own (membership's once-a-second script is
 * never stuck behind a pipeline of XADDs).  A 10 ms timer drives it: drain
 * the queue into a local list, XADD what is not in flight, send the replies
 * of Opens whose share is now durable, XACK what was handled, and read the
 * stream (non-blocking XREADGROUP; at once again while it returns full
 * batches). */
#include "xmsg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libev.h>
#include "set.h"

#define QUEUE_CAP 16384     /* messages other threads may have waiting for the cluster thread */
#define LOCAL_MAX 200000    /* messages held here while Redis is away; beyond, the queue fills */
#define IN_FLIGHT_MAX 1024  /* XADDs waiting for their replies */
#define READ_COUNT 256      /* entries per XREADGROUP */
#define ACK_BATCH 256       /* ids per XACK */
#define RESCAN_US 2000000   /* read the pending list again this often */
#define STREAM_MAXLEN "1000000"
#define GROUP "hb"
#define SEEN_CAP 32768      /* slots per dedup generation (half full at most) */

typedef struct xout {
    struct xout *next;
    sv_msg m;
    uint64_t hi, lo;   /* message id */
    uint64_t jseq;     /* an Open's reply: sent once this journal record is durable */
    uint64_t ohi, olo; /* ... the Open's message id (marked done once the reply is out) */
    char ack[48];      /* an entry of our stream to XACK once this is XADDed ("" none) */
} xout;

typedef struct xlist {
    xout *head, *tail;
    size_t n;
} xlist;

typedef struct seen_slot {
    uint64_t hi, lo;
    uint8_t state; /* 0 empty, 1 being handled, 2 done */
} seen_slot;

struct sv_xmsg {
    sv_server *s;
    sv_inbox q;
    int self;
    char key[48];
    uint64_t boot, counter;

    struct ev_loop *loop;
    ev_timer tick;
    redisAsyncContext *ac;
    bool ready; /* connected; the group is asked for */
    int64_t next_connect_us, next_rescan_us;
    bool reading;
    _Atomic bool paused, pause_seen; /* hot upgrade: read nothing (pause_seen: no read in flight either) */
    char from[48]; /* XREADGROUP id: "0"... while reading the pending list, ">" after */

    xlist out;      /* to XADD */
    xlist waiting;  /* Open replies waiting for their journal record */
    size_t in_flight;
    char *acks[ACK_BATCH];
    size_t nacks;

    seen_slot *seen[2]; /* two generations: [0] current */
    size_t seen_n;

    _Atomic uint64_t xadd, xadd_failed, xread, xread_entries, xack, acked, duplicates, opens_forwarded,
        opens_served, open_replies, queue_full, commands, dropped, opens_ok, share_amount;
};

static void cnt(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* ---- message ids seen ---------------------------------------------------------------- */

static seen_slot *seen_find(seen_slot *t, uint64_t hi, uint64_t lo)
{
    uint64_t h = (hi ^ (lo * 0x9e3779b97f4a7c15ULL)) * 0xff51afd7ed558ccdULL;
    size_t i = (size_t)(h >> 40) & (SEEN_CAP - 1);
    while (t[i].state && !(t[i].hi == hi && t[i].lo == lo))
        i = (i + 1) & (SEEN_CAP - 1);
    return &t[i];
}

/* The state of message (hi, lo): 0 never seen (recently). */
static uint8_t seen_get(sv_xmsg *x, uint64_t hi, uint64_t lo)
{
    for (int g = 0; g < 2; g++) {
        seen_slot *e = seen_find(x->seen[g], hi, lo);
        if (e->state)
            return e->state;
    }
    return 0;
}

static void seen_set(sv_xmsg *x, uint64_t hi, uint64_t lo, uint8_t state)
{
    seen_slot *e = seen_find(x->seen[1], hi, lo);
    if (e->state) { /* still known from the older generation */
        e->state = state;
        return;
    }
    e = seen_find(x->seen[0], hi, lo);
    if (!e->state) {
        if (x->seen_n == SEEN_CAP / 2) { /* rotate: the oldest generation is forgotten */
            seen_slot *t = x->seen[1];
            memset(t, 0, SEEN_CAP * sizeof *t);
            x->seen[1] = x->seen[0];
            x->seen[0] = t;
            x->seen_n = 0;
            e = seen_find(x->seen[0], hi, lo);
        }
        x->seen_n++;
        e->hi = hi;
        e->lo = lo;
    }
    e->state = state;
}

/* ---- lists ------------------------------------------------------------------------ */

static void push_tail(xlist *l, xout *o)
{
    o->next = NULL;
    if (l->tail)
        l->tail->next = o;
    else
        l->head = o;
    l->tail = o;
    l->n++;
}

static void push_head(xlist *l, xout *o)
{
    o->next = l->head;
    l->head = o;
    if (!l->tail)
        l->tail = o;
    l->n++;
}

static xout *pop_head(xlist *l)
{
    xout *o = l->head;
    if (o) {
        l->head = o->next;
        if (!l->head)
            l->tail = NULL;
        l->n--;
    }
    return o;
}

static void free_list(xlist *l)
{
    xout *o;
    while ((o = pop_head(l)))
        free(o);
}

/* ---- wire format -------------------------------------------------------------------- */

/* "m": the fixed fields as text (both ends may be other builds); "x": chat text. */
static int encode(const xout *o, char *buf, size_t len)
{
    const sv_msg *m = &o->m;
    return snprintf(buf, len, "%u %u %u %u %u %u %u %u %u %u %" PRIu64 " %" PRIx64 " %" PRIx64, m->type, m->uid,
                    m->from, m->amount, m->slot, m->gen, m->set, m->status, m->split, m->xhops, m->packet_id, o->hi,
                    o->lo);
}

static bool decode(const char *s, sv_msg *m, uint64_t *hi, uint64_t *lo)
{
    unsigned v[10];
    memset(m, 0, sizeof *m);
    if (sscanf(s, "%u %u %u %u %u %u %u %u %u %u %" SCNu64 " %" SCNx64 " %" SCNx64, &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &m->packet_id, hi, lo) != 13)
        return false;
    m->type = (uint8_t)v[0];
    m->uid = v[1];
    m->from = v[2];
    m->amount = v[3];
    m->slot = v[4];
    m->gen = v[5];
    m->set = (uint16_t)v[6];
    m->status = (uint8_t)v[7];
    m->split = (uint8_t)v[8];
    m->xhops = (uint8_t)v[9];
    return m->type >= SV_MSG_NOTICE && m->type <= SV_MSG_OPEN_REPLY && m->type != SV_MSG_KICK;
}

/* ---- sending ------------------------------------------------------------------------- */

bool sv_xmsg_send(sv_xmsg *x, int node, const sv_msg *m)
{
    sv_msg c = *m;
    c.dest = (uint8_t)node;
    c.xhops++;
    if (sv_inbox_push(&x->q, &c))
        return true;
    cnt(&x->queue_full, 1);
    return false;
}

static void ack(sv_xmsg *x, const char *id);

static void on_xadd(redisAsyncContext *ac, void *reply, void *priv)
{
    sv_xmsg *x = ac->data;
    xout *o = priv;
    redisReply *r = reply;
    x->in_flight--;
    if (!r || r->type != REDIS_REPLY_STRING) {
        cnt(&x->xadd_failed, 1);
        push_head(&x->out, o); /* again once Redis answers (same message id) */
        return;
    }
    cnt(&x->xadd, 1);
    if (o->ack[0]) { /* an Open answered: its entry is done */
        seen_set(x, o->ohi, o->olo, 2);
        ack(x, o->ack);
    }
    free(o);
}

static void xadd(sv_xmsg *x, xout *o)
{
    char key[48], m[192];
    snprintf(key, sizeof key, "hb:node:%u:in", o->m.dest);
    encode(o, m, sizeof m);
    /* a chat has one more field, its text (binary-safe) */
    const char *argv[10] = {"XADD", key, "MAXLEN", "~", STREAM_MAXLEN, "*", "m", m, "x", o->m.text};
    size_t len[10];
    for (int i = 0; i < 9; i++)
        len[i] = strlen(argv[i]);
    len[9] = o->m.textlen;
    int argc = o->m.type == SV_MSG_CHAT ? 10 : 8;
    if (redisAsyncCommandArgv(x->ac, on_xadd, o, argc, argv, len) == REDIS_OK) {
        x->in_flight++;
        cnt(&x->commands, 1);
    } else {
        push_head(&x->out, o);
    }
}

/* ---- acknowledging ------------------------------------------------------------------------- */

static void on_xack(redisAsyncContext *ac, void *reply, void *priv)
{
    sv_xmsg *x = ac->data;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_INTEGER)
        cnt(&x->acked, (uint64_t)r->integer);
    /* a lost XACK leaves the entry pending: the next rescan sees it again
     * and acknowledges it as a duplicate */
}

static void flush_acks(sv_xmsg *x)
{
    if (!x->nacks)
        return;
    if (x->ac) {
        const char *argv[3 + ACK_BATCH] = {"XACK", x->key, GROUP};
        for (size_t i = 0; i < x->nacks; i++)
            argv[3 + i] = x->acks[i];
        if (redisAsyncCommandArgv(x->ac, on_xack, NULL, (int)(3 + x->nacks), argv, NULL) == REDIS_OK) {
            cnt(&x->xack, 1);
            cnt(&x->commands, 1);
        }
    }
    for (size_t i = 0; i < x->nacks; i++)
        free(x->acks[i]);
    x->nacks = 0;
}

static void ack(sv_xmsg *x, const char *id)
{
    if (x->nacks == ACK_BATCH)
        flush_acks(x);
    x->acks[x->nacks++] = strdup(id);
    if (!x->acks[x->nacks - 1])
        x->nacks--;
}

/* ---- handling what was read -------------------------------------------------------------------- */

/* An Open of one of our packets, for a user of node m->from. */
static void serve_open(sv_xmsg *x, const char *id, const sv_msg *m, uint64_t hi, uint64_t lo)
{
    sv_server *s = x->s;
    Hb__OpenStatus st;
    uint32_t share;
    uint64_t jseq;
    /* The share being opened elsewhere this moment (registry.h): not
     * answered yet, and not waited for on this thread either.  Left pending
     * (not marked, not acknowledged), it is served again at the next rescan
     * of the pending list (RESCAN_US), by then OPEN_ALREADY. */
    if (!sv_registry_open(&s->reg, &s->journal, -1, m->packet_id, m->uid, &st, &share, &jseq))
        return;
    cnt(&x->opens_served, 1);
    if (st == HB__OPEN_STATUS__OPEN_OK) {
        cnt(&x->opens_ok, 1);
        cnt(&x->share_amount, share);
    }
    xout *o = calloc(1, sizeof *o);
    if (!o)
        return; /* left pending: served again at the next rescan (idempotent) */
    seen_set(x, hi, lo, 1);
    o->m = (sv_msg){.type = SV_MSG_OPEN_REPLY,
                    .uid = m->uid,
                    .from = (uint32_t)x->self,
                    .amount = st == HB__OPEN_STATUS__OPEN_OK || st == HB__OPEN_STATUS__OPEN_ALREADY ? share : 0,
                    .slot = m->slot,
                    .gen = m->gen,
                    .set = m->set,
                    .status = (uint8_t)st,
                    .packet_id = m->packet_id,
                    .dest = (uint8_t)m->from,
                    .xhops = 1};
    o->hi = (uint64_t)x->self << 56 | x->boot;
    o->lo = ++x->counter;
    o->jseq = jseq;
    o->ohi = hi;
    o->olo = lo;
    snprintf(o->ack, sizeof o->ack, "%s", id);
    push_tail(&x->waiting, o); /* leaves once the share is on disk (next tick, usually) */
}

static void handle_entry(sv_xmsg *x, const redisReply *e)
{
    sv_server *s = x->s;
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *id = e->element[0]->str;
    const redisReply *f = e->element[1];
    cnt(&x->xread_entries, 1);
    const char *mv = NULL, *text = NULL;
    size_t textlen = 0;
    for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (!strcmp(k->str, "m"))
            mv = v->str;
        else if (!strcmp(k->str, "x")) {
            text = v->str;
            textlen = v->len;
        }
    }
    sv_msg m;
    uint64_t hi, lo;
    if (!mv || !decode(mv, &m, &hi, &lo)) { /* trimmed away, or not ours: nothing to do */
        cnt(&x->dropped, 1);
        ack(x, id);
        return;
    }
    uint8_t state = seen_get(x, hi, lo);
    if (state) {
        cnt(&x->duplicates, 1);
        if (state == 2)
            ack(x, id);
        return;
    }
    switch (m.type) {
    case SV_MSG_NOTICE:
    case SV_MSG_CHAT:
        if (m.type == SV_MSG_CHAT) {
            m.textlen = (uint8_t)(textlen < HB_CHAT_MAX ? textlen : HB_CHAT_MAX);
            if (text)
                memcpy(m.text, text, m.textlen);
        }
        if (!sv_route(s, &m) && m.type == SV_MSG_NOTICE) {
            cnt(&x->dropped, 1);
            return; /* left pending: tried again at the next rescan */
        }
        seen_set(x, hi, lo, 2);
        ack(x, id);
        break;
    case SV_MSG_OPEN:
        serve_open(x, id, &m, hi, lo);
        break;
    case SV_MSG_OPEN_REPLY:
        if (m.set >= s->nsets) {
            cnt(&x->dropped, 1);
        } else {
            sv_set *t = s->sets[m.set];
            if (!sv_inbox_push(&t->inbox, &m)) {
                cnt(&x->dropped, 1);
                return; /* left pending */
            }
            ev_async_send(t->loop, &t->wake);
            cnt(&x->open_replies, 1);
        }
        seen_set(x, hi, lo, 2);
        ack(x, id);
        break;
    }
}

static void read_stream(sv_xmsg *x);

static void on_read(redisAsyncContext *ac, void *reply, void *priv)
{
    sv_xmsg *x = ac->data;
    redisReply *r = reply;
    x->reading = false;
    if (!r)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        if (!strncmp(r->str, "NOGROUP", 7)) /* Redis lost it (restarted without its data): again */
            x->ready = false;
        return;
    }
    bool pending = strcmp(x->from, ">") != 0;
    size_t n = 0;
    const redisReply *last = NULL;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 2) {
        const redisReply *es = r->element[0]->element[1];
        for (size_t i = 0; es->type == REDIS_REPLY_ARRAY && i < es->elements; i++) {
            handle_entry(x, es->element[i]);
            last = es->element[i];
        }
        n = es->type == REDIS_REPLY_ARRAY ? es->elements : 0;
    }
    if (pending) { /* page through the pending list, then read new entries */
        if (n && last->element[0]->type == REDIS_REPLY_STRING)
            snprintf(x->from, sizeof x->from, "%s", last->element[0]->str);
        else
            snprintf(x->from, sizeof x->from, ">");
    }
    flush_acks(x);
    if (n == READ_COUNT)
        read_stream(x); /* more waiting */
}

static void read_stream(sv_xmsg *x)
{
    if (!x->ac || !x->ready || x->reading || atomic_load(&x->paused))
        return;
    char count[16];
    snprintf(count, sizeof count, "%d", READ_COUNT);
    const char *name = x->s->cfg.node;
    const char *argv[] = {"XREADGROUP", "GROUP", GROUP, name, "COUNT", count, "STREAMS", x->key, x->from};
    if (redisAsyncCommandArgv(x->ac, on_read, NULL, 9, argv, NULL) == REDIS_OK) {
        x->reading = true;
        cnt(&x->xread, 1);
        cnt(&x->commands, 1);
    }
}

/* ---- the connection ------------------------------------------------------------------------- */

static void on_group(redisAsyncContext *ac, void *reply, void *priv)
{
    sv_xmsg *x = ac->data;
    redisReply *r = reply;
    /* OK, or BUSYGROUP: it exists (Redis kept it) */
    if (r && (r->type != REDIS_REPLY_ERROR || !strncmp(r->str, "BUSYGROUP", 9))) {
        x->ready = true;
        snprintf(x->from, sizeof x->from, "0"); /* what was read before and not acknowledged, first */
    }
}

static void ask_group(sv_xmsg *x)
{
    /* From id 0: entries XADDed before this node ever read are read too. */
    const char *argv[] = {"XGROUP", "CREATE", x->key, GROUP, "0", "MKSTREAM"};
    if (redisAsyncCommandArgv(x->ac, on_group, NULL, 6, argv, NULL) == REDIS_OK)
        cnt(&x->commands, 1);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    sv_xmsg *x = ac->data;
    if (status != REDIS_OK) {
        x->ac = NULL; /* hiredis frees it */
        x->ready = x->reading = false;
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    sv_xmsg *x = ac->data;
    x->ac = NULL;
    x->ready = x->reading = false;
}

static void dial(sv_xmsg *x)
{
    const char *host, *pw;
    int port;
    sv_cluster_redis_addr(x->s->cluster, &host, &port, &pw);
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    if (!ac)
        return;
    if (ac->err) {
        redisAsyncFree(ac);
        return;
    }
    ac->data = x;
    redisLibevAttach(x->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    x->ac = ac;
    if (pw) {
        const char *argv[2] = {"AUTH", pw};
        redisAsyncCommandArgv(ac, NULL, NULL, 2, argv, NULL);
    }
}

/* ---- the timer ----------------------------------------------------------------------------- */

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    sv_xmsg *x = w->data;
    int64_t now = hb_mono_us();
    if (atomic_load(&x->paused) && !x->reading)
        atomic_store(&x->pause_seen, true);
    /* From the queue, with a message id each (kept through retries). */
    sv_msg m;
    while (x->out.n < LOCAL_MAX && sv_inbox_pop(&x->q, &m)) {
        xout *o = calloc(1, sizeof *o);
        if (!o) {
            cnt(&x->dropped, 1);
            continue;
        }
        o->m = m;
        o->hi = (uint64_t)x->self << 56 | x->boot;
        o->lo = ++x->counter;
        if (m.type == SV_MSG_OPEN)
            cnt(&x->opens_forwarded, 1);
        push_tail(&x->out, o);
    }
    /* Open replies whose share is on disk. */
    uint64_t done = sv_journal_committed(&x->s->journal);
    for (size_t k = x->waiting.n; k > 0; k--) {
        xout *o = pop_head(&x->waiting);
        if (o->jseq <= done)
            push_tail(&x->out, o);
        else
            push_tail(&x->waiting, o);
    }
    if (!x->ac) {
        if (now >= x->next_connect_us) {
            x->next_connect_us = now + 500000;
            dial(x);
        }
        return;
    }
    if (!x->ready) {
        if (now >= x->next_connect_us) {
            x->next_connect_us = now + 500000;
            ask_group(x);
        }
        return;
    }
    while (x->in_flight < IN_FLIGHT_MAX && x->out.n)
        xadd(x, pop_head(&x->out));
    flush_acks(x);
    if (now >= x->next_rescan_us && !x->reading) {
        x->next_rescan_us = now + RESCAN_US;
        snprintf(x->from, sizeof x->from, "0");
    }
    read_stream(x);
}

static void hook_start(void *arg, struct ev_loop *loop)
{
    sv_xmsg *x = arg;
    x->loop = loop;
    ev_timer_init(&x->tick, tick_cb, 0, 0.01);
    x->tick.data = x;
    ev_timer_start(loop, &x->tick);
}

static void hook_stop(void *arg)
{
    sv_xmsg *x = arg;
    if (x->ac) {
        redisAsyncContext *ac = x->ac;
        x->ac = NULL;
        ac->onDisconnect = NULL;
        redisAsyncFree(ac); /* in-flight XADDs come back (NULL) onto x->out */
    }
    if (x->out.n || x->waiting.n)
        hb_log("cluster: %zu messages to other nodes not sent at exit (renotify and client retries cover them)",
               x->out.n + x->waiting.n);
}

sv_xmsg *sv_xmsg_new(sv_server *s, char *err, size_t errlen)
{
    sv_xmsg *x = calloc(1, sizeof *x);
    if (!x || sv_inbox_init(&x->q, QUEUE_CAP) < 0 || !(x->seen[0] = calloc(SEEN_CAP, sizeof(seen_slot))) ||
        !(x->seen[1] = calloc(SEEN_CAP, sizeof(seen_slot)))) {
        snprintf(err, errlen, "out of memory");
        if (x) {
            sv_inbox_free(&x->q);
            free(x->seen[0]);
            free(x);
        }
        return NULL;
    }
    x->s = s;
    x->self = (int)s->cfg.node_index;
    snprintf(x->key, sizeof x->key, "hb:node:%d:in", x->self);
    x->boot = (uint64_t)hb_now_us() & ((1ULL << 56) - 1);
    snprintf(x->from, sizeof x->from, "0");
    sv_cluster_set_hooks(s->cluster, hook_start, hook_stop, x);
    return x;
}

void sv_xmsg_free(sv_xmsg *x)
{
    if (!x)
        return;
    free_list(&x->out);
    free_list(&x->waiting);
    for (size_t i = 0; i < x->nacks; i++)
        free(x->acks[i]);
    sv_inbox_free(&x->q);
    free(x->seen[0]);
    free(x->seen[1]);
    free(x);
}

bool sv_xmsg_pause(sv_xmsg *x, bool on, int timeout_ms)
{
    if (!x)
        return true;
    atomic_store(&x->pause_seen, false);
    atomic_store(&x->paused, on);
    if (!on)
        return true;
    for (int64_t end = hb_mono_us() + (int64_t)timeout_ms * 1000; hb_mono_us() < end; usleep(1000))
        if (atomic_load(&x->pause_seen))
            return true;
    return false;
}

void sv_xmsg_get_stats(sv_xmsg *x, sv_xmsg_stats *st)
{
#define G(f) st->f = atomic_load_explicit(&x->f, memory_order_relaxed)
    G(xadd);
    G(xadd_failed);
    G(xread);
    G(xread_entries);
    G(xack);
    G(acked);
    G(duplicates);
    G(opens_forwarded);
    G(opens_served);
    G(open_replies);
    G(queue_full);
    G(commands);
    G(dropped);
    G(opens_ok);
    G(share_amount);
#undef G
}
