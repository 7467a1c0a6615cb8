/* Shake seqs and --seed (issue 13.8): two runs with the same --seed must not
 * start at the same shake seq -- the server answers a retried (uid, seq)
 * from its grant record, so a repeated seq could be answered with an earlier
 * run's win -- while what --seed is for (the random choices: chat targets,
 * back-off jitter) stays the same from run to run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "worker.h"

/* One "run": a client set up as main does, and its first worker. */
static cl_worker *run(cl_client *cl, int64_t seed)
{
    memset(cl, 0, sizeof *cl);
    cl->cfg.uid_to = cl->cfg.users = 100;
    cl->cfg.qps = 10;
    cl->cfg.tick_ms = 1;
    cl->cfg.seed = seed;
    cl_client_init(cl);
    char err[128];
    cl_worker *w = cl_worker_new(cl, 0, 0, 100, err, sizeof err);
    assert_non_null(w);
    return w;
}

static void test_same_seed_different_seqs(void **state)
{
    (void)state;
    static cl_client a, b;
    cl_worker *wa = run(&a, 42), *wb = run(&b, 42);
    assert_int_not_equal(wa->next_seq, wb->next_seq);
    assert_int_equal(wa->rng, wb->rng); /* --seed still fixes the random choices */
    cl_worker_free(wa);
    cl_worker_free(wb);
}

/* Workers of one run start far apart, as before. */
static void test_workers_apart(void **state)
{
    (void)state;
    static cl_client a;
    cl_worker *w0 = run(&a, 42);
    char err[128];
    cl_worker *w1 = cl_worker_new(&a, 1, 0, 100, err, sizeof err);
    assert_non_null(w1);
    assert_int_not_equal(w0->next_seq, w1->next_seq);
    cl_worker_free(w0);
    cl_worker_free(w1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_different_seqs),
        cmocka_unit_test(test_workers_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
