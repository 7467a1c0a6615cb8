/* schedule.c -- the shake schedule: layout, rate plan, per-worker cursor. */
#include "schedule.h"

#include <stdlib.h>
#include <string.h>

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static void stride_init(cl_stride *s, uint64_t n)
{
    s->n = n ? n : 1;
    uint64_t a = (uint64_t)((double)s->n * 0.6180339887498949 + 0.5) % s->n;
    if (a == 0)
        a = 1;
    while (gcd(a, s->n) != 1)
        a = a + 1 == s->n ? 1 : a + 1;
    s->a = a;
    /* modular inverse by extended Euclid */
    int64_t t = 0, nt = 1, r = (int64_t)s->n, nr = (int64_t)a;
    while (nr) {
        int64_t qt = r / nr, tmp;
        tmp = t - qt * nt, t = nt, nt = tmp;
        tmp = r - qt * nr, r = nr, nr = tmp;
    }
    s->ainv = (uint64_t)(t < 0 ? t + (int64_t)s->n : t) % s->n;
}

static uint64_t mulmod(uint64_t x, uint64_t y, uint64_t n)
{
    return (uint64_t)((unsigned __int128)x * y % n);
}

void cl_layout_init(cl_layout *l, uint64_t users, uint64_t qps, uint64_t groups)
{
    if (users == 0)
        users = 1;
    if (groups == 0)
        groups = qps == 0 ? 1 : (users + qps - 1) / qps;
    if (groups > users)
        groups = users;
    if (groups == 0)
        groups = 1;
    l->users = users;
    l->groups = groups;
    l->q = users / groups;
    l->r = users % groups;
    stride_init(&l->big, l->q + 1);
    stride_init(&l->small, l->q);
}

uint64_t cl_layout_pos(const cl_layout *l, uint64_t uid)
{
    uint64_t c = uid % l->groups, k = uid / l->groups;
    const cl_stride *s = c < l->r ? &l->big : &l->small;
    return c * l->q + (c < l->r ? c : l->r) + mulmod(k, s->a, s->n);
}

uint64_t cl_layout_uid(const cl_layout *l, uint64_t pos)
{
    uint64_t big = l->r * (l->q + 1), c, k;
    if (pos < big) {
        c = pos / (l->q + 1);
        k = mulmod(pos % (l->q + 1), l->big.ainv, l->big.n);
    } else {
        c = l->r + (pos - big) / l->q;
        k = mulmod((pos - big) % l->q, l->small.ainv, l->small.n);
    }
    return k * l->groups + c;
}

void cl_plan_init(cl_plan *p, uint64_t qps)
{
    p->t0 = 0;
    p->c0 = 0;
    p->qps = qps;
}

uint64_t cl_plan_cursor(const cl_plan *p, int64_t t)
{
    if (t < p->t0)
        t = p->t0;
    return p->c0 + (uint64_t)(t - p->t0) * p->qps;
}

void cl_plan_change(cl_plan *p, int64_t T, uint64_t qps)
{
    p->c0 = cl_plan_cursor(p, T);
    p->t0 = T;
    p->qps = qps;
}

uint64_t cl_plan_due(const cl_plan *p, int64_t now_us)
{
    int64_t t = now_us / 1000000;
    int64_t frac = now_us % 1000000;
    if (now_us < 0) {
        t = 0;
        frac = 0;
    }
    if (t < p->t0)
        return p->c0;
    /* Position k of second t is due at t + ceil(k/qps s): those with
     * k <= frac * qps are due now, k = 0 exactly at the second boundary. */
    if (p->qps == 0)
        return cl_plan_cursor(p, t);
    return cl_plan_cursor(p, t) + (uint64_t)((unsigned __int128)frac * p->qps / 1000000) + 1;
}

int64_t cl_plan_time_of(const cl_plan *p, int64_t t, uint64_t x)
{
    uint64_t c = cl_plan_cursor(p, t);
    if (p->qps == 0 || x < c)
        return t * 1000000;
    /* The k-th position of second t is due at t + k/qps (rounded up, so it
     * is never reported as due before cl_plan_due says so). */
    uint64_t k = x - c;
    return t * 1000000 + (int64_t)(((unsigned __int128)k * 1000000 + p->qps - 1) / p->qps);
}

