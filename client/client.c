/* client.c -- the cl_client object's own state: the run's identity (seed and
 * run id) and the rate plan with its queue of changes.
 *
 * The rate plan is written by the control thread (cl_set_qps) and by main's
 * tick (cl_rate_tick), read by every worker; all under plan_mu, with
 * plan_version moving on every change so a worker copies only when needed.
 * No change is ever overwritten by another: each waits in cl->changes until
 * main applies it at its second, and a worker that copies meanwhile gets it
 * from the queue and applies it at that same second (issue 13.2). */
#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

void cl_client_init(cl_client *cl)
{
    const cl_config *c = &cl->cfg;
    cl->seed = c->seed ? (uint64_t)c->seed : hb_seed();
    /* Shake seqs must differ between runs even with the same --seed: the
     * server answers a retried (uid, seq) from its grant record, so a seq
     * that repeats an earlier run's could be answered with that run's win. */
    if (getrandom(&cl->run_id, sizeof cl->run_id, 0) != (ssize_t)sizeof cl->run_id)
        cl->run_id = hb_seed(); /* clock, pid and a counter: still new per run */
    cl->start_us = hb_now_us();
    cl_layout_init(&cl->layout, (uint64_t)c->users, (uint64_t)c->qps, (uint64_t)c->groups);
    pthread_mutex_init(&cl->plan_mu, NULL);
    cl_plan_init(&cl->plan, (uint64_t)c->qps);
    cl->changes.n = 0;
    atomic_store(&cl->target_qps, (uint64_t)c->qps);
    atomic_store(&cl->offset_delay_us, -1);
}

int64_t cl_set_qps(cl_client *cl, uint64_t qps, int64_t at)
{
    int64_t now_s = cl_sched_now(cl) / 1000000;
    if (at <= now_s)
        at = now_s + 1;
    pthread_mutex_lock(&cl->plan_mu);
    int r = cl_changes_add(&cl->changes, at, qps);
    if (r == 0)
        atomic_fetch_add(&cl->plan_version, 1);
    pthread_mutex_unlock(&cl->plan_mu);
    if (r == 0)
        cl_client_nudge(cl); /* a sleeping worker must arm for the change's second */
    return r == 0 ? at : -1;
}

void cl_rate_tick(cl_client *cl)
{
    pthread_mutex_lock(&cl->plan_mu);
    if (cl_changes_apply(&cl->changes, &cl->plan, cl_sched_now(cl)) > 0) {
        atomic_store(&cl->target_qps, cl->plan.qps);
        atomic_fetch_add(&cl->plan_version, 1);
        hb_log("rate is now %llu shakes/s in aggregate", (unsigned long long)cl->plan.qps);
    }
    pthread_mutex_unlock(&cl->plan_mu);
}

uint64_t cl_rate_copy(cl_client *cl, cl_plan *plan, cl_changes *changes)
{
    pthread_mutex_lock(&cl->plan_mu);
    if (plan)
        *plan = cl->plan;
    if (changes)
        *changes = cl->changes;
    uint64_t v = atomic_load(&cl->plan_version);
    pthread_mutex_unlock(&cl->plan_mu);
    return v;
}

int cl_rate_history(cl_client *cl, const char *plan, char *err, size_t errlen)
{
    /* all parsed and checked first: a refused plan changes nothing */
    static cl_change ch[1024];
    int n = 0;
    int64_t last = -1;
    const char *p = plan;
    while (p && *p) {
        char *end;
        long long at = strtoll(p, &end, 10);
        if (end == p || *end != ':')
            goto bad;
        p = end + 1;
        unsigned long long q = strtoull(p, &end, 10);
        if (end == p || (*end && (*end != ',' || !end[1])))
            goto bad;
        p = *end ? end + 1 : end;
        if (at <= last || at < 1 || q > (unsigned long long)cl->cfg.users) {
            snprintf(err, errlen, "--plan '%s': seconds must ascend and rates stay within --users", plan);
            return -1;
        }
        if (n == (int)(sizeof ch / sizeof *ch)) {
            snprintf(err, errlen, "--plan: more than %zu changes", sizeof ch / sizeof *ch);
            return -1;
        }
        ch[n++] = (cl_change){at, q};
        last = at;
    }
    int64_t now_us = cl_sched_now(cl);
    int future = 0;
    for (int i = 0; i < n; i++)
        future += ch[i].at * 1000000 > now_us;
    if (future > CL_CHANGES_MAX) {
        snprintf(err, errlen, "--plan '%s': more than %d changes still to come", plan, CL_CHANGES_MAX);
        return -1;
    }
    pthread_mutex_lock(&cl->plan_mu);
    for (int i = 0; i < n; i++) {
        if (ch[i].at * 1000000 <= now_us) {
            cl_plan_change(&cl->plan, ch[i].at > cl->plan.t0 ? ch[i].at : cl->plan.t0, ch[i].qps);
            atomic_store(&cl->target_qps, ch[i].qps);
        } else {
            cl_changes_add(&cl->changes, ch[i].at, ch[i].qps);
        }
    }
    atomic_fetch_add(&cl->plan_version, 1);
    pthread_mutex_unlock(&cl->plan_mu);
    return 0;
bad:
    snprintf(err, errlen, "--plan '%s': expected UNIXSECOND:QPS,...", plan);
    return -1;
}
