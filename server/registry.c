/* registry.c -- send packets, shake grants, splitting.  Lock-free
 * throughout: the why and the invariants are in registry.h. */
#include "registry.h"

#include <stdlib.h>
#include <string.h>
#include "util.h"

void (*sv_registry_hook)(int point, uint64_t key);

static sv_gtab *gtab_new(size_t cap, sv_gtab *older)
{
    sv_gtab *t = calloc(1, sizeof *t + cap * sizeof(sv_gslot)); /* zero: every slot empty */
    if (t) {
        t->cap = cap;
        t->older = older;
    }
    return t;
}

int sv_registry_init(sv_registry *r)
{
    memset(r, 0, sizeof *r);
    r->chunk = calloc(SV_SEND_CHUNKS, sizeof *r->chunk);
    atomic_init(&r->grants, gtab_new(SV_GRANT_CAP0, NULL));
    return r->chunk && atomic_load(&r->grants) ? 0 : -1;
}

void sv_registry_free(sv_registry *r)
{
    /* chunks are allocated in order: stop at the first missing one */
    for (int i = 0; r->chunk && i < SV_SEND_CHUNKS && r->chunk[i]; i++)
        free(r->chunk[i]);
    free(r->chunk);
    r->chunk = NULL;
    for (sv_gtab *t = atomic_load(&r->grants), *o; t; t = o) {
        o = t->older;
        free(t);
    }
    atomic_store(&r->grants, NULL);
}

static sv_sendrec *send_at(sv_registry *r, uint64_t k)
{
    return &r->chunk[k / SV_SEND_CHUNK][k % SV_SEND_CHUNK];
}

static int64_t index_of(sv_registry *r, uint64_t id)
{
    int64_t sk = sv_registry_send_k(r, id);
    if (sk < 0)
        return -1;
    uint64_t k = (uint64_t)sk;
    return k < atomic_load_explicit(&r->send_count, memory_order_acquire) ? (int64_t)k : -1;
}

int sv_registry_put_send(sv_registry *r, uint64_t id, const sv_sendpkt *p)
{
    int64_t sk = sv_registry_send_k(r, id);
    if (sk < 0 || (uint64_t)sk >= (uint64_t)SV_SEND_CHUNK * SV_SEND_CHUNKS)
        return -1;
    uint64_t k = (uint64_t)sk;
    if (k != atomic_load(&r->send_count))
        return -1; /* dense: every chunk below is allocated, every index below published */
    if (!r->chunk[k / SV_SEND_CHUNK] && !(r->chunk[k / SV_SEND_CHUNK] = calloc(SV_SEND_CHUNK, sizeof(sv_sendrec))))
        return -1;
    /* Unpublished: no other thread reads index k yet, so plain stores (and
     * relaxed ones for the atomics) are enough; send_count's release
     * publishes them all. */
    sv_sendrec *q = send_at(r, k);
    q->amount = p->amount;
    q->n = p->n;
    memcpy(q->uid, p->uid, sizeof q->uid);
    memcpy(q->share, p->share, sizeof q->share);
    q->renotify_at = p->renotify_at;
    q->renotified = p->renotified;
    q->unrouted = p->unrouted;
    uint16_t opened = 0;
    for (unsigned i = 0; i < HB_SPLIT_MAX; i++)
        if (p->opened & (1u << i))
            opened |= (uint16_t)(SV_OPEN_CLAIMED(i) | SV_OPEN_RECORDED(i));
    atomic_store_explicit(&q->opened, opened, memory_order_relaxed);
    atomic_store_explicit(&q->jseq, p->jseq, memory_order_relaxed);
    for (unsigned i = 0; i < HB_SPLIT_MAX; i++)
        atomic_store_explicit(&q->told_loc[i], p->told_loc[i], memory_order_relaxed);
    atomic_store_explicit(&r->send_count, k + 1, memory_order_release); /* k was the count: publish it */
    return 0;
}

bool sv_registry_get_send(sv_registry *r, uint64_t id, sv_sendpkt *out)
{
    int64_t k = index_of(r, id);
    if (k < 0)
        return false;
    const sv_sendrec *q = send_at(r, (uint64_t)k);
    memset(out, 0, sizeof *out);
    out->amount = q->amount;
    out->n = q->n;
    memcpy(out->uid, q->uid, sizeof out->uid);
    memcpy(out->share, q->share, sizeof out->share);
    /* The producer's own fields: only the producer writes them, and the
     * other caller (server.c, at start) runs before it does. */
    out->renotify_at = q->renotify_at;
    out->renotified = q->renotified;
    out->unrouted = q->unrouted;
    out->opened = (uint8_t)atomic_load_explicit(&q->opened, memory_order_acquire);
    out->jseq = atomic_load_explicit(&q->jseq, memory_order_relaxed);
    for (unsigned i = 0; i < HB_SPLIT_MAX; i++)
        out->told_loc[i] = atomic_load_explicit(&q->told_loc[i], memory_order_relaxed);
    return out->n > 0;
}