int64_t cl_plan_when(const cl_plan *p, uint64_t x)
{
    if (p->qps == 0 || x < p->c0)
        return p->t0 * 1000000;
    int64_t t = p->t0 + (int64_t)((x - p->c0) / p->qps);
    return cl_plan_time_of(p, t, x);
}

/* ---- rate changes ------------------------------------------------------------ */

int cl_changes_add(cl_changes *q, int64_t at, uint64_t qps)
{
    int i = 0;
    while (i < q->n && q->c[i].at < at)
        i++;
    if (i < q->n && q->c[i].at == at) {
        q->c[i].qps = qps;
        return 0;
    }
    if (q->n == CL_CHANGES_MAX)
        return -1;
    memmove(&q->c[i + 1], &q->c[i], (size_t)(q->n - i) * sizeof q->c[0]);
    q->c[i] = (cl_change){at, qps};
    q->n++;
    return 0;
}

int cl_changes_apply(cl_changes *q, cl_plan *p, int64_t now_us)
{
    int k = 0;
    while (k < q->n && q->c[k].at <= now_us / 1000000) {
        /* a change for a second before the plan's own (never queued so, but
         * cl_plan_change needs T >= t0) counts from the plan's second */
        cl_plan_change(p, q->c[k].at > p->t0 ? q->c[k].at : p->t0, q->c[k].qps);
        k++;
    }
    memmove(&q->c[0], &q->c[k], (size_t)(q->n - k) * sizeof q->c[0]);
    q->n -= k;
    return k;
}

/* ---- per-worker cursor --------------------------------------------------------- */

typedef struct pr {
    uint32_t pos, ref;
} pr;

static int cmp_pr(const void *a, const void *b)
{
    const pr *x = a, *y = b;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

void cl_mine_init(cl_mine *m, uint64_t users, uint32_t *pos, uint32_t *ref, size_t n)
{
    pr *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (tmp) {
        for (size_t i = 0; i < n; i++)
            tmp[i] = (pr){pos[i], ref[i]};
        qsort(tmp, n, sizeof *tmp, cmp_pr);
        for (size_t i = 0; i < n; i++) {
            pos[i] = tmp[i].pos;
            ref[i] = tmp[i].ref;
        }
        free(tmp);
    }
    m->users = users;
    m->pos = pos;
    m->ref = ref;
    m->n = n;
    m->at = 0;
    m->upto = 0;
}

/* First index with pos >= p. */
static size_t lower_bound(const cl_mine *m, uint64_t p)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->pos[mid] < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void cl_mine_seek(cl_mine *m, uint64_t c)
{
    m->upto = c;
    m->at = lower_bound(m, c % m->users);
}

size_t cl_mine_advance(cl_mine *m, uint64_t to, cl_mine_fn fn, void *ctx)
{
    if (to <= m->upto || m->n == 0) {
        if (to > m->upto)
            m->upto = to;
        return 0;
    }
    if (to - m->upto > m->users) /* more than one lap behind: the last lap only */
        cl_mine_seek(m, to - m->users);
    size_t fired = 0;
    uint64_t lap_base = m->upto - m->upto % m->users; /* absolute cursor of ring position 0 */
    for (;;) {
        if (m->at == m->n) { /* wrap to the next lap */
            m->at = 0;
            lap_base += m->users;
        }
        uint64_t abs = lap_base + m->pos[m->at];
        if (abs >= to)
            break;
        if (abs >= m->upto) {
            fn(ctx, m->ref[m->at], abs);
            fired++;
        }
        m->at++;
    }
    m->upto = to;
    return fired;
}

uint64_t cl_mine_next(const cl_mine *m)
{
    if (m->n == 0)
        return UINT64_MAX;
    /* `at` indexes the next position of the lap upto is in; after a wrap in
     * cl_mine_advance it may point at one of the lap before (as there, the
     * guard skips it) or past the end (the next lap). */
    uint64_t lap_base = m->upto - m->upto % m->users;
    size_t at = m->at;
    for (size_t steps = 0; steps <= m->n; steps++, at++) {
        if (at >= m->n) {
            at = 0;
            lap_base += m->users;
        }
        uint64_t abs = lap_base + m->pos[at];
        if (abs >= m->upto)
            return abs;
    }
    return UINT64_MAX; /* not reached: every lap holds all n positions */
}
