/* statsfile.h -- the stats file: what hb-server, hb-client and hb-echo-floor
 * write with --stats-file, and what tests, the ledger check, the benchmarks
 * and operators read.  Defined once, here: a writer, one reader, and the
 * hb-stats command (tools/stats.c) for shell scripts.
 *
 * Format: text lines, `name value` (one space; a name has no spaces; the
 * value is a number or a word), and `# comment` lines.  The file is rewritten
 * whole and renamed into place, so a reader never sees half of it.
 * A name that is not in the file is missing: readers say so, they never
 * turn it into 0 (a counter that is not there is not a counter that is 0). */
#ifndef HB_STATSFILE_H
#define HB_STATSFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- writing ---------------------------------------------------------------- */

typedef struct hb_statsbuf {
    char *buf;
    size_t cap, len;
    bool overflow; /* something did not fit: the file is not written */
} hb_statsbuf;

void hb_sb_init(hb_statsbuf *b, char *mem, size_t cap);
void hb_sb_comment(hb_statsbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hb_sb_u64(hb_statsbuf *b, const char *name, uint64_t v);
void hb_sb_i64(hb_statsbuf *b, const char *name, int64_t v);
void hb_sb_f(hb_statsbuf *b, const char *name, double v); /* 3 decimals */
/* Write atomically (temporary file + rename).  0, or -1 with errno. */
int hb_sb_write(const hb_statsbuf *b, const char *path);

/* ---- reading ---------------------------------------------------------------- */

typedef struct hb_statsfile {
    char *text;
    char **key, **val;
    size_t n;
} hb_statsfile;

/* 0, or -1 with a message in err (missing or unreadable file). */
int hb_statsfile_load(hb_statsfile *f, const char *path, char *err, size_t errlen);
/* The value of `key` as text, NULL when it is missing. */
const char *hb_statsfile_get(const hb_statsfile *f, const char *key);
/* 1 and *out set; 0 missing; -1 present but not a whole number. */
int hb_statsfile_u64(const hb_statsfile *f, const char *key, uint64_t *out);
void hb_statsfile_free(hb_statsfile *f);

#endif
