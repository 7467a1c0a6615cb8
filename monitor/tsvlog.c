/* tsvlog.c -- the TSV log. */
#include "tsvlog.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include "columns.h"
#include "hist.h"

void mon_tsv_header(FILE *f)
{
    for (int i = 0; i < MON_NCOLS; i++)
        fprintf(f, i ? "\t%s" : "%s", mon_col_name[i]);
}

void mon_tsv_line(FILE *f, const mon_row *r)
{
    uint64_t v[MON_NCOLS];
    mon_row_values(r, v);
    for (int i = 0; i < MON_NCOLS; i++)
        fprintf(f, i ? "\t%llu" : "%llu", (unsigned long long)v[i]);
}

int mon_tsvlog_open(mon_tsvlog *l, const char *path, bool append, char *err, size_t errlen)
{
    l->lines = 0;
    l->f = fopen(path, append ? "a" : "w");
    if (!l->f) {
        snprintf(err, errlen, "--log %s: %s", path, strerror(errno));
        return -1;
    }
    if (ftell(l->f) == 0) { /* a new or empty file gets the header */
        mon_tsv_header(l->f);
        fputc('\n', l->f);
    }
    if (fflush(l->f) != 0) {
        snprintf(err, errlen, "--log %s: %s", path, strerror(errno));
        fclose(l->f);
        l->f = NULL;
        return -1;
    }
    return 0;
}

int mon_tsvlog_write(mon_tsvlog *l, const mon_row *r)
{
    if (!l->f)
        return 0;
    mon_tsv_line(l->f, r);
    fputc('\n', l->f);
    l->lines++;
    return fflush(l->f) == 0 ? 0 : -1;
}

void mon_tsvlog_close(mon_tsvlog *l)
{
    if (l->f)
        fclose(l->f);
    l->f = NULL;
}

/* ---- --reports: one raw line per report ------------------------------------------- */

void mon_reports_header(FILE *f)
{
    fputs("recv_us\trole\tinstance\tsecond\tboot_id\tconnections", f);
#define X(name, field, help) fputs("\t" #field, f);
    MON_COUNTERS(X)
#undef X
    fputs("\ttarget_qps\tlat", f);
}

void mon_reports_line(FILE *f, int64_t recv_us, const mon_report *r)
{
    fprintf(f, "%" PRId64 "\t%s\t", recv_us, r->role == MON_SERVER ? "server" : "client");
    /* the sender's name, printable ASCII without tabs ("-" when empty) */
    const char *s = r->instance ? r->instance : "";
    if (!*s)
        fputc('-', f);
    for (; *s; s++)
        fputc(*s > 0x20 && *s < 0x7f ? *s : '?', f);
    fprintf(f, "\t%" PRId64 "\t%" PRIu64 "\t%" PRIu64, r->second, r->boot_id, r->conns);
    for (int i = 0; i < MON_NCTR; i++)
        fprintf(f, "\t%" PRIu64, r->c[i]);
    fprintf(f, "\t%" PRIu64 "\t", r->target_qps);
    int n = 0;
    for (size_t i = 0; i < r->lat_n; i++) {
        if (r->lat_index[i] >= HB_HIST_BUCKETS || !r->lat_count[i])
            continue; /* as the merge does: not a bucket of lib/hist.h */
        fprintf(f, "%s%" PRIu64 ":%" PRIu64, n++ ? "," : "", hb_hist_high(r->lat_index[i]), r->lat_count[i]);
    }
    if (!n)
        fputc('-', f);
}

int mon_reports_open(mon_tsvlog *l, const char *path, char *err, size_t errlen)
{
    l->lines = 0;
    l->f = fopen(path, "w");
    if (!l->f) {
        snprintf(err, errlen, "--reports %s: %s", path, strerror(errno));
        return -1;
    }
    mon_reports_header(l->f);
    fputc('\n', l->f);
    if (fflush(l->f) != 0) {
        snprintf(err, errlen, "--reports %s: %s", path, strerror(errno));
        fclose(l->f);
        l->f = NULL;
        return -1;
    }
    return 0;
}

int mon_reports_write(mon_tsvlog *l, int64_t recv_us, const mon_report *r)
{
    if (!l->f)
        return 0;
    mon_reports_line(l->f, recv_us, r);
    fputc('\n', l->f);
    l->lines++;
    return fflush(l->f) == 0 ? 0 : -1;
}
