/* registry.c -- send packets, shake grants, splitting. */
#include "registry.h"

#include <stdlib.h>
#include <string.h>
#include "lockstat.h"
#include "util.h"

int sv_registry_init(sv_registry *r)
{
    memset(r, 0, sizeof *r);
    r->chunk = calloc(SV_SEND_CHUNKS, sizeof *r->chunk);
    for (int i = 0; i < 64; i++)
        pthread_mutex_init(&r->send_mu[i], NULL);
    pthread_mutex_init(&r->grant_mu, NULL);
    r->gcap = 1024;
    r->g = calloc(r->gcap, sizeof *r->g);
    return r->chunk && r->g ? 0 : -1;
}

void sv_registry_free(sv_registry *r)
{
    /* chunks are allocated in order: stop at the first missing one */
    for (int i = 0; r->chunk && i < SV_SEND_CHUNKS && r->chunk[i]; i++)
        free(r->chunk[i]);
    free(r->chunk);
    free(r->g);
    r->chunk = NULL;
    r->g = NULL;
}

static sv_sendpkt *send_at(sv_registry *r, uint64_t k)
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
    if (!r->chunk[k / SV_SEND_CHUNK] && !(r->chunk[k / SV_SEND_CHUNK] = calloc(SV_SEND_CHUNK, sizeof(sv_sendpkt))))
        return -1;
    *send_at(r, k) = *p; /* unpublished: no other thread reads index k yet, so no lock to wait for */
    atomic_store_explicit(&r->send_count, k + 1, memory_order_release); /* k was the count: publish it */
    return 0;
}

bool sv_registry_get_send(sv_registry *r, uint64_t id, sv_sendpkt *out)
{
    int64_t k = index_of(r, id);
    if (k < 0)
        return false;
    sv_lock(&r->send_mu[k % 64], SV_LK_REGISTRY);
    *out = *send_at(r, (uint64_t)k);
    pthread_mutex_unlock(&r->send_mu[k % 64]);
    return out->n > 0;
}

int sv_registry_try_get_send(sv_registry *r, uint64_t id, sv_sendpkt *out)
{
    int64_t k = index_of(r, id);
    if (k < 0)
        return 0;
    if (pthread_mutex_trylock(&r->send_mu[k % 64]) != 0)
        return -1;
    *out = *send_at(r, (uint64_t)k);
    pthread_mutex_unlock(&r->send_mu[k % 64]);
    return out->n > 0;
}

/* The producer's own fields: no other thread touches them (and the stripe
 * lock's holders touch only other fields, distinct memory locations). */
void sv_registry_set_renotify(sv_registry *r, uint64_t id, uint32_t at, uint8_t times)
{
    int64_t k = index_of(r, id);
    if (k < 0)
        return;
    sv_sendpkt *p = send_at(r, (uint64_t)k);
    p->renotify_at = at;
    p->renotified = times;
}

void sv_registry_set_unrouted(sv_registry *r, uint64_t id, uint8_t failed, uint8_t routed)
{
    int64_t k = index_of(r, id);
    if (k < 0)
        return;
    sv_sendpkt *p = send_at(r, (uint64_t)k);
    p->unrouted = (uint8_t)((p->unrouted & ~routed) | failed);
}

void sv_registry_told(sv_registry *r, uint64_t id, uint32_t uid, uint64_t loc)
{
    int64_t k = index_of(r, id);
    if (k < 0)
        return; /* another node's packet */
    sv_lock(&r->send_mu[k % 64], SV_LK_REGISTRY);
    sv_sendpkt *p = send_at(r, (uint64_t)k);
    for (unsigned i = 0; i < p->n && i < HB_SPLIT_MAX; i++)
        if (p->uid[i] == uid)
            p->told_loc[i] = loc;
    pthread_mutex_unlock(&r->send_mu[k % 64]);
}

