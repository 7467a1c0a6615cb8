/* hist.h -- a small log-linear latency histogram (HdrHistogram's layout).
 *
 * Values (microseconds) below 256 are counted exactly; above, every power of
 * two is cut into 128 equal sub-buckets, so any recorded value is known to
 * within 1/128 (< 0.8%, "2-3 significant digits").  Values up to 2^40 us
 * (12 days) fit; larger ones are clamped into the last bucket.
 *
 * One histogram per thread, never per connection: 34 KiB each, merged by
 * adding buckets, so merging two equals recording into one. */
#ifndef HB_HIST_H
#define HB_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HB_HIST_SUB_BITS 7
#define HB_HIST_SUB (1u << HB_HIST_SUB_BITS)      /* 128 */
#define HB_HIST_LINEAR (2u * HB_HIST_SUB)          /* 0..255 exact */
#define HB_HIST_MAX_BITS 40
#define HB_HIST_BUCKETS (HB_HIST_LINEAR + (HB_HIST_MAX_BITS - HB_HIST_SUB_BITS - 1) * HB_HIST_SUB)

typedef struct hb_hist {
    uint64_t count;
    uint64_t sum;
    uint64_t min, max; /* exact extremes of what was recorded */
    uint64_t b[HB_HIST_BUCKETS];
} hb_hist;

void hb_hist_reset(hb_hist *h);
void hb_hist_record(hb_hist *h, uint64_t v);
void hb_hist_record_n(hb_hist *h, uint64_t v, uint64_t n);
void hb_hist_merge(hb_hist *dst, const hb_hist *src);

/* Bucket of a value, and the range of values a bucket stands for. */
unsigned hb_hist_index(uint64_t v);
uint64_t hb_hist_low(unsigned idx);
uint64_t hb_hist_high(unsigned idx); /* inclusive */

/* The value at percentile p (0 < p <= 100): the highest value equivalent to
 * the bucket holding the rank ceil(p/100 * count), never above max.  0 when
 * empty. */
uint64_t hb_hist_percentile(const hb_hist *h, double p);

/* Count of recorded values <= v, to within one bucket (exact when v is the
 * top of a bucket): used for Prometheus `le` buckets. */
uint64_t hb_hist_count_le(const hb_hist *h, uint64_t v);

/* Text form of a whole histogram, for shipping raw buckets between
 * processes (the fleet's results): "hist1 COUNT SUM MIN MAX" then one
 * " INDEX:N" per non-empty bucket, in index order.  Decoding and merging
 * gives exactly the histogram of all the values (never averaged
 * percentiles).  encode returns the length it needs (like snprintf: the
 * text is cut when cap is smaller); at most HB_HIST_TEXT_MAX.  decode
 * returns 0, or -1 on anything malformed (h is then reset). */
#define HB_HIST_TEXT_MAX (64 + (size_t)HB_HIST_BUCKETS * 26)
size_t hb_hist_encode(const hb_hist *h, char *buf, size_t cap);
int hb_hist_decode(hb_hist *h, const char *text);

#endif
