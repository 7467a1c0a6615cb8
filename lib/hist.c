/* hist.c -- log-linear histogram. */
#include "hist.h"

#include <stdio.h>
#include <string.h>

void hb_hist_reset(hb_hist *h)
{
    memset(h, 0, sizeof *h);
}

unsigned hb_hist_index(uint64_t v)
{
    if (v < HB_HIST_LINEAR)
        return (unsigned)v;
    if (v >> HB_HIST_MAX_BITS)
        return HB_HIST_BUCKETS - 1;
    unsigned k = 63u - (unsigned)__builtin_clzll(v); /* 2^k <= v < 2^(k+1), k >= 8 */
    unsigned sub = (unsigned)(v >> (k - HB_HIST_SUB_BITS)) - HB_HIST_SUB;
    return HB_HIST_LINEAR + (k - HB_HIST_SUB_BITS - 1) * HB_HIST_SUB + sub;
}

uint64_t hb_hist_low(unsigned idx)
{
    if (idx < HB_HIST_LINEAR)
        return idx;
    unsigned k = (idx - HB_HIST_LINEAR) / HB_HIST_SUB + HB_HIST_SUB_BITS + 1;
    unsigned sub = (idx - HB_HIST_LINEAR) % HB_HIST_SUB;
    return (uint64_t)(HB_HIST_SUB + sub) << (k - HB_HIST_SUB_BITS);
}

uint64_t hb_hist_high(unsigned idx)
{
    if (idx < HB_HIST_LINEAR)
        return idx;
    unsigned k = (idx - HB_HIST_LINEAR) / HB_HIST_SUB + HB_HIST_SUB_BITS + 1;
    return hb_hist_low(idx) + ((uint64_t)1 << (k - HB_HIST_SUB_BITS)) - 1;
}

void hb_hist_record_n(hb_hist *h, uint64_t v, uint64_t n)
{
    if (n == 0)
        return;
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count += n;
    h->sum += v * n;
    h->b[hb_hist_index(v)] += n;
}

void hb_hist_record(hb_hist *h, uint64_t v)
{
    hb_hist_record_n(h, v, 1);
}

void hb_hist_merge(hb_hist *dst, const hb_hist *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    dst->sum += src->sum;
    for (unsigned i = 0; i < HB_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
}

uint64_t hb_hist_percentile(const hb_hist *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p > 100)
        p = 100;
    uint64_t rank = (uint64_t)((p / 100.0) * (double)h->count + 0.999999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HB_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = hb_hist_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

uint64_t hb_hist_count_le(const hb_hist *h, uint64_t v)
{
    uint64_t n = 0;
    unsigned top = hb_hist_index(v);
    for (unsigned i = 0; i <= top && i < HB_HIST_BUCKETS; i++)
        n += h->b[i];
    /* The top bucket may hold values above v; count it only if it ends at v. */
    if (top < HB_HIST_BUCKETS && hb_hist_high(top) > v)
        n -= h->b[top];
    return n;
}

size_t hb_hist_encode(const hb_hist *h, char *buf, size_t cap)
{
    char tmp[64];
    size_t n = 0;
    int k = snprintf(tmp, sizeof tmp, "hist1 %llu %llu %llu %llu", (unsigned long long)h->count,
                     (unsigned long long)h->sum, (unsigned long long)h->min, (unsigned long long)h->max);
    for (unsigned i = 0;; i++) {
        if (k > 0) {
            if (cap && n < cap - 1) {
                size_t room = cap - 1 - n, c = (size_t)k < room ? (size_t)k : room;
                memcpy(buf + n, tmp, c);
            }
            n += (size_t)k;
        }
        while (i < HB_HIST_BUCKETS && !h->b[i])
            i++;
        if (i >= HB_HIST_BUCKETS)
            break;
        k = snprintf(tmp, sizeof tmp, " %u:%llu", i, (unsigned long long)h->b[i]);
    }
    if (cap)
        buf[n < cap ? n : cap - 1] = 0;
    return n;
}

int hb_hist_decode(hb_hist *h, const char *text)
{
    hb_hist_reset(h);
    unsigned long long count, sum, min, max;
    int used = 0;
    if (sscanf(text, "hist1 %llu %llu %llu %llu%n", &count, &sum, &min, &max, &used) != 4)
        return -1;
    const char *p = text + used;
    uint64_t total = 0;
    long prev = -1;
    while (*p == ' ') {
        unsigned idx;
        unsigned long long n;
        if (sscanf(p, " %u:%llu%n", &idx, &n, &used) != 2 || idx >= HB_HIST_BUCKETS || (long)idx <= prev || !n)
            goto bad;
        h->b[idx] = n;
        total += n;
        prev = idx;
        p += used;
    }
    if (*p || total != count)
        goto bad;
    h->count = count;
    h->sum = sum;
    h->min = min;
    h->max = max;
    return 0;
bad:
    hb_hist_reset(h);
    return -1;
}
