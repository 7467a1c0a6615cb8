/* buf.c -- growing text buffer. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(mon_buf *b, size_t more)
{
    if (b->failed)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void mon_buf_put(mon_buf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void mon_buf_printf(mon_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n)) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void mon_buf_json_str(mon_buf *b, const char *s)
{
    mon_buf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            mon_buf_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            mon_buf_printf(b, "\\u%04x", ch);
        else
            mon_buf_put(b, s, 1);
    }
    mon_buf_put(b, "\"", 1);
}

void mon_buf_prom_label(mon_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            mon_buf_put(b, "\\\\", 2);
        else if (*s == '"')
            mon_buf_put(b, "\\\"", 2);
        else if (*s == '\n')
            mon_buf_put(b, "\\n", 2);
        else
            mon_buf_put(b, s, 1);
    }
}

char *mon_buf_take(mon_buf *b, size_t *len)
{
    if (b->failed || !reserve(b, 0)) {
        mon_buf_free(b);
        return NULL;
    }
    char *p = b->p;
    *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void mon_buf_free(mon_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}
