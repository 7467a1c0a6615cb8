/* statsfile.c -- writing and reading `name value` stats files. */
#include "statsfile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util.h"

void hb_sb_init(hb_statsbuf *b, char *mem, size_t cap)
{
    b->buf = mem;
    b->cap = cap;
    b->len = 0;
    b->overflow = false;
}

static void add(hb_statsbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(hb_statsbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->overflow = true;
        b->buf[b->len] = 0;
        return;
    }
    b->len += (size_t)n;
}

void hb_sb_comment(hb_statsbuf *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    add(b, "# %s\n", line);
}

void hb_sb_u64(hb_statsbuf *b, const char *name, uint64_t v)
{
    add(b, "%s %" PRIu64 "\n", name, v);
}

void hb_sb_i64(hb_statsbuf *b, const char *name, int64_t v)
{
    add(b, "%s %" PRId64 "\n", name, v);
}

void hb_sb_f(hb_statsbuf *b, const char *name, double v)
{
    add(b, "%s %.3f\n", name, v);
}

int hb_sb_write(const hb_statsbuf *b, const char *path)
{
    if (b->overflow) {
        errno = ENOBUFS;
        return -1;
    }
    return hb_write_file_atomic(path, b->buf, b->len);
}

int hb_statsfile_load(hb_statsfile *f, const char *path, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    char *t = malloc(cap);
    size_t got;
    while (t && (got = fread(t + len, 1, cap - len - 1, fp)) > 0) {
        len += got;
        if (len + 1 == cap) {
            char *n = realloc(t, cap * 2);
            if (!n) {
                free(t);
                t = NULL;
                break;
            }
            t = n;
            cap *= 2;
        }
    }
    bool bad = ferror(fp);
    fclose(fp);
    if (!t || bad) {
        free(t);
        snprintf(err, errlen, "%s: %s", path, bad ? "read error" : "out of memory");
        return -1;
    }
    t[len] = 0;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += t[i] == '\n';
    f->text = t;
    f->key = malloc(lines * sizeof *f->key);
    f->val = malloc(lines * sizeof *f->val);
    if (!f->key || !f->val) {
        hb_statsfile_free(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (char *line = t, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        char *sp = strchr(line, ' ');
        if (line[0] == '#' || !sp || sp == line)
            continue;
        *sp = 0;
        f->key[f->n] = line;
        f->val[f->n] = sp + 1;
        f->n++;
    }
    return 0;
}

const char *hb_statsfile_get(const hb_statsfile *f, const char *key)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->key[i], key))
            return f->val[i];
    return NULL;
}

int hb_statsfile_u64(const hb_statsfile *f, const char *key, uint64_t *out)
{
    const char *v = hb_statsfile_get(f, key);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end || errno || *v == '-')
        return -1;
    *out = x;
    return 1;
}

void hb_statsfile_free(hb_statsfile *f)
{
    free(f->text);
    free(f->key);
    free(f->val);
    memset(f, 0, sizeof *f);
}
