/* tsvlog.h -- the monitor's log: tab-separated, a header line naming the
 * columns (columns.h), then one line per merged second, flushed as it is
 * written so a monitor killed mid-run leaves a complete file. */
#ifndef MON_TSVLOG_H
#define MON_TSVLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "collect.h"

typedef struct mon_tsvlog {
    FILE *f;
    unsigned long long lines;
} mon_tsvlog;

/* append: keep an existing file's lines (and header).  0, or -1 with err. */
int mon_tsvlog_open(mon_tsvlog *l, const char *path, bool append, char *err, size_t errlen);
int mon_tsvlog_write(mon_tsvlog *l, const mon_row *r);
void mon_tsvlog_close(mon_tsvlog *l);

/* The header line / a data line, without the newline, for tests. */
void mon_tsv_header(FILE *f);
void mon_tsv_line(FILE *f, const mon_row *r);

/* --reports FILE: one raw line per report received (before any merging),
 * for tools/bench's Python: recv_us role instance second boot_id
 * connections, the counters of MON_COUNTERS under their report field names,
 * target_qps, and lat: the latency histogram delta as comma-separated
 * `high:count` pairs (high = the largest microsecond value of the bucket,
 * hb_hist_high; "-" when empty).  Lines are flushed whole. */
int mon_reports_open(mon_tsvlog *l, const char *path, char *err, size_t errlen);
int mon_reports_write(mon_tsvlog *l, int64_t recv_us, const mon_report *r);
void mon_reports_header(FILE *f);
void mon_reports_line(FILE *f, int64_t recv_us, const mon_report *r);

#endif