/* The producer's own fields: no other thread writes them. */
void sv_registry_set_renotify(sv_registry *r, uint64_t id, uint32_t at, uint8_t times)
{
    int64_t k = index_of(r, id);
    if (k < 0)
        return;
    sv_sendrec *p = send_at(r, (uint64_t)k);
    p->renotify_at = at;
    p->renotified = times;
}

void sv_registry_set_unrouted(sv_registry *r, uint64_t id, uint8_t failed, uint8_t routed)
{
    int64_t k = index_of(r, id);
    if (k < 0)
        return;
    sv_sendrec *p = send_at(r, (uint64_t)k);
    p->unrouted = (uint8_t)((p->unrouted & ~routed) | failed);
}

/* A hint compared with the directory (renotify.c): one relaxed 64-bit store,
 * never torn; a stale read costs at most one notice too many. */
void sv_registry_told(sv_registry *r, uint64_t id, uint32_t uid, uint64_t loc)
{
    int64_t k = index_of(r, id);
    if (k < 0)
        return; /* another node's packet */
    sv_sendrec *p = send_at(r, (uint64_t)k);
    for (unsigned i = 0; i < p->n && i < HB_SPLIT_MAX; i++)
        if (p->uid[i] == uid)
            atomic_store_explicit(&p->told_loc[i], loc, memory_order_relaxed);
}

bool sv_registry_open(sv_registry *r, sv_journal *j, int set, uint64_t id, uint32_t uid, Hb__OpenStatus *st,
                      uint32_t *share, uint64_t *jseq)
{
    int64_t k = index_of(r, id);
    *share = 0;
    *jseq = 0;
    *st = HB__OPEN_STATUS__OPEN_UNKNOWN_PACKET;
    if (k < 0)
        return true;
    sv_sendrec *p = send_at(r, (uint64_t)k);
    *st = HB__OPEN_STATUS__OPEN_NOT_RECIPIENT;
    for (unsigned i = 0; i < p->n && i < HB_SPLIT_MAX; i++) {
        if (p->uid[i] != uid)
            continue;
        *share = p->share[i];
        uint16_t was = atomic_fetch_or_explicit(&p->opened, (uint16_t)SV_OPEN_CLAIMED(i), memory_order_acq_rel);
        if (!(was & SV_OPEN_CLAIMED(i))) {
            /* Ours alone to pay: journal it, then raise jseq to cover it
             * before saying so (the RECORDED bit, release). */
            if (sv_registry_hook)
                sv_registry_hook(SV_RP_OPEN_CLAIMED, id);
            Hb__Record rec = HB__RECORD__INIT;
            rec.type = HB__RECORD_TYPE__REC_SHARE;
            rec.kind = HB__PACKET_KIND__KIND_SEND;
            rec.packet_id = id;
            rec.amount = p->share[i];
            rec.uid = uid;
            rec.time_us = hb_now_us();
            uint64_t mine = sv_journal_append(j, &rec, set);
            uint64_t cur = atomic_load_explicit(&p->jseq, memory_order_relaxed);
            while (cur < mine &&
                   !atomic_compare_exchange_weak_explicit(&p->jseq, &cur, mine, memory_order_relaxed,
                                                          memory_order_relaxed))
                ;
            atomic_fetch_or_explicit(&p->opened, (uint16_t)SV_OPEN_RECORDED(i), memory_order_release);
            *jseq = mine;
            *st = HB__OPEN_STATUS__OPEN_OK;
            return true;
        }
        /* Claimed before: answer only once its record exists.  The acquire
         * pairs with the payer's release, so jseq then covers its record. */
        if (!(atomic_load_explicit(&p->opened, memory_order_acquire) & SV_OPEN_RECORDED(i))) {
            *share = 0;
            return false;
        }
        *jseq = atomic_load_explicit(&p->jseq, memory_order_relaxed);
        *st = HB__OPEN_STATUS__OPEN_ALREADY;
        return true;
    }
    return true;
}

/* Replay's one thread, before any other uses the registry. */
bool sv_registry_mark_opened(sv_registry *r, uint64_t id, uint32_t uid, uint32_t amount)
{
    int64_t k = index_of(r, id);
    if (k < 0)
        return false;
    sv_sendrec *p = send_at(r, (uint64_t)k);
    for (unsigned i = 0; i < p->n && i < HB_SPLIT_MAX; i++)
        if (p->uid[i] == uid) {
            uint16_t o = atomic_load_explicit(&p->opened, memory_order_relaxed);
            if ((o & SV_OPEN_CLAIMED(i)) || p->share[i] != amount)
                return false;
            /* durable already: jseq stays as it is (0 before this run) */
            atomic_store_explicit(&p->opened, (uint16_t)(o | SV_OPEN_CLAIMED(i) | SV_OPEN_RECORDED(i)),
                                  memory_order_relaxed);
            return true;
        }
    return false;
}

/* ---- grants: a chain of open-addressed tables on (uid, seq) ----------------- */

