/* buf.h -- a growing text buffer for the monitor's HTTP answers (/metrics
 * and the dashboard JSON are rendered into one, then handed to
 * libmicrohttpd, which frees it).  Out of memory makes it `failed`, never
 * a crash; the caller answers 500. */
#ifndef MON_BUF_H
#define MON_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct mon_buf {
    char *p;
    size_t len, cap;
    bool failed;
} mon_buf;

void mon_buf_printf(mon_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mon_buf_put(mon_buf *b, const char *s, size_t n);
/* A JSON string, quotes included. */
void mon_buf_json_str(mon_buf *b, const char *s);
/* A Prometheus label value, without the quotes: \ " and newline escaped. */
void mon_buf_prom_label(mon_buf *b, const char *s);
/* Hand the text over (caller frees); NULL if anything failed. */
char *mon_buf_take(mon_buf *b, size_t *len);
void mon_buf_free(mon_buf *b);

#endif