Hb__OpenStatus sv_registry_open(sv_registry *r, sv_journal *j, int set, uint64_t id, uint32_t uid, uint32_t *share,
                                uint64_t *jseq)
{
    int64_t k = index_of(r, id);
    *share = 0;
    *jseq = 0;
    if (k < 0)
        return HB__OPEN_STATUS__OPEN_UNKNOWN_PACKET;
    pthread_mutex_t *mu = &r->send_mu[k % 64];
    sv_lock(mu, SV_LK_REGISTRY);
    sv_sendpkt *p = send_at(r, (uint64_t)k);
    Hb__OpenStatus st = HB__OPEN_STATUS__OPEN_NOT_RECIPIENT;
    for (unsigned i = 0; i < p->n; i++) {
        if (p->uid[i] != uid)
            continue;
        *share = p->share[i];
        if (p->opened & (1u << i)) {
            st = HB__OPEN_STATUS__OPEN_ALREADY;
            *jseq = p->jseq;
        } else {
            p->opened |= (uint8_t)(1u << i);
            Hb__Record rec = HB__RECORD__INIT;
            rec.type = HB__RECORD_TYPE__REC_SHARE;
            rec.kind = HB__PACKET_KIND__KIND_SEND;
            rec.packet_id = id;
            rec.amount = p->share[i];
            rec.uid = uid;
            rec.time_us = hb_now_us();
            *jseq = p->jseq = sv_journal_append(j, &rec, set);
            st = HB__OPEN_STATUS__OPEN_OK;
        }
        break;
    }
    pthread_mutex_unlock(mu);
    return st;
}

bool sv_registry_mark_opened(sv_registry *r, uint64_t id, uint32_t uid, uint32_t amount)
{
    int64_t k = index_of(r, id);
    if (k < 0)
        return false;
    sv_sendpkt *p = send_at(r, (uint64_t)k);
    for (unsigned i = 0; i < p->n; i++)
        if (p->uid[i] == uid) {
            if ((p->opened & (1u << i)) || p->share[i] != amount)
                return false;
            p->opened |= (uint8_t)(1u << i);
            return true;
        }
    return false;
}

/* ---- grants: open addressing on (uid, seq) ------------------------------- */

static uint64_t gkey(uint32_t uid, uint32_t seq)
{
    return ((uint64_t)uid + 1) << 32 | seq;
}

static size_t gslot(sv_grant *g, size_t cap, uint64_t key)
{
    uint64_t h = key * 0x9e3779b97f4a7c15ULL;
    size_t i = (size_t)(h >> 20) & (cap - 1);
    while (g[i].key && g[i].key != key)
        i = (i + 1) & (cap - 1);
    return i;
}

void sv_registry_add_grant(sv_registry *r, uint32_t uid, uint32_t seq, uint64_t packet_id, uint32_t amount,
                           uint64_t jseq)
{
    sv_lock(&r->grant_mu, SV_LK_GRANT);
    if ((r->glen + 1) * 2 > r->gcap) {
        size_t ncap = r->gcap * 2;
        sv_grant *ng = calloc(ncap, sizeof *ng);
        if (ng) {
            for (size_t i = 0; i < r->gcap; i++)
                if (r->g[i].key)
                    ng[gslot(ng, ncap, r->g[i].key)] = r->g[i];
            free(r->g);
            r->g = ng;
            r->gcap = ncap;
        }
    }
    if ((r->glen + 1) < r->gcap) {
        uint64_t key = gkey(uid, seq);
        size_t i = gslot(r->g, r->gcap, key);
        if (!r->g[i].key)
            r->glen++;
        r->g[i] = (sv_grant){.key = key, .packet_id = packet_id, .jseq = jseq, .amount = amount};
    }
    pthread_mutex_unlock(&r->grant_mu);
}

bool sv_registry_find_grant(sv_registry *r, uint32_t uid, uint32_t seq, uint64_t *packet_id, uint32_t *amount,
                            uint64_t *jseq)
{
    sv_lock(&r->grant_mu, SV_LK_GRANT);
    size_t i = gslot(r->g, r->gcap, gkey(uid, seq));
    bool found = r->g[i].key != 0;
    if (found) {
        *packet_id = r->g[i].packet_id;
        *amount = r->g[i].amount;
        *jseq = r->g[i].jseq;
    }
    pthread_mutex_unlock(&r->grant_mu);
    return found;
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