static uint64_t gkey(uint32_t uid, uint32_t seq)
{
    return ((uint64_t)uid + 1) << 32 | seq;
}

static size_t ghome(const sv_gtab *t, uint64_t key)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 20) & (t->cap - 1);
}

/* The table after t: the newest if t is stale, else a new one of twice its
 * size installed by CAS (a thread that loses the race frees its own and
 * takes the winner's).  NULL only out of memory. */
static sv_gtab *gtab_next(sv_registry *r, sv_gtab *t)
{
    sv_gtab *head = atomic_load_explicit(&r->grants, memory_order_acquire);
    if (head != t)
        return head;
    sv_gtab *nt = gtab_new(t->cap * 2, t);
    if (!nt)
        return NULL;
    if (sv_registry_hook)
        sv_registry_hook(SV_RP_GRANT_GROW, 0);
    if (atomic_compare_exchange_strong_explicit(&r->grants, &head, nt, memory_order_acq_rel, memory_order_acquire))
        return nt;
    free(nt);
    return head;
}

void sv_registry_add_grant(sv_registry *r, uint32_t uid, uint32_t seq, uint64_t packet_id, uint32_t amount,
                           uint64_t jseq)
{
    uint64_t key = gkey(uid, seq);
    sv_gtab *t = atomic_load_explicit(&r->grants, memory_order_acquire);
    for (;;) {
        /* A ticket per insert bounds what a table holds: below cap/2, or up
         * to 3/4 while the successor is made (ticket cap/2 makes it; tickets
         * from 3/4 on take the successor, making one themselves if its maker
         * is slow).  So at most 3/4 of a table's slots are ever claimed. */
        size_t n = atomic_fetch_add_explicit(&t->tickets, 1, memory_order_relaxed);
        size_t soft = t->cap / 2, hard = t->cap / 2 + t->cap / 4;
        if (n < hard && n != soft)
            break;
        sv_gtab *next = gtab_next(r, t);
        if (next) {
            t = next;
            continue;
        }
        if (n < hard)
            break; /* out of memory, but this one still has room */
        hb_die("registry: out of memory for the grant table");
    }
    size_t mask = t->cap - 1, i = ghome(t, key);
    for (;; i = (i + 1) & mask) {
        uint64_t empty = 0;
        /* Past any slot already taken, the same key's included: a later
         * add of a key lands further along its run, and finds take the
         * last match. */
        if (atomic_compare_exchange_strong_explicit(&t->slot[i].key, &empty, key, memory_order_relaxed,
                                                    memory_order_relaxed))
            break;
    }
    sv_gslot *g = &t->slot[i];
    if (sv_registry_hook)
        sv_registry_hook(SV_RP_GRANT_CLAIMED, key);
    g->packet_id = packet_id;
    g->jseq = jseq;
    g->amount = amount;
    atomic_store_explicit(&g->ready, 1, memory_order_release);
}

bool sv_registry_find_grant(sv_registry *r, uint32_t uid, uint32_t seq, uint64_t *packet_id, uint32_t *amount,
                            uint64_t *jseq)
{
    uint64_t key = gkey(uid, seq);
    for (sv_gtab *t = atomic_load_explicit(&r->grants, memory_order_acquire); t; t = t->older) {
        const sv_gslot *hit = NULL;
        size_t mask = t->cap - 1;
        uint64_t k;
        for (size_t i = ghome(t, key); (k = atomic_load_explicit(&t->slot[i].key, memory_order_relaxed)); i = (i + 1) & mask)
            if (k == key && atomic_load_explicit(&t->slot[i].ready, memory_order_acquire))
                hit = &t->slot[i];
        if (hit) {
            *packet_id = hit->packet_id;
            *amount = hit->amount;
            *jseq = hit->jseq;
            return true;
        }
    }
    return false;
}

/* ---- splitting -------------------------------------------------------------- */

int sv_split(uint64_t *rng, uint32_t amount, unsigned n, uint32_t *shares)
{
    if (n < 1 || n > HB_SPLIT_MAX || amount < n)
        return -1;
    /* n-1 distinct cut points in 1..amount-1, uniformly: every composition
     * of amount into n positive parts is equally likely. */
    uint32_t cut[HB_SPLIT_MAX];
    unsigned k = 0;
    while (k < n - 1) {
        uint32_t c = 1 + hb_rand_below(rng, amount - 1);
        unsigned i = k;
        bool dup = false;
        for (unsigned m = 0; m < k; m++)
            dup |= cut[m] == c;
        if (dup)
            continue;
        while (i > 0 && cut[i - 1] > c) { /* insertion keeps cut[] sorted */
            cut[i] = cut[i - 1];
            i--;
        }
        cut[i] = c;
        k++;
    }
    uint32_t prev = 0;
    for (unsigned i = 0; i < n - 1; i++) {
        shares[i] = cut[i] - prev;
        prev = cut[i];
    }
    shares[n - 1] = amount - prev;
    return 0;
}
