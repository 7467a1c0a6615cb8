/* inbox.c -- bounded MPMC array queue (used multi-producer, single-consumer). */
#include "inbox.h"

#include <stdlib.h>

int sv_inbox_init(sv_inbox *q, size_t cap)
{
    size_t n = 2;
    while (n < cap)
        n <<= 1;
    q->cells = calloc(n, sizeof *q->cells);
    if (!q->cells)
        return -1;
    for (size_t i = 0; i < n; i++)
        atomic_init(&q->cells[i].seq, i);
    q->mask = n - 1;
    atomic_init(&q->tail, 0);
    atomic_init(&q->head, 0);
    return 0;
}

void sv_inbox_free(sv_inbox *q)
{
    free(q->cells);
    q->cells = NULL;
}

bool sv_inbox_push(sv_inbox *q, const sv_msg *m)
{
    size_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
    for (;;) {
        sv_inbox_cell *c = &q->cells[pos & q->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            /* The cell is free for round `pos`: claim it. */
            if (atomic_compare_exchange_weak_explicit(&q->tail, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                c->m = *m;
                atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
                return true;
            }
            /* lost the race: pos was reloaded by the CAS */
        } else if (dif < 0) {
            return false; /* full: the consumer has not freed this cell yet */
        } else {
            pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
        }
    }
}

bool sv_inbox_pop(sv_inbox *q, sv_msg *m)
{
    size_t pos = atomic_load_explicit(&q->head, memory_order_relaxed);
    sv_inbox_cell *c = &q->cells[pos & q->mask];
    size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
    if ((intptr_t)seq - (intptr_t)(pos + 1) < 0)
        return false; /* empty (or the producer is mid-write: it wakes us after) */
    *m = c->m;
    atomic_store_explicit(&q->head, pos + 1, memory_order_relaxed);
    atomic_store_explicit(&c->seq, pos + q->mask + 1, memory_order_release);
    return true;
}
