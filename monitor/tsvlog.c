/* tsvlog.c -- the TSV log. */
#include "tsvlog.h"

#include <errno.h>
#include <string.h>
#include "columns.h"

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
