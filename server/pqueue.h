/* pqueue.h -- a SET's red-packet queue: a bounded single-producer /
 * single-consumer ring.
 *
 * The producer thread is the only writer of `tail`, the SET thread the only
 * writer of `head`, so a shake takes a packet with two atomic loads and one
 * store and no lock.  The two indices sit on separate cache lines so the
 * producer's pushes do not bounce the line the SET reads on every shake. */
#ifndef SV_PQUEUE_H
#define SV_PQUEUE_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct sv_packet {
    uint64_t id;
    uint32_t amount; /* cents */
} sv_packet;

typedef struct sv_pqueue {
    sv_packet *ring;
    uint32_t mask;
    alignas(64) _Atomic uint32_t head; /* next to pop, written by the SET */
    alignas(64) _Atomic uint32_t tail; /* next free, written by the producer */
} sv_pqueue;

/* cap is rounded up to a power of two. */
static inline int sv_pqueue_init(sv_pqueue *q, uint32_t cap)
{
    uint32_t n = 1;
    while (n < cap)
        n <<= 1;
    q->ring = calloc(n, sizeof *q->ring);
    q->mask = n - 1;
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    return q->ring ? 0 : -1;
}

static inline void sv_pqueue_free(sv_pqueue *q)
{
    free(q->ring);
    q->ring = NULL;
}

/* Producer side. */
static inline bool sv_pqueue_push(sv_pqueue *q, const sv_packet *p)
{
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    if (t - h > q->mask)
        return false;
    q->ring[t & q->mask] = *p;
    atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    return true;
}

/* Consumer (SET) side. */
static inline bool sv_pqueue_pop(sv_pqueue *q, sv_packet *p)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
    if (h == t)
        return false;
    *p = q->ring[h & q->mask];
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
    return true;
}

/* Approximate from any thread, exact from either end. */
static inline uint32_t sv_pqueue_size(sv_pqueue *q)
{
    return atomic_load_explicit(&q->tail, memory_order_acquire) - atomic_load_explicit(&q->head, memory_order_acquire);
}

#endif
