/* history.c -- a ring of merged rows. */
#include "history.h"

#include <stdlib.h>

int mon_history_init(mon_history *h, size_t cap)
{
    h->rows = calloc(cap ? cap : 1, sizeof *h->rows);
    h->cap = cap ? cap : 1;
    h->head = h->len = 0;
    return h->rows ? 0 : -1;
}

void mon_history_push(mon_history *h, const mon_row *r)
{
    if (h->len < h->cap) {
        h->rows[(h->head + h->len++) % h->cap] = *r;
    } else { /* full: the oldest goes */
        h->rows[h->head] = *r;
        h->head = (h->head + 1) % h->cap;
    }
}

const mon_row *mon_history_at(const mon_history *h, size_t i)
{
    return &h->rows[(h->head + i) % h->cap];
}

void mon_history_free(mon_history *h)
{
    free(h->rows);
    h->rows = NULL;
    h->cap = h->len = h->head = 0;
}
