/* ledgerfile.c -- format and strict parsing of client ledger lines. */
#include "ledgerfile.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

size_t hb_lline_format(char *buf, size_t cap, const hb_lline *l)
{
    int n;
    switch (l->type) {
    case HB_LL_WIN:
        n = snprintf(buf, cap, "W %" PRIu64 " %" PRIu32 " %" PRIu32 " %" PRIu32 "\n", l->packet_id, l->uid,
                     l->amount, l->seq);
        break;
    case HB_LL_SHARE:
        n = snprintf(buf, cap, "S %" PRIu64 " %" PRIu32 " %" PRIu32 "\n", l->packet_id, l->uid, l->amount);
        break;
    case HB_LL_UNANSWERED_SHAKE: n = snprintf(buf, cap, "Q %" PRIu32 " %" PRIu32 "\n", l->uid, l->seq); break;
    case HB_LL_UNANSWERED_OPEN: n = snprintf(buf, cap, "O %" PRIu64 " %" PRIu32 "\n", l->packet_id, l->uid); break;
    default: return 0;
    }
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* One decimal field after a single space, at most `max`. */
static const char *field(const char *p, uint64_t max, uint64_t *out)
{
    if (*p++ != ' ' || !isdigit((unsigned char)*p))
        return NULL;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10)
            return NULL; /* out of range */
        v = v * 10 + d;
    }
    *out = v;
    return p;
}

int hb_lline_parse(const char *line, hb_lline *out)
{
    if (line[0] == '#' || line[0] == '\n' || line[0] == 0)
        return 0;
    memset(out, 0, sizeof *out);
    out->type = line[0];
    uint64_t a = 0, b = 0, c = 0, d = 0;
    const char *p = line + 1;
    switch (line[0]) {
    case HB_LL_WIN:
        if (!(p = field(p, UINT64_MAX, &a)) || !(p = field(p, UINT32_MAX, &b)) || !(p = field(p, UINT32_MAX, &c)) ||
            !(p = field(p, UINT32_MAX, &d)))
            return -1;
        out->packet_id = a, out->uid = (uint32_t)b, out->amount = (uint32_t)c, out->seq = (uint32_t)d;
        break;
    case HB_LL_SHARE:
        if (!(p = field(p, UINT64_MAX, &a)) || !(p = field(p, UINT32_MAX, &b)) || !(p = field(p, UINT32_MAX, &c)))
            return -1;
        out->packet_id = a, out->uid = (uint32_t)b, out->amount = (uint32_t)c;
        break;
    case HB_LL_UNANSWERED_SHAKE:
        if (!(p = field(p, UINT32_MAX, &a)) || !(p = field(p, UINT32_MAX, &b)))
            return -1;
        out->uid = (uint32_t)a, out->seq = (uint32_t)b;
        break;
    case HB_LL_UNANSWERED_OPEN:
        if (!(p = field(p, UINT64_MAX, &a)) || !(p = field(p, UINT32_MAX, &b)))
            return -1;
        out->packet_id = a, out->uid = (uint32_t)b;
        break;
    default: return -1;
    }
    return *p == 0 || (*p == '\n' && p[1] == 0) ? 1 : -1;
}
