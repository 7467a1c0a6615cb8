/* prom.h -- /metrics in the Prometheus text exposition format (0.0.4):
 * the merged totals as counters, the latest second's gauges, and every
 * client reply latency as a histogram with `le` buckets. */
#ifndef MON_PROM_H
#define MON_PROM_H

#include <stdint.h>
#include "buf.h"
#include "collect.h"

/* start_time: unix second the monitor started. */
void mon_prom_render(mon_buf *b, const mon_collect *c, int64_t start_time);

/* The `le` bounds of the latency histogram, microseconds (tests use them). */
extern const uint64_t mon_prom_le_us[];
extern const int mon_prom_nle;

#endif
