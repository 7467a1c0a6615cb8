/* Lock wait counters (server/lockstat.h): a lock held by another thread is
 * counted, with the time blocked, under its kind and the waiter's role; an
 * uncontended lock is not counted at all; sv_dir_busy (the standby sweep's
 * hint, server/standby.h) tells a held directory stripe without waiting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>
#include "directory.h"
#include "lockstat.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int holding;

static void *holder(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    atomic_store(&holding, 1);
    usleep(30000); /* a preempted holder, as far as the waiter can tell */
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void test_uncontended_is_free(void **st)
{
    (void)st;
    uint64_t w = sv_lock_total_waits();
    for (int i = 0; i < 1000; i++) {
        sv_lock(&mu, SV_LK_ADDR);
        pthread_mutex_unlock(&mu);
    }
    assert_int_equal(sv_lock_total_waits(), w);
}

static void test_contended_is_counted(void **st)
{
    (void)st;
    uint64_t waits = atomic_load(&sv_lock_kinds[SV_LK_DIRECTORY].waits);
    uint64_t ns = atomic_load(&sv_lock_kinds[SV_LK_DIRECTORY].wait_ns);
    uint64_t other = atomic_load(&sv_lock_kinds[SV_LK_ADDR].wait_ns);
    uint64_t prod = sv_lock_role_wait_us(SV_ROLE_PRODUCER);
    uint64_t total = sv_lock_total_wait_us();
    pthread_t th;
    atomic_store(&holding, 0);
    assert_int_equal(pthread_create(&th, NULL, holder, NULL), 0);
    while (!atomic_load(&holding))
        usleep(100);
    sv_lock_role(SV_ROLE_PRODUCER);
    sv_lock(&mu, SV_LK_DIRECTORY); /* blocks until the holder lets go */
    pthread_mutex_unlock(&mu);
    sv_lock_role(SV_ROLE_OTHER);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&sv_lock_kinds[SV_LK_DIRECTORY].waits), waits + 1);
    uint64_t waited = atomic_load(&sv_lock_kinds[SV_LK_DIRECTORY].wait_ns) - ns;
    assert_true(waited >= 10000000 && waited < 5000000000u); /* most of the holder's 30 ms */
    assert_int_equal(atomic_load(&sv_lock_kinds[SV_LK_ADDR].wait_ns), other); /* only its own kind */
    assert_true(sv_lock_role_wait_us(SV_ROLE_PRODUCER) - prod >= 10000);
    assert_true(sv_lock_total_wait_us() - total >= 10000);
}

static void test_dir_busy_never_waits(void **st)
{
    (void)st;
    sv_dir d;
    assert_int_equal(sv_dir_init(&d, 100, 10, 10), 0);
    uint64_t w = sv_lock_total_waits();
    assert_false(sv_dir_busy(&d, 7));
    assert_true(sv_dir_lock_if_at(&d, 7, 0)); /* uid 7 is offline: its stripe stays locked */
    assert_true(sv_dir_busy(&d, 7));
    sv_dir_unlock(&d, 7);
    assert_false(sv_dir_busy(&d, 7));
    assert_int_equal(sv_lock_total_waits(), w);
    sv_dir_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uncontended_is_free),
        cmocka_unit_test(test_contended_is_counted),
        cmocka_unit_test(test_dir_busy_never_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
