/* schedule.h -- which uid shakes when, from the clock alone.
 *
 * The seed's rule is "uid shakes in second t when t % groups == uid % groups"
 * with groups = users / qps.  We keep exactly that order and make it work for
 * any rate: uids are laid out on a ring of `users` positions ordered by
 * (uid % groups, uid / groups), and second t covers the window of qps
 * consecutive positions starting at cursor(t) = cursor(t0) + (t - t0) * qps.
 * When qps divides users this is the seed's rule (window t = one residue
 * class); when it does not (30,000 over 1,000,000) windows straddle classes
 * and the aggregate is still exactly qps per second, every uid shakes exactly
 * once per users/qps seconds, and a contiguous uid range (one client
 * process) gets its proportional share of every window.  Inside a second,
 * position cursor(t) + k is due at t + k/qps: the load is smooth, not a burst
 * at the second boundary.
 *
 * Everything here is a pure function of (users, groups, rate plan, time), so
 * every client process computes the same schedule without talking to the
 * others, and tests check it without sockets. */
#ifndef CL_SCHEDULE_H
#define CL_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

/* Inside one class the uids are visited in golden-ratio stride order
 * (k -> k * a mod n), not in uid order: a contiguous stretch of a class then
 * holds uids of every client process in proportion, so a window edge that
 * cuts a class does not favour the processes holding low or high uids. */
typedef struct cl_stride {
    uint64_t n, a, ainv; /* a * ainv = 1 (mod n) */
} cl_stride;

typedef struct cl_layout {
    uint64_t users, groups;
    uint64_t q, r; /* users = q * groups + r: the first r classes have q+1 uids */
    cl_stride big, small; /* for classes of q+1 and of q uids */
} cl_layout;

/* groups = 0 picks ceil(users / qps). */
void cl_layout_init(cl_layout *l, uint64_t users, uint64_t qps, uint64_t groups);
uint64_t cl_layout_pos(const cl_layout *l, uint64_t uid);
uint64_t cl_layout_uid(const cl_layout *l, uint64_t pos);

/* A rate plan: from second t0 on, cursor(t) = c0 + (t - t0) * qps.  A rate
 * change at second T continues the cursor where the old rate left it, so all
 * clients that apply the same change at the same T stay in step. */
typedef struct cl_plan {
    int64_t t0;
    uint64_t c0;
    uint64_t qps;
} cl_plan;

void cl_plan_init(cl_plan *p, uint64_t qps); /* t0 = 0 (the epoch), c0 = 0 */
uint64_t cl_plan_cursor(const cl_plan *p, int64_t t);
/* Change to qps from second T (T >= p->t0). */
void cl_plan_change(cl_plan *p, int64_t T, uint64_t qps);
/* The absolute cursor due at time now_us (unix microseconds): positions
 * below it are due.  cursor(t) + floor(frac * qps) + 1. */
uint64_t cl_plan_due(const cl_plan *p, int64_t now_us);
/* When absolute cursor x is due (unix us), for x within the second starting
 * at second t (cursor(t) <= x < cursor(t+1)). */
int64_t cl_plan_time_of(const cl_plan *p, int64_t t, uint64_t x);

/* When absolute cursor x is due (unix us), whichever second it falls in
 * (x below the plan's c0 counts as due at t0). */
int64_t cl_plan_when(const cl_plan *p, uint64_t x);

/* Rate changes waiting for their second, in the order they apply.  Every
 * change is applied at its own second and in order, whoever applies it (each
 * worker for its shakes, main for the figures it shows): a plan built from
 * the same changes is the same plan, so a worker that copies main's plan and
 * queue mid-second loses nothing main has not applied yet.  Fixed size: a
 * control API that accepted changes without bound would be a memory leak;
 * a full queue refuses the change (the caller says so) rather than drop one. */
#define CL_CHANGES_MAX 8
typedef struct cl_change {
    int64_t at;   /* schedule second it takes effect */
    uint64_t qps; /* aggregate rate from then on */
} cl_change;

typedef struct cl_changes {
    cl_change c[CL_CHANGES_MAX]; /* sorted by at, at most one per second */
    int n;
} cl_changes;

/* Queue qps from second `at`; a change already queued for that second is
 * replaced (the later word wins).  0, or -1 when the queue is full. */
int cl_changes_add(cl_changes *q, int64_t at, uint64_t qps);
/* Apply to p, oldest first, every change whose second has begun at now_us
 * (unix us on the schedule's clock), and drop them from q.  Returns how many. */
int cl_changes_apply(cl_changes *q, cl_plan *p, int64_t now_us);

/* One worker's (or process's) uids, sorted by position, and how far it has
 * sent.  `at` indexes the first of its positions at or after `upto`. */
typedef struct cl_mine {
    uint64_t users;
    uint32_t *pos;  /* sorted ring positions */
    uint32_t *ref;  /* caller's index for each (e.g. connection number) */
    size_t n;
    size_t at;
    uint64_t upto;  /* absolute cursor sent up to (exclusive) */
} cl_mine;

/* pos/ref are taken over (sorted in place by position). */
void cl_mine_init(cl_mine *m, uint64_t users, uint32_t *pos, uint32_t *ref, size_t n);
/* Start at absolute cursor c (skip what was due before). */
void cl_mine_seek(cl_mine *m, uint64_t c);
/* Call fn for each of my positions in [upto, to), in order, with its
 * absolute cursor value; then upto = to.  A jump of more than one full ring
 * only fires each position once (the latest lap).  Returns how many fired. */
typedef void (*cl_mine_fn)(void *ctx, uint32_t ref, uint64_t abs);
size_t cl_mine_advance(cl_mine *m, uint64_t to, cl_mine_fn fn, void *ctx);
/* The absolute cursor of the next of my positions not yet sent (the first at
 * or after upto), UINT64_MAX when there are none: with cl_plan_when, the
 * moment a worker must next wake up to shake. */
uint64_t cl_mine_next(const cl_mine *m);

#endif
