/* lockstat.c -- the wait counters of lockstat.h. */
#include "lockstat.h"

#include <time.h>

sv_lock_stat sv_lock_kinds[SV_LK_N];
sv_lock_stat sv_lock_roles[SV_ROLE_N];
const char *const sv_lock_kind_name[SV_LK_N] = {"journal", "directory", "addr"};

static _Thread_local sv_lock_role_t my_role = SV_ROLE_OTHER;

void sv_lock_role(sv_lock_role_t role)
{
    my_role = role;
}

int64_t sv_lock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sv_lock_waited(sv_lock_kind k, int64_t ns)
{
    uint64_t n = ns > 0 ? (uint64_t)ns : 0;
    atomic_fetch_add_explicit(&sv_lock_kinds[k].waits, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sv_lock_kinds[k].wait_ns, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&sv_lock_roles[my_role].waits, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sv_lock_roles[my_role].wait_ns, n, memory_order_relaxed);
}

uint64_t sv_lock_total_waits(void)
{
    uint64_t n = 0;
    for (int k = 0; k < SV_LK_N; k++)
        n += atomic_load_explicit(&sv_lock_kinds[k].waits, memory_order_relaxed);
    return n;
}

uint64_t sv_lock_total_wait_us(void)
{
    uint64_t n = 0;
    for (int k = 0; k < SV_LK_N; k++)
        n += atomic_load_explicit(&sv_lock_kinds[k].wait_ns, memory_order_relaxed);
    return n / 1000;
}

uint64_t sv_lock_role_wait_us(sv_lock_role_t role)
{
    return atomic_load_explicit(&sv_lock_roles[role].wait_ns, memory_order_relaxed) / 1000;
}
