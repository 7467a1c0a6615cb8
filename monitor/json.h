/* json.h -- the dashboard's JSON (GET /api/series): merged seconds as rows
 * in the column order of columns.h, plus the instances and the monitor's own
 * counters.  The page polls it once a second with ?since=LAST. */
#ifndef MON_JSON_H
#define MON_JSON_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "collect.h"
#include "history.h"

/* Rows with second > since, at most `limit` of the newest. */
void mon_json_render(mon_buf *b, const mon_collect *c, const mon_history *h, int64_t since, size_t limit,
                     int64_t now, int settle);

#endif
