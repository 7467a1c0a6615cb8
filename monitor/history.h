/* history.h -- the last N merged seconds, kept for the dashboard (its first
 * load draws them all, later polls ask only for newer ones). */
#ifndef MON_HISTORY_H
#define MON_HISTORY_H

#include <stddef.h>
#include "collect.h"

typedef struct mon_history {
    mon_row *rows;
    size_t cap, head, len; /* rows[(head + i) % cap], i < len, oldest first */
} mon_history;

int mon_history_init(mon_history *h, size_t cap);
void mon_history_push(mon_history *h, const mon_row *r);
/* i-th oldest row, i < len. */
const mon_row *mon_history_at(const mon_history *h, size_t i);
void mon_history_free(mon_history *h);

#endif
